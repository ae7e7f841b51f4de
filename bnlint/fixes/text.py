"""Replacements on a file's text, without libcst: read the file as stored, merge the
replacements of several fixes, apply them, and render them as a unified diff.

Positions are those of :class:`~bnlint.findings.Replacement`: 1-based lines as Python counts
them (ended by "\\r\\n", "\\r" or "\\n"), 1-based columns in characters, the end exclusive.
"""

from __future__ import annotations

import bisect
import dataclasses
import io
import os
import re
import tokenize
from collections.abc import Iterable
from pathlib import Path

from ..errors import InputError
from ..findings import Replacement

_NEWLINE = re.compile(r"\r\n|\r|\n")
CONTEXT = 3  # lines of context around a change, as diff -u and git show


class OverlapError(ValueError):
    """Two replacements change the same text differently."""


class StaleError(ValueError):
    """A replacement's span no longer holds the text it was made for: the file changed."""


def read(path: str) -> tuple[str, str]:
    """The file's text as stored (newlines untranslated) and its encoding, from a BOM
    (``utf-8-sig``, which writes the BOM back) or a coding cookie."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the file to patch it: {exc.strerror}.", path=path) from None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        return raw.decode(encoding), encoding
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot decode the file to patch it: {exc}.", path=path) from None


def _once(r: Replacement) -> bool:
    """Whether two fixes that make ``r`` make it once: a replaced span, or a whole line
    inserted (an import), as opposed to text inserted inside a line, which adds up (two
    functions wrapped around one value each add a closing parenthesis)."""
    return (r.line, r.col) != (r.end_line, r.end_col) or (r.col == 1 and r.text.endswith(
        ("\n", "\r")))


def merge(replacements: Iterable[Replacement]) -> tuple[Replacement, ...]:
    """One set of replacements from several (each made against the same text), in file
    order: a span replaced or a line inserted twice the same is made once, and insertions at
    one point (two keywords appended to one call) are joined into one replacement, in the
    order given, with what replaces a span starting there. Raises :class:`OverlapError` when two
    others overlap."""
    given, seen = [], set()
    for r in replacements:
        if not (_once(r) and r in seen):
            given.append(r)
            seen.add(r)
    out: list[Replacement] = []
    for r in sorted(given, key=lambda r: (r.line, r.col, r.end_line, r.end_col)):
        last = out[-1] if out else None
        if last is None or ((last.end_line, last.end_col) <= (r.line, r.col)
                            and (last.line, last.col) != (r.line, r.col)):
            out.append(r)
        elif (last.line, last.col) == (last.end_line, last.end_col) == (r.line, r.col):
            out[-1] = Replacement(r.path, r.line, r.col, r.end_line, r.end_col,
                                  last.text + r.text, r.old)
        else:
            raise OverlapError(f"line {r.line} is changed by two fixes")
    return tuple(out)


def repository_root(path: str) -> str | None:
    """The root of the git repository the file at ``path`` (its real path) lies in: the
    nearest folder above it holding ``.git`` (a folder, or a file in a worktree or
    submodule); None outside a repository."""
    folder = os.path.dirname(os.path.realpath(path))
    while not os.path.exists(os.path.join(folder, ".git")):
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return folder


def display_path(path: str) -> str:
    """The path as diffs show it: relative to its git repository's root, so that ``git
    apply`` takes the diff there from wherever bnlint ran; outside a repository, relative
    to the working directory when under it."""
    root = repository_root(path)
    if root is not None:
        return Path(os.path.relpath(os.path.realpath(path), root)).as_posix()
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _lines(text: str) -> list[str]:
    """Lines split at "\\n" only, as git and patch split them (a CRLF file's "\\r" stays in
    its lines)."""
    return io.StringIO(text, newline="\n").readlines()


def _range(start: int, stop: int) -> str:
    """A hunk's line range, as difflib and GNU diff write it."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + (1 if length else 0)},{length}"


class Text:
    """A file's text and where its lines start, found once for all its replacements."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]  # Python's lines
        self.breaks = [0, *(m.end() for m in re.finditer("\n", text))]  # the diff's lines
        self.lines = len(self.breaks) - (text.endswith("\n") or not text)

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col - 1

    def slice(self, r: Replacement) -> str:
        """The text that ``r`` replaces."""
        return self.text[self.offset(r.line, r.col):self.offset(r.end_line, r.end_col)]

    def line(self, line: int) -> str:
        """Python's line ``line`` (1-based), with its newline; "" past the end."""
        if line > len(self.starts):
            return ""
        return self.text[self.starts[line - 1]:self.starts[line] if line < len(self.starts)
                         else None]

    def anchor(self, r: Replacement) -> str:
        """What ``r`` is made against (:attr:`Replacement.old`): the text of its span, or for
        an insertion the line it goes into."""
        if (r.line, r.col) == (r.end_line, r.end_col):
            return self.line(r.line)
        return self.slice(r)

    def made(self, path: str, line: int, col: int, end_line: int, end_col: int,
             new: str) -> Replacement:
        """A replacement of this text, recording what it is made against."""
        r = Replacement(path, line, col, end_line, end_col, new)
        return dataclasses.replace(r, old=self.anchor(r))

    def _holds(self, r: Replacement) -> bool:
        """Whether ``r``'s position lies in the text and holds what it was made against."""
        for line, col in ((r.line, r.col), (r.end_line, r.end_col)):
            if not 1 <= line <= len(self.starts) or not 1 <= col <= len(self.line(line)) + 1:
                return False
        return self.anchor(r) == r.old

    def spans(self, replacements: Iterable[Replacement]) -> list[tuple[int, int, str]]:
        """(start, end, new text) offsets of the merged replacements, in order. Raises
        :class:`StaleError` when a span does not hold the text the replacement was made for."""
        out = []
        for r in merge(replacements):
            if not self._holds(r):
                raise StaleError(f"line {r.line} no longer holds {r.old!r}")
            out.append((self.offset(r.line, r.col), self.offset(r.end_line, r.end_col), r.text))
        return out

    def apply(self, replacements: Iterable[Replacement]) -> str:
        """The text with the replacements made."""
        out, at = [], 0
        for start, end, new in self.spans(replacements):
            out += [self.text[at:start], new]
            at = end
        return "".join(out) + self.text[at:]

    def _line(self, i: int) -> str:
        """Line ``i`` (0-based) as the diff splits them, at "\n" only."""
        return self.text[self.breaks[i]:self.breaks[i + 1] if i + 1 < len(self.breaks) else None]

    def _changes(self, replacements: Iterable[Replacement]) -> list[tuple[int, int, list[str]]]:
        """(first old line, end old line, new lines) per run of changed lines, in order: the
        lines a group of replacements touches, less those that stay the same at either end."""
        windows: list[list] = []  # [first line, last line, spans]
        for start, end, new in self.spans(replacements):
            first = bisect.bisect_right(self.breaks, start) - 1
            last = bisect.bisect_right(self.breaks, end) - 1
            if windows and first <= windows[-1][1]:
                windows[-1][1] = max(last, windows[-1][1])
                windows[-1][2].append((start, end, new))
            else:
                windows.append([first, last, [(start, end, new)]])
        changes = []
        for first, last, spans in windows:
            begin = self.breaks[first]
            stop = self.breaks[last + 1] if last + 1 < len(self.breaks) else len(self.text)
            piece, at = [], begin
            for start, end, new in spans:
                piece += [self.text[at:start], new]
                at = end
            before = _lines(self.text[begin:stop])
            after = _lines("".join(piece) + self.text[at:stop])
            while before and after and before[0] == after[0]:
                before, after, first = before[1:], after[1:], first + 1
            while before and after and before[-1] == after[-1]:
                before, after = before[:-1], after[:-1]
            if changes and changes[-1][1] == first:  # adjacent: one block, as diff shows it
                changes[-1] = (changes[-1][0], first + len(before), changes[-1][2] + after)
            elif before or after:
                changes.append((first, first + len(before), after))
        return changes

    def diff(self, path: str, replacements: Iterable[Replacement]) -> str:
        """The replacements as the unified diff that ``git apply`` and ``patch -p1`` take,
        with three lines of context; a last line without a newline is marked as such."""
        changes = self._changes(replacements)
        if not changes:
            return ""
        hunks: list[list] = []  # runs of changes at most 2 * CONTEXT lines apart
        for change in changes:
            if hunks and change[0] - hunks[-1][-1][1] <= 2 * CONTEXT:
                hunks[-1].append(change)
            else:
                hunks.append([change])
        shown = display_path(path)
        out = [f"--- a/{shown}\n", f"+++ b/{shown}\n"]
        shift = 0  # new lines less old lines in the hunks so far
        for hunk in hunks:
            begin = max(0, hunk[0][0] - CONTEXT)
            stop = min(self.lines, hunk[-1][1] + CONTEXT)
            grown = sum(len(new) - (end - first) for first, end, new in hunk)
            body, at = [], begin
            for first, end, new in hunk:
                body += [" " + self._line(i) for i in range(at, first)]
                body += ["-" + self._line(i) for i in range(first, end)]
                body += ["+" + line for line in new]
                at = end
            body += [" " + self._line(i) for i in range(at, stop)]
            out.append(f"@@ -{_range(begin, stop)} +{_range(begin + shift, stop + shift + grown)}"
                       " @@\n")
            out += [line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n"
                    for line in body]
            shift += grown
        return "".join(out)
