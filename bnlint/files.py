"""The user's files, read and written safely: UTF-8 text with a located decoding error, and
atomic replacement (a failure leaves the old file whole)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import InputError


def read_text(path: Path, what: str) -> str:
    """The text of a UTF-8 file; one that cannot be read or decoded is an InputError."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror}.", path=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x}).",
                         path=str(path), line=data.count(b"\n", 0, exc.start) + 1,
                         hint="Save it as UTF-8.") from None


def may_hold_models(path: Path) -> bool:
    """Whether a folder walk lints ``path``: a .py file, not a test (``test_*``, ``conftest``),
    whose text mentions torch (others are skipped without being imported)."""
    if path.suffix != ".py" or path.name.startswith(("test_", "conftest")):
        return False
    try:
        return "torch" in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def write_atomic(path: str, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` with :func:`replace_atomic`. Newlines are written as they
    are in ``text``."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            fh.write(text)
    replace_atomic(path, write)


def replace_atomic(path: str, write: Callable[[str], None]) -> None:
    """Replace ``path`` by a file ``write`` makes at a temporary path in the same folder, so
    a failure leaves the old file whole. The file keeps the old one's permissions, or gets
    those of a new file under the umask."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".bnlint-", suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        if os.path.exists(path):
            mode = os.stat(path).st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
