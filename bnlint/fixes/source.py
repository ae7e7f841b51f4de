"""Source patches with libcst: edit the code that built a module, keep everything else
(formatting, comments) byte for byte, and render the result as a unified diff.

An edit is a dict ``{"path", "action", ...}``. Call edits name the call by its span (``line``,
``col``, ``end_line``, ``end_col``: 1-based, end exclusive, as bnlint's sites record them):

- ``set_kwarg`` {name, value, position?}: set a constructor argument (``bias=False``);
- ``remove_op``: make the op the identity: ``nn.ReLU()`` -> ``nn.Identity()`` for a module,
  ``F.relu(x)`` / ``x.relu()`` -> ``x`` for a functional op.

Model edits name a top-level model definition (``model``: a class, a factory function or an
assigned instance):

- ``call_after_build`` {function}: run ``function(model)`` once the model is built: appended
  to the class's ``__init__`` as ``function(self)``, or wrapped around what the factory
  returns / the instance's value. The function's module is imported when missing.
"""

from __future__ import annotations

import difflib
import io
import os
import tokenize
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from ..errors import InputError


def _callee(call: cst.Call) -> str:
    """The called name's last part: ``Conv2d`` for ``nn.Conv2d(...)``, ``relu`` for ``F.relu``."""
    func = call.func
    return func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", "")


def _set_kwarg(call: cst.Call, edit: dict[str, Any]) -> cst.Call:
    """Set argument ``name`` to ``value``: replace it where given (by keyword, or by position
    ``position``), else append it as a keyword, following the call's own layout. Only a module
    constructor (``nn.BatchNorm2d(...)``) takes the edit, and only where no ``*args`` or
    ``**kwargs`` may already pass the argument."""
    if not _callee(call)[:1].isupper():
        raise InputError(f"{_callee(call)}() is not a module constructor, so it takes no "
                         f"{edit['name']}= to set.")
    value = cst.parse_expression(edit["value"])
    args = list(call.args)
    for i, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value == edit["name"]:
            args[i] = arg.with_changes(value=value)
            return call.with_changes(args=args)
    starred = [i for i, a in enumerate(args) if a.star]
    leading = args[:starred[0]] if starred else args  # positions are known up to a *args
    positional = [i for i, a in enumerate(leading) if a.keyword is None]
    position = edit.get("position")
    if position is not None and position < len(positional):
        i = positional[position]
        args[i] = args[i].with_changes(value=value)
        return call.with_changes(args=args)
    if starred:
        raise InputError(f"the call's *args or **kwargs may already pass {edit['name']}.")
    new = cst.Arg(value=value, keyword=cst.Name(edit["name"]),
                  equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                        whitespace_after=cst.SimpleWhitespace("")))
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    # Separator between arguments: reuse the call's own (e.g. newline + indent), else ", ".
    between = (args[-2].comma if len(args) > 1 and args[-2].comma is not cst.MaybeSentinel.DEFAULT
               else cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    if last.comma is not cst.MaybeSentinel.DEFAULT:  # trailing comma: keep it at the end
        new = new.with_changes(comma=last.comma)
    args[-1] = last.with_changes(comma=between)
    return call.with_changes(args=[*args, new])


def _remove_op(call: cst.Call, edit: dict[str, Any]) -> cst.BaseExpression:
    """The identity in place of the op: its input for a functional or method call, an
    ``Identity`` of the same namespace for a module constructor (it ignores arguments)."""
    func = call.func
    if _callee(call)[:1].isupper():  # a constructor: nn.ReLU(inplace=True) -> nn.Identity()
        if isinstance(func, cst.Attribute):
            return call.with_changes(func=func.with_changes(attr=cst.Name("Identity")), args=[])
        return call.with_changes(func=cst.Name("Identity"), args=[])
    if isinstance(func, cst.Attribute) and not call.args:  # x.relu() -> x
        return func.value
    return call.args[0].value  # F.relu(x, ...) -> x


CALL_EDITS: dict[str, Callable[[cst.Call, dict[str, Any]], cst.BaseExpression]] = {
    "set_kwarg": _set_kwarg,
    "remove_op": _remove_op,
}


def _wrap(value: cst.BaseExpression, function: str) -> cst.BaseExpression:
    if isinstance(value, cst.Call) and cst.Module([]).code_for_node(value.func) == function:
        return value  # already wrapped
    return cst.Call(func=cst.parse_expression(function), args=[cst.Arg(value=value)])


class _Returns(cst.CSTTransformer):
    """Wrap the values a function returns, leaving nested functions alone."""

    def __init__(self, function: str):
        super().__init__()
        self.function = function

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        if updated.value is None:
            return updated
        return updated.with_changes(value=_wrap(updated.value, self.function))


class _Editor(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, edits: list[dict[str, Any]]):
        super().__init__()
        self.by_span: dict[tuple[int, int, int, int], list[dict]] = defaultdict(list)
        self.by_model: dict[str, list[dict]] = defaultdict(list)
        for edit in edits:
            if edit["action"] in CALL_EDITS:
                span = (edit["line"], edit["col"], edit["end_line"], edit["end_col"])
                self.by_span[span].append(edit)
            else:
                self.by_model[edit["model"]].append(edit)
        self.imports = sorted({e["function"].rsplit(".", 1)[0] for e in edits
                               if e["action"] == "call_after_build"})
        self.applied = 0
        self.depth = 0  # nesting in classes/functions: model edits apply at the top level

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        where = self.get_metadata(PositionProvider, original)
        span = (where.start.line, where.start.column + 1, where.end.line, where.end.column + 1)
        result: cst.BaseExpression = updated
        for edit in self.by_span.get(span, []):
            result = CALL_EDITS[edit["action"]](result, edit)
            self.applied += 1
        return result

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.depth += 1

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.depth += 1

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self.depth -= 1
        edits = self.by_model.get(updated.name.value, []) if self.depth == 0 else []
        for edit in edits:
            body = list(updated.body.body)
            for i, stmt in enumerate(body):
                if isinstance(stmt, cst.FunctionDef) and stmt.name.value == "__init__":
                    call = cst.parse_statement(f"{edit['function']}(self)\n")
                    if not any(_code(s) == _code(call) for s in stmt.body.body):
                        body[i] = stmt.with_changes(body=stmt.body.with_changes(
                            body=[*stmt.body.body, call]))
                    self.applied += 1
            updated = updated.with_changes(body=updated.body.with_changes(body=body))
        return updated

    def leave_FunctionDef(self, original: cst.FunctionDef,
                          updated: cst.FunctionDef) -> cst.FunctionDef:
        self.depth -= 1
        for edit in self.by_model.get(updated.name.value, []) if self.depth == 0 else []:
            updated = updated.with_changes(body=updated.body.visit(_Returns(edit["function"])))
            self.applied += 1
        return updated

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        if self.depth == 0 and len(updated.targets) == 1 and \
                isinstance(updated.targets[0].target, cst.Name):
            for edit in self.by_model.get(updated.targets[0].target.value, []):
                updated = updated.with_changes(value=_wrap(updated.value, edit["function"]))
                self.applied += 1
        return updated

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        missing = [m for m in self.imports if not _imports(updated, m)]
        if not missing:
            return updated
        body = list(updated.body)
        at = 0
        for i, stmt in enumerate(body):
            if (isinstance(stmt, cst.SimpleStatementLine) and isinstance(
                    stmt.body[0], (cst.Import, cst.ImportFrom))) or (
                    i == 0 and _is_docstring(stmt)):
                at = i + 1
        new = [cst.parse_statement(f"import {m}\n") for m in missing]
        return updated.with_changes(body=[*body[:at], *new, *body[at:]])


def _code(stmt: cst.BaseStatement) -> str:
    return cst.Module(body=[stmt]).code.strip()


def _is_docstring(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and isinstance(stmt.body[0], cst.Expr) \
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))


def _imports(module: cst.Module, name: str) -> bool:
    """Whether ``import name`` (or ``import name as ...``) is at the top level."""
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for part in stmt.body:
                if isinstance(part, cst.Import) and any(
                        cst.Module([]).code_for_node(a.name) == name and a.asname is None
                        for a in part.names):
                    return True
    return False


def apply(source: str, edits: list[dict[str, Any]], path: str) -> str:
    """``source`` with ``edits`` applied; every edit must find its call."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        raise InputError(f"cannot parse the file to patch it: {exc.message}.", path=path,
                         line=exc.raw_line) from None
    editor = _Editor(edits)
    result = MetadataWrapper(module).visit(editor).code
    if editor.applied != len(edits):
        raise InputError("the file changed since it was linted: a fix no longer finds the code "
                         "it edits.", path=path, hint="Run bnlint again.")
    return result


def display_path(path: str) -> str:
    """The path as diffs show it: relative to the working directory when under it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def unified_diff(path: str, old: str, new: str) -> str:
    """The diff that ``git apply`` and ``patch -p1`` take: lines split at "\n" only (a CRLF
    file's "\r" stays in its lines), a last line without a newline marked as such."""
    shown = display_path(path)
    lines = difflib.unified_diff(_lines(old), _lines(new), f"a/{shown}", f"b/{shown}")
    return "".join(line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n"
                   for line in lines)


def _lines(text: str) -> list[str]:
    return io.StringIO(text, newline="\n").readlines()


def read(path: str) -> tuple[str, str]:
    """The file's text as stored (newlines untranslated) and its encoding, from a BOM
    (``utf-8-sig``, which writes the BOM back) or a coding cookie."""
    raw = Path(path).read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        return raw.decode(encoding), encoding
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot decode the file to patch it: {exc}.", path=path) from None


def patch(edits: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Apply edits file by file: ``{path: (old_text, new_text)}``."""
    by_path: dict[str, list[dict]] = defaultdict(list)
    for edit in edits:
        if edit not in by_path[edit["path"]]:
            by_path[edit["path"]].append(edit)
    out = {}
    for path, file_edits in by_path.items():
        old, _ = read(path)
        out[path] = (old, apply(old, file_edits, path))
    return out


def diff(edits: list[dict[str, Any]]) -> str:
    """One unified diff for all edits, files in path order."""
    return "".join(unified_diff(p, old, new) for p, (old, new) in sorted(patch(edits).items()))
