"""The user's files: which a folder walk lints (:class:`Exclusions`: globs, .gitignore), read
and written safely: UTF-8 text with a located decoding error, and one way to write a file (a
report, a plot, a fixed model file): :func:`replace_atomic`.

A write goes to the real file behind a symlink; it refuses what is not a regular file (a
device, a FIFO), a read-only file and, when asked, a file that changed since it was read. A
file with one name is replaced atomically (a new file renamed over it: a failure leaves the
old one whole). A file with several hard links is written in place instead, so every name
keeps seeing it: renaming over one name would leave the others on the old text, as Vim and
Emacs avoid by default for the same reason. In place, the new content is first saved in full
beside the file, so a crash part-way through leaves it there (``.bnlint-*``), and a write that
fails puts the old content back.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


_SPECIAL = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
            (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISSOCK, "a socket"))


# What a folder walk skips unless ``exclude`` replaces this list (ruff's defaults that apply to
# Python code); hidden folders are skipped as well.
DEFAULT_EXCLUDE = (".git", ".hg", ".venv", "venv", "env", "__pycache__", "node_modules", "build",
                   "dist", "site-packages", ".tox", ".mypy_cache", ".pytest_cache")


@dataclass(frozen=True)
class Exclusions:
    """What a folder walk skips, as ruff does: files and folders matching ``patterns`` (globs;
    one without a slash matches a file or folder name anywhere, one with a slash the path
    relative to ``root``), hidden folders, and with ``gitignore`` what git ignores."""
    patterns: tuple[str, ...] = DEFAULT_EXCLUDE
    root: Path = Path()
    gitignore: bool = True

    def matches(self, path: Path) -> bool:
        """Whether a file or folder matches one of the patterns."""
        try:
            relative = path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            relative = None
        for pattern in self.patterns:
            pattern = pattern.rstrip("/")
            if "/" not in pattern:
                if fnmatch.fnmatchcase(path.name, pattern):
                    return True
            elif relative is not None and fnmatch.fnmatchcase(relative, pattern.lstrip("/")):
                return True
        return False

    def walk(self, folder: Path) -> list[Path]:
        """The .py files under ``folder`` that are not excluded, in order."""
        found = []
        for root, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                             and not self.matches(Path(root) / d))
            found.extend(Path(root) / n for n in sorted(names)
                         if n.endswith(".py") and not self.matches(Path(root) / n))
        if self.gitignore and found:
            ignored = git_ignored(found, folder)
            found = [p for p in found if p not in ignored]
        return found


def git_ignored(paths: Iterable[Path], folder: Path) -> set[Path]:
    """Those of ``paths`` (under ``folder``) that git ignores, as ``git check-ignore`` reads the
    .gitignore files, .git/info/exclude and the global excludes file; none when ``folder`` is
    not in a git work tree or git is not installed."""
    given = {str(p.absolute()): p for p in paths}
    try:
        proc = subprocess.run(["git", "check-ignore", "--stdin", "-z"], cwd=folder,
                              input="\0".join(given), capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return set()
    if proc.returncode not in (0, 1):  # 128: not a git work tree
        return set()
    return {given[name] for name in proc.stdout.split("\0") if name in given}


def writable(path: str, what: str, keep: Iterable[str] = ()) -> str:
    """The real path to write ``what`` at ``path`` to (a symlink's target, which need not
    exist yet). An InputError when that is not a regular file, is read-only, is one of
    ``keep`` (the files being linted), or lies in a missing or read-only folder."""
    real = os.path.realpath(path)
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise InputError(f"cannot write {what}: {exc.strerror}.", path=path) from None
    if mode is not None:
        kind = next((name for test, name in _SPECIAL if test(mode)), None)
        if kind:
            raise InputError(f"cannot write {what}: {real} is {kind}, not a regular file.",
                             path=path, hint="Give the path of a regular file.")
        if any(os.path.exists(k) and os.path.samefile(real, k) for k in keep):
            raise InputError(f"cannot write {what} over a file being linted.", path=path,
                             hint="Choose another path.")
        if not (os.access(real, os.W_OK) and mode & 0o222):  # root may write 0444: don't
            raise InputError(f"cannot write {what}: the file is read-only.", path=path,
                             hint="Make it writable (chmod u+w) or choose another path.")
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise InputError(f"cannot write {what}: the folder {folder} does not exist.", path=path,
                         hint="Create the folder or choose another path.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {what}: the folder {folder} is not writable.",
                         path=path, hint="Choose another path.")
    return real


def write_atomic(path: str, text: str, encoding: str = "utf-8", *, what: str = "the file",
                 unchanged: str | None = None) -> None:
    """Write ``text`` to ``path`` with :func:`replace_atomic`. Newlines are written as they
    are in ``text``. ``unchanged``: the file's text as it was read (in ``encoding``); the
    write is refused when the file no longer holds it."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            fh.write(text)

    def same(data: bytes) -> bool:
        try:
            return data.decode(encoding) == unchanged
        except UnicodeDecodeError:
            return False
    replace_atomic(path, write, what=what, unchanged=None if unchanged is None else same)


def replace_atomic(path: str, write: Callable[[str], None], *, what: str = "the file",
                   unchanged: Callable[[bytes], bool] | None = None) -> None:
    """Replace ``path`` (see :func:`writable`) by a file ``write`` makes at a temporary path
    in the same folder. The file keeps the old one's permissions, or gets those of a new file
    under the umask. ``unchanged`` is asked, right before the replace, whether the file's
    current bytes are those read earlier. OSErrors from writing propagate; the caller says
    what failed."""
    real = writable(path, what)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(real), prefix=".bnlint-",
                               suffix=os.path.splitext(path)[1])  # the format asked for
    os.close(fd)
    try:
        write(tmp)
        try:
            old = os.stat(real)
        except FileNotFoundError:
            old = None
        if old is not None:
            mode = old.st_mode & 0o7777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        if unchanged is not None and not unchanged(Path(real).read_bytes()):
            raise InputError(f"not writing {what}: the file changed since bnlint read it.",
                             path=path, hint="Run bnlint again.")
        if old is not None and old.st_nlink > 1:
            _write_in_place(real, tmp)
        else:
            os.replace(tmp, real)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_in_place(real: str, tmp: str) -> None:
    """Copy ``tmp`` (synced to disk first) over ``real`` in place, keeping its hard links;
    a failed write puts the old content back. ``tmp`` is removed once it is written."""
    new = Path(tmp).read_bytes()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    with open(real, "r+b") as fh:
        old = fh.read()
        try:
            fh.seek(0)
            fh.write(new)
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            fh.seek(0)
            fh.write(old)
            fh.truncate()
            raise
    os.unlink(tmp)
