"""Ground truth for the real-bug study: train every buggy and fixed program and label the outcome.

    python -m bench.studies.realbugs.label                 # every case, writes labels.json
    python -m bench.studies.realbugs.label --only NAME[,NAME...]   # merges into labels.json
    python -m bench.studies.realbugs.label --dry-run       # prints the table, writes nothing

Each case file's ``train(steps, seed)`` builds its own loss and optimizer, trains on its
synthetic data (CPU, seeded) and returns its training losses, whether its parameters are still
finite, and a held-out evaluation the way the original program measured it: accuracy with the
chance level (the majority class's share) for a classifier, the mean squared error relative to
the targets' variance for a regression, and the spread of the outputs over held-out inputs.

A run *fails* when any of these holds, all fixed before any case was trained:

- ``non-finite``: a training loss is NaN or Inf, or a parameter is at the end;
- ``at chance``: held-out accuracy is at most ``chance + CHANCE_MARGIN``;
- ``no fit``: held-out MSE is above ``NO_FIT`` of the targets' variance (the model did not
  explain half of it);
- ``loss not falling``: the mean loss over the last tenth of the steps is not below the mean over
  the first tenth by at least ``LOSS_DROP`` of its size;
- ``constant output``: the outputs' standard deviation over held-out inputs is below
  ``CONSTANT``.

A buggy version *reproduces* its bug when its run fails; a fixed version *trains* when its run
does not. Only cases that do both count in the study (``bench/studies/realbugs/__main__.py``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from bench.studies.realbugs.manifest import CASES, CASES_DIR, LABELS, Case

CHANCE_MARGIN, NO_FIT, LOSS_DROP, CONSTANT = 0.05, 0.5, 0.1, 1e-6


def load_case_module(path: Path) -> Any:
    """Import a case file by path, as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"realbugs_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def failures(run: dict[str, Any]) -> list[str]:
    """The failure criteria (module docstring) that a training run meets."""
    losses = [float(v) for v in run["loss"]]
    found = []
    if not all(map(math.isfinite, losses)) or not run["params_finite"]:
        found.append("non-finite")
    if "accuracy" in run and run["accuracy"] <= run["chance"] + CHANCE_MARGIN:
        found.append("at chance")
    if "relative_mse" in run and not run["relative_mse"] <= NO_FIT:
        found.append("no fit")
    window = max(1, len(losses) // 10)
    start = sum(losses[:window]) / window
    end = sum(losses[-window:]) / window
    if math.isfinite(start) and math.isfinite(end) and end > start - LOSS_DROP * abs(start):
        found.append("loss not falling")
    if "output_std" in run and not run["output_std"] >= CONSTANT:
        found.append("constant output")
    return found


def _number(value: float) -> float | str:
    """A float as JSON can hold it: NaN and the infinities as the strings "nan", "inf"."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    losses = [float(v) for v in run["loss"]]
    first_bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    window = max(1, len(losses) // 10)
    out = {"steps": len(losses),
           "loss_start": _number(sum(losses[:window]) / window),
           "loss_end": _number(sum(losses[-window:]) / window),
           "first_nonfinite_step": first_bad,
           "params_finite": bool(run["params_finite"])}
    for key in ("accuracy", "chance", "relative_mse", "output_std"):
        if key in run:
            out[key] = _number(run[key])
    out["failures"] = failures(run)
    return out


def label_case(case: Case, seed: int = 0) -> dict[str, Any]:
    """Train the buggy and the fixed program of ``case`` and label both runs."""
    result = {}
    for version in ("buggy", "fixed"):
        module = load_case_module(CASES_DIR / f"{case.name}_{version}.py")
        torch.manual_seed(seed)
        result[version] = _summary(module.train(steps=case.steps, seed=seed))
    result["reproduced"] = bool(result["buggy"]["failures"])
    result["fix_trains"] = not result["fixed"]["failures"]
    result["date"] = datetime.date.today().isoformat()
    result["torch"] = torch.__version__
    result["seed"] = seed
    return result


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)


def _metric(run: dict[str, Any]) -> str:
    if "accuracy" in run:
        return f"acc {_fmt(run['accuracy'])} (chance {_fmt(run['chance'])})"
    if "relative_mse" in run:
        return f"rel. MSE {_fmt(run['relative_mse'])}"
    return "-"


def table(labels: dict[str, Any]) -> str:
    rows = ["| case | buggy: loss start -> end | buggy: held-out | buggy fails | "
            "fixed: loss start -> end | fixed: held-out | fixed fails | counted |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, lab in labels.items():
        b, f = lab["buggy"], lab["fixed"]
        rows.append(
            f"| {name} | {_fmt(b['loss_start'])} -> {_fmt(b['loss_end'])} | {_metric(b)} | "
            f"{', '.join(b['failures']) or 'none'} | {_fmt(f['loss_start'])} -> "
            f"{_fmt(f['loss_end'])} | {_metric(f)} | {', '.join(f['failures']) or 'none'} | "
            f"{'yes' if lab['reproduced'] and lab['fix_trains'] else 'no'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated case names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="print, do not write labels.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = args.only.split(",") if args.only else [c.name for c in CASES]
    unknown = set(names) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    done = {}
    for case in CASES:
        if case.name in names:
            done[case.name] = label_case(case, args.seed)
            print(f"{case.name}: reproduced={done[case.name]['reproduced']} "
                  f"fix_trains={done[case.name]['fix_trains']}", file=sys.stderr, flush=True)
    print(table(done))
    if args.dry_run:
        return 0
    old = json.loads(LABELS.read_text()) if LABELS.is_file() else {"cases": {}}
    cases = {**old["cases"], **done}
    order = [c.name for c in CASES]
    LABELS.write_text(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}, OMP_NUM_THREADS="
                   f"{os.environ.get('OMP_NUM_THREADS', 'unset')}",
        "command": "python -m bench.studies.realbugs.label [--only NAMES]",
        "criteria": {"chance_margin": CHANCE_MARGIN, "no_fit": NO_FIT, "loss_drop": LOSS_DROP,
                     "constant": CONSTANT},
        "cases": {n: cases[n] for n in order if n in cases},
    }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
