"""The probe's plan across model sizes: what it chose, how long the probe took against its
budget, and whether two runs measured the same numbers, the second beside a CPU-heavy process.

    python -m bench.benchmarks.probe_plan [--budget 30] [--device cpu] [--no-neighbour]

For each model: the plan (batch of the requested, inferred image size, training steps,
Hessian-vector products, planned FLOPs against the budget's, and why it lowered anything), the
probe's wall time for each run against ``--probe-budget``, the steps done, whether the clock
cut a run, and whether the two results are identical apart from their wall time. The plan
reads no clock, so only a cut (a machine slower than the plan's rate) can make them differ.
Inputs are synthetic (random); ResNet-20's count as inferred (the plan may lower their size),
ResNet-50's 224 px as given (it may not). This is a benchmark, not a test: the integrator
records its table, with date and machine, on a quiet machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import bnlint
from bench.models.resnet50 import ResNet50
from bnlint import config
from examples.resnet_cifar import resnet20


def _mlp(width: int, depth: int, classes: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, classes))


# name: (model factory, example input shape, inputs inferred)
MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], bool]] = {
    "small MLP (4x64 BN-ReLU)": (lambda: _mlp(64, 4), (16, 64), False),
    "ResNet-20 (CIFAR, 32 px, inferred)": (resnet20, (16, 3, 32, 32), True),
    "ResNet-50 (224 px, given)": (ResNet50, (16, 3, 224, 224), False),
    "wide MLP (4x4096 BN-ReLU)": (lambda: _mlp(4096, 4), (16, 4096), False),
}


def _probe(model: nn.Module, x: torch.Tensor, inferred: bool, args) -> Any:
    return bnlint.probe(model, x, device=args.device, budget=args.budget,
                        synthetic_inputs=True, inferred_inputs=inferred)


def _same(a: Any, b: Any) -> bool:
    return dataclasses.replace(a, seconds=0.0) == dataclasses.replace(b, seconds=0.0)


def _px(size: tuple[int, ...] | None) -> str:
    return "x".join(map(str, size)) if size else "as given"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=config.PROBE_BUDGET)
    parser.add_argument("--device", default="cpu", choices=config.DEVICES)
    parser.add_argument("--no-neighbour", action="store_true",
                        help="run the second probe without a CPU-heavy process beside it")
    args = parser.parse_args()
    print(f"Probe budget {args.budget:g} s at {config.PROBE_FLOP_RATE:.2g} FLOP/s = "
          f"{args.budget * config.PROBE_FLOP_RATE:.2g} FLOPs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; second run "
          + ("alone" if args.no_neighbour else "beside a CPU-heavy process") + ".\n")
    print("| model | batch | size | steps | HVPs | planned FLOPs | run 1 s | run 2 s | "
          "steps done | cut | identical |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    reasons = []
    for name, (make, shape, inferred) in MODELS.items():
        torch.manual_seed(0)
        model, x = make(), torch.randn(shape)
        first = _probe(model, x, inferred, args)
        busy = None if args.no_neighbour else subprocess.Popen(
            [sys.executable, "-c", "while True: pass"])
        try:
            second = _probe(model, x, inferred, args)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        plan = first.plan
        cut = ", ".join(f"run {i}: {'+'.join(r.cut.short)}"
                        for i, r in enumerate((first, second), 1) if r.cut) or "no"
        print(f"| {name} | {plan.batch} of {plan.requested_batch} | {_px(plan.resolution)} | "
              f"{plan.steps} | {plan.hvps} | {plan.flops:.2g} of {plan.budget_flops:.2g} | "
              f"{first.seconds:.1f} | {second.seconds:.1f} | {first.steps}, {second.steps} | "
              f"{cut} | {'yes' if _same(first, second) else 'no'} |")
        reasons.extend(f"- {name}: {reason}" for reason in plan.reasons)
    if reasons:
        print("\nWhy the plans lowered what they did:\n")
        print("\n".join(reasons))


if __name__ == "__main__":
    main()
