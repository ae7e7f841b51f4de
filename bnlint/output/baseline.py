"""Baselines: adopt bnlint on code that already has findings. ``--write-baseline FILE`` records
the current findings; ``--baseline FILE`` hides those again (they do not fail the run), shows the
new ones and names the recorded ones that are gone, so the baseline can shrink.

A finding is recorded by (the model file's path relative to the baseline file's folder, model,
module, code), with a count: no line numbers or messages, so an edit elsewhere in the file (or a
changed measurement) keeps it matched. The JSON file is sorted, so it diffs well in review.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from ..errors import InputError
from ..files import read_text, write_atomic
from ..findings import Finding, ModelReport, Report

FORMAT_VERSION = 1
_FIELDS = ("path", "model", "module", "code")

Key = tuple[str, str, str, str]


def _relative(path: str, folder: Path) -> str:
    try:
        return PurePath(os.path.relpath(os.path.abspath(path), folder)).as_posix()
    except ValueError:  # another drive (Windows): keep it absolute
        return PurePath(os.path.abspath(path)).as_posix()


def _key(finding: Finding, model: ModelReport, folder: Path) -> Key:
    path = model.path or finding.path
    return (_relative(path, folder) if path else "", model.name, finding.module or "",
            finding.code)


def _counts(report: Report, folder: Path) -> collections.Counter[Key]:
    return collections.Counter(_key(f, m, folder) for m in report.models for f in m.findings)


def write(report: Report, path: str) -> int:
    """Record the report's findings in ``path``; the number of findings recorded."""
    counts = _counts(report, Path(os.path.abspath(path)).parent)
    entries = [{**dict(zip(_FIELDS, key)), "count": n} for key, n in sorted(counts.items())]
    write_atomic(path, json.dumps({"bnlint-baseline": FORMAT_VERSION, "findings": entries},
                                  indent=2) + "\n", what="the baseline")
    return sum(counts.values())


def load(path: str) -> collections.Counter[Key]:
    """The findings a baseline file records; a missing or malformed file is an InputError."""
    if not os.path.isfile(path):
        raise InputError("baseline file not found.", path=path,
                         hint="Create it with --write-baseline FILE first.")
    hint = "Write it again with --write-baseline FILE."
    try:
        data = json.loads(read_text(Path(path), "baseline file"))
    except json.JSONDecodeError as exc:
        raise InputError(f"the baseline is not valid JSON ({exc.msg}).", path=path,
                         line=exc.lineno, hint=hint) from None
    if not isinstance(data, dict) or data.get("bnlint-baseline") != FORMAT_VERSION:
        raise InputError(f"not a bnlint baseline (version {FORMAT_VERSION}).", path=path,
                         hint=hint)
    counts: collections.Counter[Key] = collections.Counter()
    for entry in data.get("findings") or []:
        ok = (isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in _FIELDS)
              and type(entry.get("count")) is int and entry["count"] > 0)
        if not ok:
            raise InputError(f"malformed baseline entry {entry!r}.", path=path, hint=hint)
        counts[tuple(entry[k] for k in _FIELDS)] += entry["count"]
    return counts


@dataclass
class Outcome:
    """What applying a baseline did: findings hidden, and recorded findings not seen again."""
    path: str
    hidden: int = 0
    gone: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {"path": self.path, "hidden": self.hidden, "gone": self.gone}

    def lines(self) -> list[str]:
        """How the text report says it."""
        out = []
        if self.hidden:
            out.append(f"{self.hidden} finding{'s' if self.hidden != 1 else ''} in the baseline "
                       f"{self.path} not shown.")
        if self.gone:
            total = sum(g["count"] for g in self.gone)
            out.append(f"{total} finding{'s' if total != 1 else ''} in the baseline "
                       f"{'are' if total != 1 else 'is'} gone; shrink it with "
                       f"--write-baseline {self.path}:")
            out.extend(f"  {g['path']}: {g['code']} {g['module'] or '(model)'} in {g['model']}"
                       + (f" (x{g['count']})" if g["count"] > 1 else "") for g in self.gone)
        return out


def apply(report: Report, path: str, recorded: collections.Counter[Key],
          linted: list[str]) -> tuple[Report, Outcome]:
    """The report without the findings ``recorded`` (as many of each key as recorded), and
    the outcome. Recorded findings of files this run did not lint are not called gone."""
    folder = Path(os.path.abspath(path)).parent
    left = collections.Counter(recorded)
    outcome = Outcome(path)
    models = []
    for model in report.models:
        kept = []
        for f in model.findings:
            key = _key(f, model, folder)
            if left[key] > 0:
                left[key] -= 1
                outcome.hidden += 1
            else:
                kept.append(f)
        models.append(dataclasses.replace(model, findings=kept))
    # A file that failed to lint (an error) proves nothing gone; neither does one not linted.
    failed = {os.path.abspath(e.path) for e in report.errors if e.path}
    here = {_relative(p, folder) for p in linted if os.path.abspath(p) not in failed}
    outcome.gone = [{**dict(zip(_FIELDS, key)), "count": n}
                    for key, n in sorted(left.items()) if n > 0 and key[0] in here]
    return dataclasses.replace(report, models=models), outcome
