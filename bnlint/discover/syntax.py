"""A model file's source and syntax tree, read and parsed once (the model and input
discovery, the loss inference, the hand-written log-losses and the checkpoint check all read
the file's code, nothing runs)."""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path


@functools.lru_cache(maxsize=64)
def parsed(path: str) -> tuple[ast.Module, str] | None:
    """The syntax tree and source of the file at ``path`` (decoded as Python does: UTF-8, or
    the encoding its coding line names); None when it cannot be read or parsed."""
    try:
        source = importlib.util.decode_source(Path(path).read_bytes())
        return ast.parse(source), source
    except (OSError, SyntaxError, UnicodeDecodeError, LookupError, ValueError):
        return None
