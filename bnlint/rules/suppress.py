"""In-code suppression: ``# bnlint: ignore[BNL101]`` (or a bare ``# bnlint: ignore``) on the
line that builds the module, or on any line of its constructor call."""

from __future__ import annotations

import functools
import os
import re
import tokenize

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
