"""Source locations in the user's code: where each module was built, where an op was called.

While :func:`recording` is active, every ``nn.Module`` constructed records the position of the
expression that built it (``self.bn1 = nn.BatchNorm2d(64)``, or its element inside
``nn.Sequential(...)``): the innermost frame outside the constructor chain and outside torch.
"""

from __future__ import annotations

import contextlib
import functools
import linecache
import os
import sys
import sysconfig
import types
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

_LIBRARY_DIRS = tuple(
    str(Path(p).resolve()) + os.sep for p in {
        Path(torch.__file__).parent,
        Path(__file__).parent.parent,  # bnlint
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["platstdlib"],
        # installed packages (transformers, timm...): a layer they build is located at the
        # user's call that built the model (a venv's are under platstdlib already)
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    })


@dataclass(frozen=True)
class Site:
    """A span of source: 1-based lines, 1-based columns counted in characters (as editors
    count, and SARIF's ``unicodeCodePoints``), the end exclusive."""
    path: str
    line: int
    col: int
    end_line: int
    end_col: int

    def to_dict(self) -> dict:
        return asdict(self)


_CLAIMED: set[str] = set()  # files linted as the user's though under an installed package


def claim(filename: str) -> None:
    """Treat ``filename`` as user code even inside an installed package (bnlint was given a
    library's model file: its findings point into it)."""
    _CLAIMED.add(os.path.realpath(filename))
    is_library_file.cache_clear()


@functools.lru_cache(maxsize=4096)
def is_library_file(filename: str) -> bool:
    """True for torch, bnlint, the standard library and installed packages (but a file
    :func:`claim` names): frames we look past to the user's."""
    if filename.startswith("<"):
        return True
    real = os.path.realpath(filename)
    return real not in _CLAIMED and real.startswith(_LIBRARY_DIRS)


def frame_site(frame: types.FrameType, lasti: int | None = None,
               lineno: int | None = None) -> Site:
    """The span of the expression a frame is executing (Python 3.11 position tables); a
    traceback entry passes its own instruction and line (the frame has moved on)."""
    code = frame.f_code
    index = (frame.f_lasti if lasti is None else lasti) // 2
    line = end_line = lineno or frame.f_lineno or code.co_firstlineno
    col = end_col = None
    positions = _positions(code)
    if index < len(positions):
        pos = positions[index]
        line = pos[0] or line
        end_line, col, end_col = pos[1] or line, pos[2], pos[3]
    path = code.co_filename
    return Site(path, line, _char_col(path, line, (col or 0) + 1), end_line,
                _char_col(path, end_line, (end_col or 0) + 1))


@functools.lru_cache(maxsize=4096)
def _positions(code: types.CodeType) -> tuple[tuple[int | None, ...], ...]:
    """A code object's position table, read once: every module a model builds asks where
    its constructor's caller is (16k times for the folders bench's 69 models)."""
    return tuple(code.co_positions())


def _char_col(path: str, line: int, byte_col: int) -> int:
    """A 1-based column in characters, from Python's (which counts the line's UTF-8 bytes)."""
    text = linecache.getline(path, line)
    if text.isascii():  # the same count (or the source is unknown: left as it is)
        return byte_col
    return len(text.encode("utf-8")[:byte_col - 1].decode("utf-8", "ignore")) + 1


def user_frame(frame: types.FrameType | None) -> types.FrameType | None:
    """The innermost frame at or above ``frame`` that is in user code."""
    while frame is not None and is_library_file(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def caller_site(depth: int = 1) -> Site | None:
    """The site of the innermost user-code frame above the caller."""
    frame = user_frame(sys._getframe(depth + 1))
    return frame_site(frame) if frame else None


def traceback_site(tb: types.TracebackType | None) -> Site | None:
    """The innermost user-code frame of an exception's traceback."""
    found = None
    while tb is not None:
        if not is_library_file(tb.tb_frame.f_code.co_filename):
            found = frame_site(tb.tb_frame, tb.tb_lasti, tb.tb_lineno)
        tb = tb.tb_next
    return found


_SITES: weakref.WeakKeyDictionary[nn.Module, Site] = weakref.WeakKeyDictionary()


def site_of(module: nn.Module) -> Site | None:
    """Where ``module`` was built, if it was built while :func:`recording` was active."""
    return _SITES.get(module)


def _construction_site(module: nn.Module, frame: types.FrameType | None) -> Site | None:
    # Skip the constructor chain (__init__ frames of this very object), then library frames.
    while frame is not None:
        in_ctor = frame.f_code.co_name == "__init__" and frame.f_locals.get("self") is module
        if not in_ctor and not is_library_file(frame.f_code.co_filename):
            return frame_site(frame)
        frame = frame.f_back
    return None


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Record the construction site of every nn.Module built inside the block."""
    original = nn.Module.__init__

    def __init__(self, *args, **kwargs):  # noqa: N807 - replaces nn.Module.__init__
        original(self, *args, **kwargs)
        if self not in _SITES:
            site = _construction_site(self, sys._getframe(1))
            if site is not None:
                _SITES[self] = site

    nn.Module.__init__ = __init__
    try:
        yield
    finally:
        nn.Module.__init__ = original
