"""A model file's source and syntax tree, read and parsed once (the loss inference, the
hand-written log-losses and the checkpoint check all read the file's code, nothing runs)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path


@functools.lru_cache(maxsize=64)
def parsed(path: str) -> tuple[ast.Module, str] | None:
    """The syntax tree and source of the file at ``path``; None when it cannot be read or
    parsed."""
    try:
        source = Path(path).read_text(encoding="utf-8")
        return ast.parse(source), source
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
