"""Source patches with libcst: edit the constructor call that built a module, keep everything
else (formatting, comments) byte for byte, and render the result as a unified diff.

An edit is a dict ``{"path", "line", "col", "action", ...}`` naming the call by the position of
its first character (1-based line and column, as bnlint's sites record them).
"""

from __future__ import annotations

import difflib
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from ..errors import InputError


def _set_kwarg(call: cst.Call, edit: dict[str, Any]) -> cst.Call:
    """Set argument ``name`` to ``value``: replace it where given (by keyword, or by position
    ``position``), else append it as a keyword, following the call's own layout."""
    value = cst.parse_expression(edit["value"])
    args = list(call.args)
    for i, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value == edit["name"]:
            args[i] = arg.with_changes(value=value)
            return call.with_changes(args=args)
    positional = [i for i, a in enumerate(args) if a.keyword is None and not a.star]
    position = edit.get("position")
    if position is not None and position < len(positional):
        i = positional[position]
        args[i] = args[i].with_changes(value=value)
        return call.with_changes(args=args)
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


ACTIONS: dict[str, Callable[[cst.Call, dict[str, Any]], cst.Call]] = {
    "set_kwarg": _set_kwarg,
}


class _Editor(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, edits: list[dict[str, Any]]):
        super().__init__()
        self.by_position: dict[tuple[int, int], list[dict]] = defaultdict(list)
        for edit in edits:
            self.by_position[(edit["line"], edit["col"])].append(edit)
        self.applied = 0

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        start = self.get_metadata(PositionProvider, original).start
        for edit in self.by_position.get((start.line, start.column + 1), []):
            updated = ACTIONS[edit["action"]](updated, edit)
            self.applied += 1
        return updated


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
    shown = display_path(path)
    return "".join(difflib.unified_diff(old.splitlines(keepends=True),
                                        new.splitlines(keepends=True),
                                        f"a/{shown}", f"b/{shown}"))


def patch(edits: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Apply edits file by file: ``{path: (old_text, new_text)}``."""
    by_path: dict[str, list[dict]] = defaultdict(list)
    for edit in edits:
        by_path[edit["path"]].append(edit)
    out = {}
    for path, file_edits in by_path.items():
        old = Path(path).read_text(encoding="utf-8")
        out[path] = (old, apply(old, file_edits, path))
    return out


def diff(edits: list[dict[str, Any]]) -> str:
    """One unified diff for all edits, files in path order."""
    return "".join(unified_diff(p, old, new) for p, (old, new) in sorted(patch(edits).items()))
