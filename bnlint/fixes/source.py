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

- ``call_after_build`` {function}: run ``function(model)`` once the model is built: appended
  to the class's ``__init__`` as ``function(self)``, or wrapped around what the factory
  returns / the instance's value. The function's module is imported when it is not.
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


@dataclass(frozen=True)
class Placed:
    """An edit at its place: a call edit at ``span``, the call's (line, col, end_line,
    end_col) as Python reports them (1-based, the end exclusive, columns in UTF-8 bytes); a
    model edit at the top-level definition named ``model``."""
    edit: Edit
    path: str
    span: tuple[int, int, int, int] | None = None
    position: int | None = None  # set_kwarg: the argument's position in the constructor
    model: str | None = None


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _callee(call: cst.Call) -> str:
    """The called name's last part: ``Conv2d`` for ``nn.Conv2d(...)``, ``relu`` for ``F.relu``."""
    func = call.func
    return func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", "")


def _is_call_of(node: cst.CSTNode | None, function: str) -> bool:
    return isinstance(node, cst.Call) and _code(node.func) == function


class _Returns(cst.CSTVisitor):
    """The return statements of a function, not of the functions or classes inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[cst.Return] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

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
        for stmt in self.module.body:
            for name, node in self._defined(stmt):
                self.definitions.setdefault(name, []).append(node)

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

    def _line(self, line: int) -> str:
        starts = self.text.starts
        return self.text.text[starts[line - 1]:starts[line] if line < len(starts) else None]

    def _char_col(self, line: int, byte_col: int) -> int:
        """A 1-based column in characters from Python's, in UTF-8 bytes."""
        text = self._line(line)
        if text.isascii():
            return byte_col
        return len(text.encode("utf-8")[:byte_col - 1].decode("utf-8", "ignore")) + 1

    def call_at(self, span: tuple[int, int, int, int]) -> cst.Call:
        line, col, end_line, end_col = span
        key = (line, self._char_col(line, col), end_line, self._char_col(end_line, end_col))
        if key not in self.calls:
            raise InputError("the file changed since it was linted: a fix no longer finds the "
                             "code it edits.", path=self.path, hint="Run bnlint again.")
        return self.calls[key]

    def replacing(self, node: cst.CSTNode, new: str) -> Replacement:
        r = self.ranges[node]
        return Replacement(self.path, r.start.line, r.start.column + 1, r.end.line,
                           r.end.column + 1, new)

    def inserting(self, line: int, col: int, new: str) -> Replacement:
        return Replacement(self.path, line, col, line, col, new)

    def start(self, node: cst.CSTNode) -> tuple[int, int]:
        return self.ranges[node].start.line, self.ranges[node].start.column + 1

    def end(self, node: cst.CSTNode) -> tuple[int, int]:
        return self.ranges[node].end.line, self.ranges[node].end.column + 1

    def line_after(self, node: cst.CSTNode, statement: str) -> Replacement:
        """``statement`` inserted as a line of its own after the line where ``node`` ends."""
        line = self.ranges[node].end.line
        if line < len(self.text.starts):  # the line ends with a newline
            return self.inserting(line + 1, 1, statement + self.newline)
        end = len(self._line(line)) + 1  # the last line, without a newline: keep it so
        return self.inserting(line, end, self.newline + statement)

    def indentation(self, node: cst.CSTNode) -> str:
        line, col = self.start(node)
        return self._line(line)[:col - 1]

    # ---------------------------------------------------------------------------- the edits

    def replacements(self, placed: Placed) -> list[Replacement]:
        """The replacements that make ``placed``'s edit here; an InputError when it cannot
        be made safely."""
        edit = placed.edit
        if edit.action == "set_kwarg":
            return self._set_kwarg(self.call_at(placed.span), edit, placed.position)
        if edit.action == "remove_op":
            return [self._remove_op(self.call_at(placed.span))]
        if edit.action == "call_after_build":
            return self._call_after_build(placed.model, edit.function)
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
            return self._line(line)[col - 1:next_col - 1] if len(args) >= 2 else ", "
        indent = self._line(next_line)[:next_col - 1]
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

    def _call_after_build(self, model: str | None, function: str) -> list[Replacement]:
        """``function(model)`` once the model is built, and ``import`` of its module."""
        nodes = self.definitions.get(model or "")
        if not nodes:
            raise InputError(f"the file has no top-level definition of {model} to add "
                             f"{function}() to.")
        out: list[Replacement] = []
        for node in nodes:
            if isinstance(node, cst.ClassDef):
                out += self._call_in_init(node, function)
            elif isinstance(node, cst.FunctionDef):
                returns = _Returns()
                node.body.visit(returns)
                out += [r for ret in returns.found if ret.value is not None
                        for r in self._wrap(ret.value, function)]
            else:
                out += self._wrap(node.value, function)
        module = function.rsplit(".", 1)[0]
        if out and "." in function and not self._imports(module):
            out.append(self._import(module))
        return out

    def _call_in_init(self, cls: cst.ClassDef, function: str) -> list[Replacement]:
        """``function(self)`` as the last statement of the class's ``__init__``."""
        init = next((s for s in getattr(cls.body, "body", ())
                     if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"), None)
        if init is None:
            raise InputError(f"class {cls.name.value} has no __init__ of its own to call "
                             f"{function}(self) from.")
        if not isinstance(init.body, cst.IndentedBlock):
            raise InputError(f"{cls.name.value}.__init__ is written on one line.")
        call = f"{function}(self)"
        body = init.body.body
        if any(isinstance(s, cst.SimpleStatementLine) and len(s.body) == 1
               and isinstance(s.body[0], cst.Expr) and _code(s.body[0].value) == call
               for s in body):
            return []
        return [self.line_after(body[-1], self.indentation(body[0]) + call)]

    def _wrap(self, value: cst.BaseExpression, function: str) -> list[Replacement]:
        """``function(value)``, unless the value is that call already."""
        if _is_call_of(value, function):
            return []
        return [self.inserting(*self.start(value), f"{function}("),
                self.inserting(*self.end(value), ")")]

    def _imports(self, name: str) -> bool:
        """Whether ``import name`` (or ``import name as ...``) is at the top level."""
        return any(isinstance(part, cst.Import) and any(
            _code(a.name) == name and a.asname is None for a in part.names)
            for stmt in self.module.body if isinstance(stmt, cst.SimpleStatementLine)
            for part in stmt.body)

    def _import(self, name: str) -> Replacement:
        """``import name`` after the last top-level import (or the docstring), else first."""
        body = self.module.body
        after = None
        for i, stmt in enumerate(body):
            if isinstance(stmt, cst.SimpleStatementLine) and (
                    isinstance(stmt.body[0], (cst.Import, cst.ImportFrom))
                    or (i == 0 and isinstance(stmt.body[0], cst.Expr) and isinstance(
                        stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))):
                after = stmt
        if after is not None:
            return self.line_after(after, f"import {name}")
        line, _ = self.start(body[0])
        return self.inserting(line, 1, f"import {name}{self.newline}")


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
