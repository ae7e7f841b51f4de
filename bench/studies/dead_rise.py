"""How far the probe's dead-ReLU fraction rises over its steps, per model of a detection set.

    python -m bench.studies.dead_rise                       # the calibration set
    python -m bench.studies.dead_rise --suite validation    # a side note: not out of sample

BNL903's trajectory bound (bnlint/rules/BNL903.yaml, ``dead_rise``) is read off this table for
the calibration set: for each variant, the probe as the detection study runs it (its defaults,
the variant's optimizer and lr, seed-0 initialisation, 128 training examples), and per nn.ReLU
layer the fraction of units dead at initialisation and after the probe's last step. Printed:
the recorded label, the largest per-layer rise (final - initial, and that layer's two values),
the units-weighted fraction over all ReLU layers at the first and last step, and BNL903's
codes. Nothing is trained beyond the probe's own steps.
"""

from __future__ import annotations

import argparse
import copy
import json

import torch

import bnlint
from bench.studies import detection_labels as labels
from bench.studies.detection import N_LINT, SETS, bnlint_optimizer
from bench.studies.detection_tasks import task
from bnlint.config import Config


def rise(variant, model, t) -> dict:
    """The probe's dead fractions for one variant (empty when it has no ReLU layer)."""
    config = Config(probe=True, optimizer=bnlint_optimizer(variant),
                    warmup_steps=variant.warmup)
    report = bnlint.lint(copy.deepcopy(model), t.x[:N_LINT], t.lint_targets(N_LINT),
                         config=config, name=variant.name)
    probe = report.probe
    codes = sorted({f.code.removeprefix("BNL") for f in report.findings
                    if f.code == "BNL903" and f.severity != "info"})
    if probe is None:
        return {"codes": codes}
    layers = [(x.final.get("dead", 0.0) - x.init["dead"], x) for x in probe.layers
              if "dead" in x.init]
    out = {"codes": codes, "steps": probe.steps,
           "total": (probe.history[0].dead_fraction, probe.history[-1].dead_fraction)}
    if layers:
        up, worst = max(layers, key=lambda item: item[0])
        out.update(rise=up, layer=worst.module or worst.key, init=worst.init["dead"],
                   final=worst.final.get("dead", 0.0))
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=tuple(SETS), default="calibration")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    recorded = json.loads(labels.path(args.suite).read_text())["variants"]
    print(f"## Dead-unit rise over the probe's steps: {args.suite} set\n")
    print("| variant | label (recorded) | largest per-layer rise | that layer: init -> last "
          "| all ReLU units: init -> last | steps | BNL903 |")
    print("|---|---|---|---|---|---|---|")
    for v in SETS[args.suite][1]():
        t = task(v.task, v.target_scales, v.target_shift)
        torch.manual_seed(v.seed)
        r = rise(v, v.build(), t)
        if "rise" not in r:
            continue  # no ReLU layer: nothing to rise
        first, last = r["total"]
        print(f"| {v.name} | {recorded[v.name]['label']} | {r['rise']:+.0%} | {r['layer']}: "
              f"{_pct(r['init'])} -> {_pct(r['final'])} | {_pct(first)} -> {_pct(last)} | "
              f"{r['steps']} | {' '.join(r['codes']) or '-'} |", flush=True)


if __name__ == "__main__":
    main()
