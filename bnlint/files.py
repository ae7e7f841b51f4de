"""The user's files: which a folder walk lints (exclusions, .gitignore), read and written safely
(UTF-8 text with a located decoding error, atomic replacement: a failure leaves the old file
whole)."""

from __future__ import annotations

import fnmatch
import os
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
