"""``--diff`` / ``--fix``: compose the findings' source edits per file, check the patched file
still builds its models (in the child process), leaving out the fixes that break it, and write
it atomically. Imports no torch."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import InputError
from ..findings import Finding, Report

Outcome = InputError | list[str]  # a verified file: its error, or the models it built


@dataclass
class SourceFix:
    """One fix's edits and the findings they resolve: models built by the same code (a class
    and a module-level instance of it) report the same line, and one edit fixes them all."""
    edits: list[dict]
    findings: list[Finding] = field(default_factory=list)

    def not_applied(self, why: str) -> InputError:
        first = self.findings[0]
        return InputError(f"{first.code} fix not applied, {why}", path=first.path,
                          line=first.line)


@dataclass
class FilePatch:
    path: str
    old: str
    encoding: str
    fixes: list[SourceFix]
    models: set[str]  # the file's models: it must still build them
    new: str = ""

    def keeping(self, fixes: list[SourceFix]) -> FilePatch:
        """This patch with only ``fixes`` applied."""
        from . import source  # libcst loads only when fixing
        new = source.apply(self.old, [e for f in fixes for e in f.edits], self.path)
        return dataclasses.replace(self, fixes=fixes, new=new)

    @property
    def diff(self) -> str:
        from . import source
        return source.unified_diff(self.path, self.old, self.new)


def _modules(f: Finding) -> set[str]:
    return set(f.evidence.modules or [f.module])


def plan(report: Report, unsafe: bool) -> tuple[list[FilePatch], list[InputError]]:
    """One patch per file from the fixes that apply (safe ones, and unsafe ones when asked),
    and warnings about the fixes left out. A fix whose finding relies on a module that another
    fix removes (bias=False before the BatchNorm that a second fix drops) is left out."""
    from . import source  # libcst loads only when fixing
    allowed = ("safe", "unsafe") if unsafe else ("safe",)
    by_key: dict[str, SourceFix] = {}
    lost: dict[str, InputError] = {}
    for model in report.models:
        chosen = [f for f in model.findings
                  if f.fix and f.fix.edits and f.fix.applicability in allowed]
        removed = {m: f.code for f in chosen
                   if any(e["action"] == "remove_op" for e in f.fix.edits) for m in _modules(f)}
        for f in chosen:
            key = json.dumps(f.fix.edits, sort_keys=True)
            by_key.setdefault(key, SourceFix(f.fix.edits)).findings.append(f)
            gone = [m for m in f.evidence.facts.get("path", [])
                    if m in removed and m not in _modules(f)]
            if gone and key not in lost:
                lost[key] = by_key[key].not_applied(
                    f"the {removed[gone[0]]} fix removes {gone[0]}, which it relies on.")
    by_path: dict[str, list[SourceFix]] = {}
    for key, fix in by_key.items():
        if key not in lost:
            by_path.setdefault(fix.edits[0]["path"], []).append(fix)
    patches, errors = [], list(lost.values())
    for path, fixes in by_path.items():
        try:
            old, encoding = source.read(path)
            models = {m.name for m in report.models if m.path == path}
            patch = FilePatch(path, old, encoding, [], models).keeping(fixes)
        except (InputError, OSError) as exc:
            errors.append(exc if isinstance(exc, InputError) else
                          InputError(f"cannot read the file to fix it: {exc}", path=path))
            continue
        if patch.new != patch.old:
            patches.append(patch)
    return sorted(patches, key=lambda p: p.path), errors


def _rejected(patch: FilePatch, outcome: Outcome) -> str | None:
    """Why a verified patch must not be written, or None when it may."""
    if isinstance(outcome, InputError):  # its hint is about linting the file, not fixing it
        error = InputError(outcome.message, outcome.path, outcome.line)
        return f"the patched file fails: {error.render()}"
    missing = patch.models - set(outcome)
    if missing:
        return f"the patched file no longer builds {', '.join(sorted(missing))}."
    return None


def verify(patches: list[FilePatch], check: Callable[[dict[str, str]], dict[str, Outcome]]
           ) -> tuple[list[FilePatch], list[InputError]]:
    """The patches cut down to the fixes their files still build with, and why each fix left
    out was. ``check`` verifies patched sources, one per file, in one child process. A file
    that fails with all its fixes is bisected: fixes that break it are found in about
    2 log2(n) more checks each, and the others still land."""
    def failures(trials: dict[str, FilePatch]) -> dict[str, str | None]:
        outcomes = check({path: p.new for path, p in trials.items()})
        return {path: _rejected(p, outcomes[path]) for path, p in trials.items()}

    whys = failures({p.path: p for p in patches})
    good = [p for p in patches if whys[p.path] is None]
    warnings: list[InputError] = []
    # Per failing file: the patch, the fixes accepted so far, and the groups of fixes still to
    # try, each with why it fails when that is known already.
    state = {p.path: (p, [], [(p.fixes, whys[p.path])]) for p in patches if whys[p.path]}
    while True:
        for _, _, queue in state.values():
            while queue and queue[0][1]:
                group, why = queue.pop(0)
                if len(group) == 1:
                    warnings.append(group[0].not_applied(why))
                else:
                    half = len(group) // 2
                    queue[:0] = [(group[:half], None), (group[half:], None)]
        trials = {path: patch.keeping(accepted + queue[0][0])
                  for path, (patch, accepted, queue) in state.items() if queue}
        if not trials:
            break
        for path, why in failures(trials).items():
            _, accepted, queue = state[path]
            if why:
                queue[0] = (queue[0][0], why)
            else:
                accepted.extend(queue.pop(0)[0])
    good += [patch.keeping(accepted) for patch, accepted, _ in state.values() if accepted]
    return sorted(good, key=lambda p: p.path), warnings
