"""In-code suppression: ``# bnlint: ignore[BNL101]`` (or a bare ``# bnlint: ignore``) on the
line that builds the module, or on any line of its constructor call; and ``--add-noqa``, which
writes those directives."""

from __future__ import annotations

import ast
import functools
import io
import os
import re
import tokenize

from ..errors import InputError
from ..files import write_atomic

_DIRECTIVE = re.compile(r"#\s*bnlint:\s*ignore(?:\[([A-Za-z0-9_,\s]*)\])?")


def _lines(path: str) -> tuple[str, ...]:
    try:
        return _read(path, os.stat(path).st_mtime_ns)
    except OSError:
        return ()


@functools.lru_cache(maxsize=64)
def _read(path: str, mtime_ns: int) -> tuple[str, ...]:
    try:
        with tokenize.open(path) as fh:  # the encoding Python reads it in
            return tuple(fh.read().splitlines())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return ()


def ignored_codes(path: str, first: int, last: int) -> set[str] | None:
    """Codes suppressed on lines first..last; ``{"*"}`` for a bare ignore, None for none."""
    lines = _lines(path)
    codes: set[str] = set()
    for text in lines[max(first - 1, 0):last]:
        for match in _DIRECTIVE.finditer(text):
            listed = match.group(1)
            if listed is None:
                codes.add("*")
            else:
                codes.update(c.strip().upper() for c in listed.split(",") if c.strip())
    return codes or None


def is_suppressed(code: str, path: str | None, line: int | None, end_line: int | None) -> bool:
    if not path or not line:
        return False
    codes = ignored_codes(path, line, end_line or line)
    return bool(codes) and ("*" in codes or code in codes)


def _unsafe_line_ends(text: str) -> set[int]:
    """Lines (1-based) whose end a comment cannot follow: inside a string that spans lines, or
    continued with a backslash."""
    unsafe = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
            unsafe.update(range(tok.start[0], tok.end[0]))
    unsafe.update(i for i, line in enumerate(text.splitlines(), 1)
                  if line.rstrip().endswith("\\"))
    return unsafe


def _with_codes(line: str, codes: set[str]) -> str | None:
    """``line`` with ``codes`` added to its directive (merged into one it has, else appended);
    None when it already suppresses them all."""
    body = line.rstrip("\r\n")
    ending = line[len(body):]
    match = _DIRECTIVE.search(body)
    if match is None:
        return f"{body.rstrip()}  # bnlint: ignore[{', '.join(sorted(codes))}]{ending}"
    if match.group(1) is None:
        return None  # a bare ignore suppresses every code
    have = {c.strip().upper() for c in match.group(1).split(",") if c.strip()}
    if codes <= have:
        return None
    merged = f"# bnlint: ignore[{', '.join(sorted(have | codes))}]"
    return body[:match.start()] + merged + body[match.end():] + ending


def add_directives(path: str, spans: list[tuple[int, int, str]]) -> int:
    """Insert ``# bnlint: ignore[CODE]`` so each (line, end_line, code) span is suppressed: on
    the line of the span that already has a directive, else on its first line whose end a
    comment can follow. The file is written (atomically, newlines and encoding kept) only when
    the result parses to the same syntax tree, so a directive never breaks it. The number of
    codes added."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        encoding = tokenize.detect_encoding(io.BytesIO(raw).readline)[0]
        text = raw.decode(encoding)
        tree = ast.dump(ast.parse(text))
        unsafe = _unsafe_line_ends(text)
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}.", path=path) from None
    except (SyntaxError, UnicodeDecodeError, tokenize.TokenError) as exc:
        raise InputError(f"cannot add directives: the file no longer parses ({exc}).",
                         path=path) from None
    lines = text.splitlines(keepends=True)
    wanted: dict[int, set[str]] = {}
    for first, last, code in spans:
        span = range(first, max(first, last) + 1)
        marked = [n for n in span if n <= len(lines) and _DIRECTIVE.search(lines[n - 1])]
        usable = [n for n in span if n <= len(lines) and n not in unsafe]
        target = (marked or usable or [None])[0]
        if target is not None:
            wanted.setdefault(target, set()).add(code.upper())
    added = 0
    for number, codes in wanted.items():
        new = _with_codes(lines[number - 1], codes)
        if new is not None:
            lines[number - 1] = new
            added += len(codes)
    if not added:
        return 0
    new_text = "".join(lines)
    try:
        same = ast.dump(ast.parse(new_text)) == tree
    except SyntaxError:
        same = False
    if not same:  # a bnlint bug: refuse rather than break the file
        raise InputError("adding the directives would change the code, so the file was left "
                         "as it was; please report it.", path=path)
    write_atomic(path, new_text, encoding, what="the directives", unchanged=text)
    return added
