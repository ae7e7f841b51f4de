"""Source edits with libcst: the replacements that make a rule's edit (:class:`Edit`) at the
code that built a module, everything else in the file (formatting, comments, newlines) kept
as it is. A file is parsed once per run, however many of its findings have fixes.

Call edits name the call by its span, as Python reports it for the expression that built the
module:

- ``set_kwarg`` {name, value}: set a constructor argument (``bias=False``): replace it where
  given (by keyword, or by the position ``Placed.position``), else append it as a keyword,
  following the call's own layout;
- ``remove_op``: make the op the identity: ``nn.ReLU()`` -> ``nn.Identity()`` for a module,
  ``F.relu(x)`` / ``x.relu()`` -> ``x`` for a functional op.

Model edits name a top-level model definition (``Placed.model``: a class, a factory function
or an assigned instance):

- ``write_repair``: write the rule's graph repair as plain PyTorch (``Placed.code``, from
  :mod:`.written`) once the model is built: at the end of the class's ``__init__``, after the
  instance's assignment, or before the factory's return; ``from torch import nn`` is added
  when the file has no name for torch.nn.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from ..errors import InputError
from ..findings import Replacement
from ..rules.catalog import Edit
from . import text as texts
from .written import Code


@dataclass(frozen=True)
class Placed:
    """An edit at its place: a call edit at ``span``, the (line, col, end_line, end_col)
    of the expression that built the module (:class:`~bnlint.model.sites.Site`:
    1-based, the end exclusive, columns in characters); a model edit at the top-level
    definition named ``model``."""
    edit: Edit
    path: str
    span: tuple[int, int, int, int] | None = None
    position: int | None = None  # set_kwarg: the argument's position in the constructor
    model: str | None = None
    code: Code | None = None  # write_repair: the repair as plain PyTorch


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _callee(call: cst.Call) -> str:
    """The called name's last part: ``Conv2d`` for ``nn.Conv2d(...)``, ``relu`` for ``F.relu``."""
    func = call.func
    return func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", "")


def _bound(statement: cst.BaseSmallStatement) -> dict[str, str]:
    """What an absolute import binds: ``import torch.nn as nn`` {nn: torch.nn}, ``import
    torch.nn`` {torch: torch}, ``from torch import nn`` {nn: torch.nn}."""
    if isinstance(statement, cst.Import):
        return {(a.asname.name.value if a.asname else _code(a.name).split(".")[0]):
                (_code(a.name) if a.asname else _code(a.name).split(".")[0])
                for a in statement.names}
    if (isinstance(statement, cst.ImportFrom) and statement.module is not None
            and not statement.relative and not isinstance(statement.names, cst.ImportStar)):
        return {(a.asname.name.value if a.asname else _code(a.name)):
                f"{_code(statement.module)}.{_code(a.name)}" for a in statement.names}
    return {}


class _Returns(cst.CSTVisitor):
    """The return statements of a function, not of the functions or classes inside it, and
    those that are alone on their line."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[cst.Return] = []
        self.alone: list[cst.Return] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        if len(node.body) == 1 and isinstance(node.body[0], cst.Return):
            self.alone.append(node.body[0])

    def visit_Return(self, node: cst.Return) -> None:
        self.found.append(node)


class Parsed:
    """One parse of a file: its calls by span and its top-level definitions by name, and
    the replacements that make an edit there."""

    def __init__(self, path: str, source: str):
        self.path = path
        self.text = texts.Text(source)
        try:
            self.module = cst.parse_module(source)
        except cst.ParserSyntaxError as exc:
            raise InputError(f"cannot parse the file to patch it: {exc.message}.", path=path,
                             line=exc.raw_line) from None
        self.newline = self.module.default_newline
        self.ranges: dict[cst.CSTNode, CodeRange] = MetadataWrapper(
            self.module, unsafe_skip_copy=True).resolve(PositionProvider)
        self.calls = {(r.start.line, r.start.column + 1, r.end.line, r.end.column + 1): node
                      for node, r in self.ranges.items() if isinstance(node, cst.Call)}
        self.definitions: dict[str, list[cst.CSTNode]] = {}
        self.imported: dict[str, str] = {}  # top-level import: the name it binds -> dotted
        for stmt in self.module.body:
            for name, node in self._defined(stmt):
                self.definitions.setdefault(name, []).append(node)
            for part in stmt.body if isinstance(stmt, cst.SimpleStatementLine) else ():
                self.imported.update(_bound(part))

    @staticmethod
    def _defined(stmt: cst.CSTNode) -> list[tuple[str, cst.CSTNode]]:
        """(name, node) for a class or function definition, or each ``name = value``."""
        if isinstance(stmt, (cst.ClassDef, cst.FunctionDef)):
            return [(stmt.name.value, stmt)]
        if not isinstance(stmt, cst.SimpleStatementLine):
            return []
        return [(s.targets[0].target.value if isinstance(s, cst.Assign) else s.target.value, s)
                for s in stmt.body
                if (isinstance(s, cst.Assign) and len(s.targets) == 1
                    and isinstance(s.targets[0].target, cst.Name))
                or (isinstance(s, cst.AnnAssign) and s.value is not None
                    and isinstance(s.target, cst.Name))]

    # ------------------------------------------------------------ positions and replacements

    def call_at(self, span: tuple[int, int, int, int]) -> cst.Call:
        if span not in self.calls:
            raise InputError("the file changed since it was linted: a fix no longer finds the "
                             "code it edits.", path=self.path, hint="Run bnlint again.")
        return self.calls[span]

    def replacing(self, node: cst.CSTNode, new: str) -> Replacement:
        r = self.ranges[node]
        return self.text.made(self.path, r.start.line, r.start.column + 1, r.end.line,
                              r.end.column + 1, new)

    def inserting(self, line: int, col: int, new: str) -> Replacement:
        return self.text.made(self.path, line, col, line, col, new)

    def start(self, node: cst.CSTNode) -> tuple[int, int]:
        return self.ranges[node].start.line, self.ranges[node].start.column + 1

    def end(self, node: cst.CSTNode) -> tuple[int, int]:
        return self.ranges[node].end.line, self.ranges[node].end.column + 1

    def line_after(self, node: cst.CSTNode, statement: str) -> Replacement:
        """``statement`` inserted as a line of its own after the line where ``node`` ends."""
        line = self.ranges[node].end.line
        if line < len(self.text.starts):  # the line ends with a newline
            return self.inserting(line + 1, 1, statement + self.newline)
        end = len(self.text.line(line)) + 1  # the last line, without a newline: keep it so
        return self.inserting(line, end, self.newline + statement)

    def indentation(self, node: cst.CSTNode) -> str:
        line, col = self.start(node)
        return self.text.line(line)[:col - 1]

    # ---------------------------------------------------------------------------- the edits

    def replacements(self, placed: Placed) -> list[Replacement]:
        """The replacements that make ``placed``'s edit here; an InputError when it cannot
        be made safely."""
        edit = placed.edit
        if edit.action == "set_kwarg":
            return self._set_kwarg(self.call_at(placed.span), edit, placed.position)
        if edit.action == "remove_op":
            return [self._remove_op(self.call_at(placed.span))]
        if edit.action == "write_repair":
            return self._write_repair(placed.model, placed.code)
        raise ValueError(f"unknown edit action {edit.action}")

    def _set_kwarg(self, call: cst.Call, edit: Edit, position: int | None) -> list[Replacement]:
        """Set argument ``edit.name`` where the call gives it, else append it as a keyword.
        Only a module constructor (``nn.BatchNorm2d(...)``) takes the edit, and only where no
        ``*args`` or ``**kwargs`` may already pass the argument."""
        if not _callee(call)[:1].isupper():
            raise InputError(f"{_callee(call)}() is not a module constructor, so it takes no "
                             f"{edit.name}= to set.")
        args = list(call.args)
        for arg in args:
            if arg.keyword is not None and arg.keyword.value == edit.name:
                return [self.replacing(arg.value, edit.value)]
        starred = [i for i, a in enumerate(args) if a.star]
        leading = args[:starred[0]] if starred else args  # positions are known up to a *args
        positional = [a for a in leading if a.keyword is None]
        if position is not None and position < len(positional):
            return [self.replacing(positional[position].value, edit.value)]
        if starred:
            raise InputError(f"the call's *args or **kwargs may already pass {edit.name}.")
        keyword = f"{edit.name}={edit.value}"
        if not args:  # before the closing parenthesis
            line, col = self.end(call)
            return [self.inserting(line, col - 1, keyword)]
        return [self.inserting(*self.end(args[-1].value), self._separator(call) + keyword)]

    def _separator(self, call: cst.Call) -> str:
        """What goes before a new last argument: what separates the call's last two, or
        for one argument on a line of its own, a newline and its indentation; else ", "."""
        args = call.args
        if len(args) >= 2:
            (line, col), (next_line, next_col) = self.end(args[-2].value), self.start(args[-1])
        else:
            (line, col), (next_line, next_col) = self.end(call.func), self.start(args[-1])
        if line == next_line:
            return self.text.line(line)[col - 1:next_col - 1] if len(args) >= 2 else ", "
        indent = self.text.line(next_line)[:next_col - 1]
        return "," + self.newline + (indent if not indent.strip() else "")

    def _remove_op(self, call: cst.Call) -> Replacement:
        """The identity in place of the op: an ``Identity`` of the same namespace for a module
        constructor (it ignores arguments), the op's input for a functional or method call."""
        func = call.func
        if _callee(call)[:1].isupper():  # nn.ReLU(inplace=True) -> nn.Identity()
            identity = (func.with_changes(attr=cst.Name("Identity"))
                        if isinstance(func, cst.Attribute) else cst.Name("Identity"))
            return self.replacing(call, _code(identity) + "()")
        if isinstance(func, cst.Attribute) and not call.args:  # x.relu() -> x
            value = func.value
        elif call.args and not call.args[0].star:  # F.relu(x, ...) -> x
            value = call.args[0].value
        else:
            raise InputError(f"{_callee(call)}() takes its input as *args, so it cannot be "
                             "replaced by it.")
        atom = isinstance(value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) or value.lpar
        return self.replacing(call, _code(value) if atom else f"({_code(value)})")

    def _write_repair(self, model: str | None, code: Code) -> list[Replacement]:
        """``code`` written where the model is built: at the end of the class's
        ``__init__`` (on ``self``), after the instance's assignment, or before the factory's
        return (of the value it names, or of a variable the value is first assigned to)."""
        nodes = self.definitions.get(model or "")
        if not nodes:
            raise InputError(f"the file has no top-level definition of {model} to add the "
                             "repair to.")
        if code.comment in self.text.text:  # written already
            return []
        node, out = nodes[-1], []  # the last definition is the one that counts
        if isinstance(node, cst.ClassDef):
            init = next((s for s in getattr(node.body, "body", ())
                         if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"), None)
            if init is None or not isinstance(init.body, cst.IndentedBlock):
                raise InputError(f"class {node.name.value} has no __init__ of its own, in a "
                                 "block, to add the repair to.")
            body = init.body.body
            lines = self._render(code, "self", _names(init), out)
            out.append(self.line_after(body[-1], self._block(lines, self.indentation(body[0]))))
        elif isinstance(node, cst.FunctionDef):
            out += self._before_return(node, code)
        else:
            lines = self._render(code, model, _names(self.module), out)
            out.append(self.line_after(node, self._block(lines, "")))
        return out

    def _before_return(self, function: cst.FunctionDef, code: Code) -> list[Replacement]:
        returns = _Returns()
        function.body.visit(returns)
        if len(returns.found) != 1 or returns.found[0].value is None:
            raise InputError(f"{function.name.value}() does not end in one return of the "
                             "model, to add the repair before.")
        ret = returns.found[0]
        if ret not in returns.alone:
            raise InputError(f"the return of {function.name.value}() shares its line.")
        out: list[Replacement] = []
        taken = _names(function)
        indent = self.indentation(ret)
        if isinstance(ret.value, cst.Name):
            lines = self._render(code, ret.value.value, taken, out)
            return [*out, self.inserting(self.start(ret)[0], 1, self._block(lines, indent)
                                         + self.newline)]
        root = _fresh("model", taken)
        lines = self._render(code, root, taken | {root}, out)
        value = self.text.slice(self.replacing(ret.value, ""))
        return [*out, self.replacing(ret, f"{root} = {value}{self.newline}"
                                     + self._block(lines, indent) + self.newline
                                     + f"{indent}return {root}")]

    def _block(self, lines: list[str], indent: str) -> str:
        """``lines`` (indented by four spaces a level) at ``indent``, in the file's indent and
        newlines, without a final newline."""
        def indented(line: str) -> str:
            body = line.lstrip(" ")
            return indent + self.module.default_indent * ((len(line) - len(body)) // 4) + body
        return self.newline.join(indented(line) for line in lines)

    def _render(self, code: Code, root: str, taken: set[str], out: list[Replacement]
                ) -> list[str]:
        """The code's lines for this file: its comment, then each group's first form whose
        classes the file can name, with fresh variables; an import the code needs is added to
        ``out``."""
        values = {"root": root, "nn": self._torch_nn(out)}
        lines = [code.comment]
        for forms in code.groups:
            for form in forms:
                classes = [self._name_of(names) for names in form.classes]
                if None not in classes:
                    break
            else:
                raise InputError("the file does not name the classes the repair's code needs.")
            used = set(taken)
            for variable in form.variables:
                values[variable] = _fresh(variable, used)
                used.add(values[variable])
            values.update({f"T{i}": name for i, name in enumerate(classes)})
            lines += [line.format(**values) for line in form.lines]
        return lines

    def _name_of(self, names: tuple[str, ...]) -> str | None:
        """How this file names a class or module given by its dotted names (``:Block`` for a
        top-level definition of the file), through its top-level imports; the shortest."""
        found = []
        for dotted in names:
            if dotted.startswith(":"):
                if any(isinstance(n, cst.ClassDef) for n in self.definitions.get(dotted[1:], ())):
                    found.append(dotted[1:])
                continue
            for local, target in self.imported.items():
                if dotted == target or dotted.startswith(target + "."):
                    found.append(local + dotted[len(target):])
        return min(found, key=len) if found else None

    def _torch_nn(self, out: list[Replacement]) -> str:
        """What this file calls torch.nn; ``from torch import nn`` is added to ``out`` when it
        has no name for it."""
        name = self._name_of(("torch.nn",))
        if name is not None:
            return name
        if "nn" in self.imported or "nn" in self.definitions:
            raise InputError("the file binds nn to something other than torch.nn.")
        out.append(self._import("from torch import nn"))
        return "nn"

    def _import(self, statement: str) -> Replacement:
        """``statement`` (an import) after the last top-level import (or the docstring), else
        first."""
        body = self.module.body
        after = None
        for i, stmt in enumerate(body):
            if isinstance(stmt, cst.SimpleStatementLine) and (
                    isinstance(stmt.body[0], (cst.Import, cst.ImportFrom))
                    or (i == 0 and isinstance(stmt.body[0], cst.Expr) and isinstance(
                        stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))):
                after = stmt
        if after is not None:
            return self.line_after(after, statement)
        line, _ = self.start(body[0])
        return self.inserting(line, 1, f"{statement}{self.newline}")


_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)


def _names(node: cst.CSTNode) -> set[str]:
    """Every name ``node`` uses or binds outside comprehensions (whose variables are their
    own): a variable the repair's code adds must be none of them."""
    found: set[str] = set()

    class Names(cst.CSTVisitor):
        def on_visit(self, child: cst.CSTNode) -> bool:
            if isinstance(child, cst.Name):
                found.add(child.value)
            return not isinstance(child, _COMPREHENSIONS)
    node.visit(Names())
    return found


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    return name


@functools.lru_cache(maxsize=4)
def _parse(path: str, source: str) -> Parsed | InputError:
    """The file parsed, once per content (the findings of all its models share it)."""
    try:
        return Parsed(path, source)
    except InputError as exc:
        return exc


def parsed(path: str) -> Parsed:
    """The file at ``path`` as it is now, parsed."""
    result = _parse(path, texts.read(path)[0])
    if isinstance(result, InputError):
        raise result
    return result


def patch(edits: Sequence[Placed]) -> tuple[tuple[Replacement, ...], str]:
    """The replacements that make ``edits`` (an InputError when one cannot be made safely),
    and their unified diff. Edits of one call merge (two keywords appended to it become one
    replacement); a replacement that changes nothing is left out."""
    replacements: list[Replacement] = []
    diff = []
    for path in sorted({e.path for e in edits}):
        file = parsed(path)
        made = [r for e in edits if e.path == path for r in file.replacements(e)]
        try:
            merged = texts.merge(r for r in made if file.text.slice(r) != r.text)
        except texts.OverlapError:
            raise InputError("the fix's edits overlap.", path=path) from None
        replacements += merged
        diff.append(file.text.diff(path, merged))
    return tuple(replacements), "".join(diff)
