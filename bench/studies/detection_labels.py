"""The detection study's recorded ground truth: each set's training labels and metrics, written
by ``python -m bench.studies.detection --suite SET --record-labels`` into
bench/studies/SET_labels.json (committed, so that the labels are on record before any rule or
threshold is changed against them), and compared with every later run's training labels."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).parent


def path(set_name: str) -> Path:
    return HERE / f"{set_name}_labels.json"


def _num(x: float | None) -> float | str | None:
    """A metric for JSON: 6 significant digits; inf/nan as strings (JSON has neither)."""
    if x is None:
        return None
    return float(f"{x:.6g}") if math.isfinite(x) else str(x)


def _outcome(o: Any) -> dict[str, Any]:
    return {"label": o.label, "evidence": o.evidence, "initial_loss": _num(o.initial_loss),
            "final_loss": _num(o.final_loss), "max_loss": _num(o.max_loss),
            "train_rel": _num(o.final_rel), "test_rel": _num(o.test_rel),
            "test_acc": _num(o.test_acc), "dead": _num(o.dead)}


def record(set_name: str, rows: list[Any], protocol: dict[str, Any], argv: list[str]) -> Path:
    """Write ``rows`` (detection.Row: variant, seed-0 outcome, other seeds' outcomes)."""
    variants = {}
    for r in rows:
        v = r.variant
        entry = {"family": v.family, "defect": v.defect, "task": v.task,
                 "optimizer": v.optimizer, "lr": v.lr, **_outcome(r.outcome)}
        if v.optimizer == "sgd" and v.momentum != 0.9:
            entry["momentum"] = v.momentum
        if v.opt_args:
            entry["opt_args"] = v.opt_args
        if v.warmup:
            entry["warmup"] = v.warmup
        entry["other_seeds"] = {str(o_seed): {"label": o.label, "test_rel": _num(o.test_rel)}
                                for o_seed, o in r.others}
        variants[v.name] = entry
    data = {"set": set_name,
            "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "machine": f"{platform.machine()} {os.cpu_count()}-core CPU, "
                       f"{torch.get_num_threads()} torch thread",
            "command": "python -m bench.studies.detection " + " ".join(argv),
            "protocol": protocol,
            "labels": {k: sum(e["label"] == k for e in variants.values())
                       for k in ("fine", "diverged", "dead", "no-fit")},
            "variants": variants}
    target = path(set_name)
    target.write_text(json.dumps(data, indent=1) + "\n")
    return target


def check(set_name: str, rows: list[Any], protocol: dict[str, Any]) -> list[str]:
    """Lines saying whether this run's training labels are the recorded ones; a mismatch is a
    loud warning (the labels are the study's ground truth: a changed label changes every
    score computed from it)."""
    where = path(set_name)
    if not where.exists():
        return [f"Labels: no record for the {set_name} set ({where.name}); "
                "--record-labels writes one."]
    data = json.loads(where.read_text())
    if data["protocol"] != protocol:
        changed = sorted(k for k in protocol if data["protocol"].get(k) != protocol[k])
        return [f"Labels: not compared with {where.name}: this run's protocol differs in "
                f"{', '.join(changed)}."]
    recorded = data["variants"]
    diffs, compared = [], 0
    for r in rows:
        entry = recorded.get(r.variant.name)
        if entry is None:
            diffs.append(f"{r.variant.name}: not in the record")
            continue
        pairs = [("seed 0", entry["label"], r.outcome.label)]
        pairs += [(f"seed {s}", entry["other_seeds"][str(s)]["label"], o.label)
                  for s, o in r.others if str(s) in entry["other_seeds"]]
        for which, then, now in pairs:
            compared += 1
            if then != now:
                diffs.append(f"{r.variant.name} ({which}): recorded {then}, now {now}")
    source = f"{where.name} (recorded {data['recorded']}, torch {data['torch']})"
    if not diffs:
        return [f"Labels: all {compared} training labels of this run match {source}."]
    banner = "!" * 100
    lines = [banner, f"WARNING: {len(diffs)} training label(s) of the {set_name} set differ from "
             f"{source}; the scores below use this run's labels:", *diffs, banner]
    print("\n".join(lines), file=sys.stderr)
    return lines
