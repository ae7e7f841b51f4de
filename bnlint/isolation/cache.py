"""Per-file results kept on disk, as ruff keeps its own, so that an unchanged file is not linted
again. Imports no torch.

An entry is a file's model reports and errors, stored under a name made of the file's path
(as given, and real) and everything else its result depends on: bnlint's version and its code's
contents (an editable install keeps the version while the code changes), torch's and Python's
versions, the platform and the device the probe may pick, the config and options that reach the
linting (rules with their thresholds and ``--rules-dir`` contents, ``--select``, input shapes,
probe settings, optimizer...) and ``--verbose``. It is used while the file's contents are those
it was linted with and every other file its run read (the sibling modules it imported, data
files it loaded: see :mod:`.child`) still has the contents it had; else the file is linted
again.

Only settled results are stored: not one in which a model timed out, the process died or
bnlint raised, not a probe the ``--probe-budget`` clock cut (where it stopped depends on the
machine's load), not a file that failed to import a module (which may be installed since), not
an error bnlint itself reported, and not one whose files changed while it ran. Entries are
written atomically; an entry that cannot be read or parsed is ignored, and a cache folder that
cannot be written disables the cache without an error.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError, UserCodeError
from ..findings import VERSION, ModelReport

_FORMAT = 1  # the layout of an entry; a new one starts a new folder
# Config fields that do not reach the linting: how the report is shown and which files are
# walked are decided in the parent, on results cached or not; a timeout only decides whether
# there is a result (a run that timed out is never stored).
_NOT_IN_KEY = ("format", "fail_on", "timeout", "exclude", "extend_exclude",
               "respect_gitignore", "cache", "cache_dir", "source")
# What decides the device --device auto picks, as seen without torch: the GPUs a process may
# use, and whether the machine has NVIDIA's or AMD's driver (MPS: sys.platform is in the key).
_DEVICE_ENVIRONMENT = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")
_DEVICE_NODES = ("/dev/nvidiactl", "/dev/kfd")
_GITIGNORE = "# Created by bnlint: its results cache (delete it at will).\n*\n"
_CACHEDIR_TAG = ("Signature: 8a477f597d28d172789f06886806bc55\n"
                 "# This file is a cache directory tag created by bnlint.\n"
                 "# For information about cache directory tags see https://bford.info/cachedir/\n")


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _file_digest(path: str) -> str | None:
    """The sha256 of a file's bytes; None when it cannot be read (gone, a folder...)."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def _code_digest() -> str:
    """A digest of bnlint's own files (its code and rules), by contents: an editable install or
    a reinstall of the same version with other code gets other entries."""
    package = Path(__file__).resolve().parent.parent
    sha = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".yaml")
                       and "__pycache__" not in p.parts):
        sha.update(str(path.relative_to(package)).encode() + b"\0")
        sha.update((_file_digest(str(path)) or "").encode())
    return sha.hexdigest()


def _torch_version() -> str | None:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def _device(config: Config) -> Any:
    """The device option, and for ``auto`` what decides it on this machine."""
    if config.device != "auto":
        return config.device
    return ["auto", {k: os.environ.get(k) for k in _DEVICE_ENVIRONMENT},
            [os.path.exists(node) for node in _DEVICE_NODES]]


def settled(models: list[dict], errors: list[InputError]) -> bool:
    """Whether a file's result (its model reports as sent, its errors) is one to store."""
    for error in errors:  # a module not found may be installed or written since
        if not isinstance(error, UserCodeError) or "raised ModuleNotFoundError" in error.message \
                or "raised ImportError" in error.message:
            return False
    return not any(isinstance(m.get("probe"), dict) and m["probe"].get("cut") for m in models)


class Cache:
    """The entries for one run's settings, in ``folder``. :meth:`get` a file's result, then
    :meth:`put` the results of the files that were linted."""

    def __init__(self, folder: Path, config: Config, rules: list[dict],
                 cli_input_shape: list[list[int]] | None, verbose: bool):
        settings = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_KEY}
        environment = [VERSION, _code_digest(), _torch_version(), sys.version,
                       sys.implementation.name, platform.machine(), sys.platform,
                       _device(config)]
        self.root = folder
        self.folder = folder / f"v{_FORMAT}" / _digest(environment)[:16]
        self.key = _digest(settings, rules, cli_input_shape, verbose)
        self.started = time.time_ns()  # a file changed after this may have been read as it was
        self._digests: dict[str, str | None] = {}
        self._linted: dict[str, str | None] = {}  # each file's digest when it was looked up
        self._writable = True

    def _hash(self, path: str) -> str | None:
        if path not in self._digests:
            self._digests[path] = _file_digest(path)
        return self._digests[path]

    def _changed(self, path: str) -> bool:
        """Whether ``path`` was modified since this run began (its digest, taken now, might
        not be that of what the run read)."""
        try:
            return os.stat(path).st_mtime_ns >= self.started
        except OSError:
            return False  # gone: recorded as missing

    def _entry(self, path: str, may_be_empty: bool) -> Path:
        """The file's entry: its report holds the path as given, relative to the current
        folder, so both are in the name beside the real path."""
        name = _digest(self.key, os.path.realpath(path), path, os.getcwd(), may_be_empty)
        return self.folder / name[:2] / f"{name[2:]}.json"

    def get(self, path: str, may_be_empty: bool) -> tuple[list[dict], list[InputError]] | None:
        """The stored models and errors of ``path`` when they are still its result."""
        self._linted[path] = digest = _file_digest(path)
        try:
            entry = json.loads(self._entry(path, may_be_empty).read_bytes())
            if entry["digest"] != digest or digest is None:
                return None
            if any(self._hash(p) != d for p, d in entry["reads"].items()):
                return None
            models = [dict(m) for m in entry["models"]]
            for m in models:  # as the report will read it
                ModelReport.from_dict(copy.deepcopy(m))
            errors = [InputError.from_dict(e) for e in entry["errors"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # none stored, or not one bnlint wrote: lint the file
        return models, errors

    def put(self, path: str, may_be_empty: bool, models: list[dict], errors: list[InputError],
            reads: list[str] | None) -> None:
        """Store a linted file's result when it is settled and neither the file nor those its
        run read have changed since the run began."""
        digest = self._linted.get(path)
        if reads is None or not self._writable or digest is None or not settled(models, errors) \
                or _file_digest(path) != digest or any(map(self._changed, reads)):
            return
        entry = {"digest": digest, "reads": {p: self._hash(p) for p in reads},
                 "models": models, "errors": [e.to_dict() for e in errors]}
        target = self._entry(path, may_be_empty)
        try:
            self._prepare(target.parent)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(entry, fh)
                os.replace(tmp, target)
            except BaseException:
                os.unlink(tmp)
                raise
        except (OSError, TypeError, ValueError):
            self._writable = False  # read-only, full, or not a folder: run without storing

    def _prepare(self, folder: Path) -> None:
        """Make ``folder``, and mark the cache's root as one (ignored by git, skipped by
        backups), as ruff marks .ruff_cache."""
        if folder.is_dir():
            return
        if not self.root.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / ".gitignore").write_text(_GITIGNORE)
            (self.root / "CACHEDIR.TAG").write_text(_CACHEDIR_TAG)
        folder.mkdir(parents=True, exist_ok=True)
