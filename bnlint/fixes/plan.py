"""``--diff`` / ``--fix``: merge the findings' replacements per file, check the patched file
still builds its models (in the child process), leaving out the fixes that break it, and write
it atomically. Imports neither torch nor libcst."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import InputError
from ..findings import Finding, Replacement, Report
from ..rules.catalog import Rule
from . import text

Outcome = InputError | list[str]  # a verified file: its error, or the models it built


@dataclass
class SourceFix:
    """One fix's replacements and the findings they resolve: models built by the same code (a
    class and a module-level instance of it) report the same line, and one patch fixes them
    all."""
    replacements: tuple[Replacement, ...]
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
        new = text.Text(self.old).apply(self._merged(fixes))
        return dataclasses.replace(self, fixes=fixes, new=new)

    @staticmethod
    def _merged(fixes: list[SourceFix]) -> tuple[Replacement, ...]:
        return text.merge(r for f in fixes for r in f.replacements)

    @property
    def diff(self) -> str:
        return text.Text(self.old).diff(self.path, self._merged(self.fixes))


def _modules(f: Finding) -> set[str]:
    return set(f.evidence.modules or [f.module])


def _removes(f: Finding, rules: dict[str, Rule]) -> bool:
    """Whether the finding's fix removes its modules (a remove_op edit)."""
    fix = rules[f.code].fix if f.code in rules else None
    return bool(fix and fix.edit and fix.edit.action == "remove_op")


def plan(report: Report, rules: dict[str, Rule], unsafe: bool
         ) -> tuple[list[FilePatch], list[InputError]]:
    """One patch per file from the fixes that apply (safe ones, and unsafe ones when asked),
    and warnings about the fixes left out. A fix whose finding relies on a module that another
    fix removes (bias=False before the BatchNorm that a second fix drops), or that changes
    code another fix changes differently, is left out."""
    allowed = ("safe", "unsafe") if unsafe else ("safe",)
    by_key: dict[tuple[Replacement, ...], SourceFix] = {}
    lost: dict[tuple[Replacement, ...], InputError] = {}
    for model in report.models:
        chosen = [f for f in model.findings
                  if f.fix and f.fix.replacements and f.fix.applicability in allowed]
        removed = {m: f.code for f in chosen if _removes(f, rules) for m in _modules(f)}
        for f in chosen:
            key = f.fix.replacements
            by_key.setdefault(key, SourceFix(key)).findings.append(f)
            gone = [m for m in f.evidence.facts.get("path", [])
                    if m in removed and m not in _modules(f)]
            if gone and key not in lost:
                lost[key] = by_key[key].not_applied(
                    f"the {removed[gone[0]]} fix removes {gone[0]}, which it relies on.")
    by_path: dict[str, list[SourceFix]] = {}
    for key, fix in by_key.items():
        if key in lost:
            continue
        fixes = by_path.setdefault(key[0].path, [])
        try:
            text.merge(r for f in (*fixes, fix) for r in f.replacements)
            fixes.append(fix)
        except text.OverlapError:
            clash = next(f for f in fixes if _overlap(f, fix))
            lost[key] = fix.not_applied(f"the {clash.findings[0].code} fix changes the same "
                                        "code.")
    patches, errors = [], list(lost.values())
    for path, fixes in by_path.items():
        try:
            old, encoding = text.read(path)
        except InputError as exc:
            errors.append(exc)
            continue
        models = {m.name for m in report.models if m.path == path}
        try:
            patch = FilePatch(path, old, encoding, [], models).keeping(fixes)
        except text.StaleError:
            errors.append(InputError("the file changed since bnlint linted it, so its fixes "
                                     "were not applied.", path=path, hint="Run bnlint again."))
            continue
        if patch.new != patch.old:
            patches.append(patch)
    return sorted(patches, key=lambda p: p.path), errors


def _overlap(a: SourceFix, b: SourceFix) -> bool:
    try:
        text.merge((*a.replacements, *b.replacements))
    except text.OverlapError:
        return True
    return False


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
