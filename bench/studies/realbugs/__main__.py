"""bnlint on real buggy training programs: does it flag the ones that fail, and only those?

    python -m bench.studies.realbugs               # every case, static and static+probe
    python -m bench.studies.realbugs --quick       # the three cases marked quick
    python -m bench.studies.realbugs --only NAME[,NAME...] [--no-probe] [--reports DIR]

The cases and where they come from are in ``manifest.py``; whether each buggy program fails and
each fixed one trains is the ground truth of ``labels.json`` (``python -m
bench.studies.realbugs.label`` trains them; this runner never does). Only cases whose bug
reproduced and whose fix trained are scored; the others are listed with the reason.

For each scored case the runner runs the ``bnlint`` CLI, as a user would, on the buggy and on
the fixed file, once with ``--no-probe`` and once with the probe at its defaults, each with
``--format json`` and ``--config`` naming a settings file of its own (so no config file around
the repository leaks in). That file gives ``optimizer = {name, lr, momentum}`` for the
program's optimizer (SGD, Adam, RMSprop, NAdam, Adadelta...: any the config accepts, and the
table says so for one it does not), with ``nesterov`` for the programs that set it; the cases
record no other optimizer arguments, so their defaults apply. A version is *flagged*
when bnlint reports a finding at warning or error for it; a run that bnlint cannot complete
(exit 2) counts as not flagged and is shown as ``bnlint error``.

Totals: the share of reproduced failures flagged (the issue's target: at least 90%), the share
of fixed versions that train yet are flagged (target: at most 10%), and the share of pairs told
apart (buggy flagged, fixed not), for static-only and static+probe.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.studies.realbugs.manifest import CASES, CASES_DIR, CONFIGURABLE, LABELS, Case

MODES = {"static": ["--no-probe"], "probe": []}
CLI_TIMEOUT = 600


@dataclass
class Verdict:
    """What bnlint said about one file in one mode."""
    codes: list[str]        # codes of its warning and error findings, in order, no repeats
    error: str | None       # why bnlint could not lint the file, if it could not

    @property
    def flagged(self) -> bool:
        return bool(self.codes)

    def cell(self) -> str:
        if self.error:
            return f"bnlint error: {self.error}"
        return ", ".join(self.codes) or "-"


def config_text(opt: dict) -> str:
    """The settings file the runner passes for a program trained with ``opt``: the optimizer
    when bnlint's config can take it, else nothing."""
    if opt["name"] in CONFIGURABLE:
        args = "".join(f", {k}: {str(v).lower() if isinstance(v, bool) else v}"
                       for k, v in opt.items() if k not in ("name", "lr", "momentum"))
        return (f"optimizer: {{name: {opt['name']}, lr: {opt['lr']}, "
                f"momentum: {opt['momentum']}{args}}}\n")
    return "{}\n"


def optimizer_note(case: Case) -> str:
    """What the runner passed as the optimizer, for the buggy and (if it differs) the fixed
    program."""
    notes = []
    for version in ("buggy", "fixed"):
        opt = case.optimizer_of(version)
        text = f"{opt['name']} lr {opt['lr']:g}" + (
            f" momentum {opt['momentum']:g}" if opt["name"] == "sgd" else "") + (
            " nesterov" if opt.get("nesterov") else "")
        notes.append(text if opt["name"] in CONFIGURABLE else f"none ({text} is not accepted)")
    return notes[0] if notes[0] == notes[1] else f"buggy: {notes[0]}; fixed: {notes[1]}"


def run_bnlint(path: Path, mode: str, config: Path, reports: Path | None) -> Verdict:
    """Lint one file with the CLI and read the codes it reports at warning or error; keep its
    JSON report in ``reports`` if given."""
    cmd = [sys.executable, "-m", "bnlint", str(path), "--format", "json", "--config", str(config),
           *MODES[mode]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env,
                              cwd=config.parent)
    except subprocess.TimeoutExpired:
        return Verdict([], f"no answer in {CLI_TIMEOUT} s")
    if reports is not None:
        (reports / f"{path.stem}.{mode}.json").write_text(proc.stdout)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return Verdict([], f"exit {proc.returncode}: {last[:120]}")
    codes: list[str] = []
    for model in report.get("models", []):
        for finding in model.get("findings", []):
            if finding["severity"] in ("warning", "error") and finding["code"] not in codes:
                codes.append(finding["code"])
    errors = report.get("errors") or []
    if errors and not report.get("models"):
        return Verdict([], f"exit {proc.returncode}: {str(errors[0].get('message', ''))[:120]}")
    return Verdict(codes, None)


def lint_case(case: Case, modes: list[str], workdir: Path,
              reports: Path | None) -> dict[str, dict[str, Verdict]]:
    verdicts = {}
    for version in ("buggy", "fixed"):
        config = workdir / f"{case.name}_{version}.bnlint.yaml"
        config.write_text(config_text(case.optimizer_of(version)))
        verdicts[version] = {mode: run_bnlint(CASES_DIR / f"{case.name}_{version}.py", mode,
                                              config, reports) for mode in modes}
    return verdicts


def _published(case: Case) -> str:
    return "; ".join(f"{tool}: {verdict}" for tool, verdict in case.published.items()) or "-"


def _share(hits: int, total: int) -> str:
    return f"{hits}/{total} ({100 * hits / total:.0f}%)" if total else "0/0"


def report(cases: list[Case], labels: dict[str, Any], verdicts: dict[str, Any],
           modes: list[str]) -> str:
    lines = ["| case | bug | reproduced (buggy run) | fix trains (fixed run) | "
             + " | ".join(f"buggy: {m}" for m in modes) + " | "
             + " | ".join(f"fixed: {m}" for m in modes) + " | optimizer config | published |",
             "| --- " * (6 + 2 * len(modes)) + "|"]
    for case in cases:
        lab, v = labels[case.name], verdicts[case.name]
        lines.append(
            f"| {case.name} | {case.bug} | yes: {', '.join(lab['buggy']['failures'])} | "
            f"yes | " + " | ".join(v["buggy"][m].cell() for m in modes) + " | "
            + " | ".join(v["fixed"][m].cell() for m in modes)
            + f" | {optimizer_note(case)} | {_published(case)} |")
    lines += ["", "| mode | reproduced failures flagged (target >= 90%) | "
              "fixed versions flagged (target <= 10%) | buggy flagged, its fix not |",
              "| --- | --- | --- | --- |"]
    for mode in modes:
        buggy = [verdicts[c.name]["buggy"][mode].flagged for c in cases]
        fixed = [verdicts[c.name]["fixed"][mode].flagged for c in cases]
        apart = sum(b and not f for b, f in zip(buggy, fixed))
        name = "static only" if mode == "static" else "static + probe"
        lines.append(f"| {name} | {_share(sum(buggy), len(cases))} | "
                     f"{_share(sum(fixed), len(cases))} | {_share(apart, len(cases))} |")
    return "\n".join(lines)


def dropped(labels: dict[str, Any], names: list[str]) -> str:
    rows = ["| case | bug | why it is not scored |", "| --- | --- | --- |"]
    for case in CASES:
        lab = labels.get(case.name)
        if case.name not in names or lab is None or (lab["reproduced"] and lab["fix_trains"]):
            continue
        reasons = []
        if not lab["reproduced"]:
            reasons.append("the buggy run meets no failure criterion")
        if not lab["fix_trains"]:
            reasons.append("the fixed run fails: " + ", ".join(lab["fixed"]["failures"]))
        rows.append(f"| {case.name} | {case.bug} | {'; '.join(reasons)} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the cases marked quick")
    parser.add_argument("--only", help="comma-separated case names")
    parser.add_argument("--no-probe", action="store_true", help="static runs only")
    parser.add_argument("--reports", type=Path, help="folder to keep bnlint's JSON reports in")
    args = parser.parse_args(argv)
    if not LABELS.is_file():
        parser.error(f"{LABELS} is missing: run python -m bench.studies.realbugs.label first")
    labels = json.loads(LABELS.read_text())["cases"]
    names = ([c.name for c in CASES if c.quick] if args.quick
             else args.only.split(",") if args.only else [c.name for c in CASES])
    unknown = set(names) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    unlabelled = [n for n in names if n not in labels]
    if unlabelled:
        parser.error(f"no labels for {', '.join(unlabelled)}: run the labeller for them first")
    scored = [c for c in CASES if c.name in names
              and labels[c.name]["reproduced"] and labels[c.name]["fix_trains"]]
    modes = ["static"] if args.no_probe else ["static", "probe"]
    if args.reports:
        args.reports.mkdir(parents=True, exist_ok=True)
    verdicts = {}
    with tempfile.TemporaryDirectory(prefix="bnlint-realbugs-") as tmp:
        for case in scored:
            verdicts[case.name] = lint_case(case, modes, Path(tmp), args.reports)
            print(f"{case.name}: " + "; ".join(
                f"{version} {mode}: {verdicts[case.name][version][mode].cell()}"
                for version in ("buggy", "fixed") for mode in modes),
                file=sys.stderr, flush=True)
    print(report(scored, labels, verdicts, modes))
    table = dropped(labels, names)
    if table:
        print("\nNot scored (ground truth in labels.json):\n")
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
