"""A model file's source and syntax tree, read and parsed once (the model and input
discovery, the loss inference, the hand-written log-losses and the checkpoint check all read
the file's code, nothing runs)."""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path


def parsed(path: str) -> tuple[ast.Module, str] | None:
    """The syntax tree and source of the file at ``path`` (decoded as Python does: UTF-8, or
    the encoding its coding line names); None when it cannot be read or parsed. The file is
    read at each call and parsed once per content, so a file rewritten in place (the detection
    study's cases, a long-lived process) is never answered with its old tree."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return _parse(data)


@functools.lru_cache(maxsize=64)
def _parse(data: bytes) -> tuple[ast.Module, str] | None:
    try:
        source = importlib.util.decode_source(data)
        return ast.parse(source), source
    except (SyntaxError, UnicodeDecodeError, LookupError, ValueError):
        return None
