"""``--diff`` / ``--fix``: compose the findings' source edits per file, check the patched file
still builds its models (in the child process), and write it atomically. Imports no torch."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from ..errors import InputError
from ..report import Finding, Report


@dataclass
class FilePatch:
    path: str
    old: str
    new: str
    findings: list[Finding] = field(default_factory=list)
    models: set[str] = field(default_factory=set)  # the file's models: it must still build them
    encoding: str = "utf-8"

    @property
    def diff(self) -> str:
        from . import source  # libcst loads only when fixing
        return source.unified_diff(self.path, self.old, self.new)


def plan(report: Report, unsafe: bool) -> tuple[list[FilePatch], list[InputError]]:
    """One patch per file from the fixes that apply (safe ones, and unsafe ones when asked)."""
    from . import source  # libcst loads only when fixing
    allowed = ("safe", "unsafe") if unsafe else ("safe",)
    by_path: dict[str, FilePatch] = {}
    edits: dict[str, list[dict]] = {}
    for model in report.models:
        for f in model.findings:
            if not (f.fix and f.fix.edits and f.fix.applicability in allowed):
                continue
            for edit in f.fix.edits:
                patch = by_path.setdefault(edit["path"], FilePatch(edit["path"], "", ""))
                patch.findings.append(f)
                edits.setdefault(edit["path"], []).append(edit)
    patches, errors = [], []
    for path, patch in by_path.items():
        try:
            patch.old, patch.encoding = source.read(path)
            patch.new = source.apply(patch.old, edits[path], path)
        except (InputError, OSError) as exc:
            errors.append(exc if isinstance(exc, InputError) else
                          InputError(f"cannot read the file to fix it: {exc}", path=path))
            continue
        if patch.new != patch.old:
            patch.findings = list({id(f): f for f in patch.findings}.values())
            patch.models = {m.name for m in report.models if m.path == path}
            patches.append(patch)
    return sorted(patches, key=lambda p: p.path), errors


def rejected(patch: FilePatch, outcome: InputError | list[str]) -> str | None:
    """Why a verified patch must not be written, or None when it may."""
    if isinstance(outcome, InputError):
        return f"the patched file fails: {outcome.render()}"
    missing = patch.models - set(outcome)
    if missing:
        return f"the patched file no longer builds {', '.join(sorted(missing))}"
    return None


def write_atomic(path: str, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` via a temporary file in the same folder (keeping its permissions), so
    a failure leaves the old file whole. Newlines are written as they are in ``text``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".bnlint-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as fh:
            fh.write(text)
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
