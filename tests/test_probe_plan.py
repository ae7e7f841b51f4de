"""The probe's plan and budget: the plan comes from the model's FLOPs counted on the meta
device, never from the clock, so two runs measure the same numbers, also with another
CPU-heavy process beside one of them; a big model gets a smaller batch (inferred images a
smaller size) rather than no steps; and a model slower than the plan assumes is stopped by the
budget after at most one step too many, with the cut and the rules it weakens in the report."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import time

import torch
from conftest import run_cli
from models import bn_mlp
from torch import nn

import bnlint
from bench.models.resnet50 import ResNet50
from bnlint.config import PROBE_HVPS, PROBE_OP_FLOPS, PROBE_STEPS, Config, Optimizer
from bnlint.measurement import LR_CEILING, TRAJECTORY, ProbeResult
from bnlint.model.build import build
from bnlint.probing import hessian, run
from bnlint.probing.plan import make_plan, passes
from bnlint.probing.run import ProbeOptions, plan_for


def _without_time(result: ProbeResult) -> ProbeResult:
    """Everything the probe planned and measured, without its wall time."""
    return dataclasses.replace(result, seconds=0.0)


def test_probe_is_deterministic_on_cpu_even_beside_a_busy_process():
    model, x = bn_mlp(5, 32), torch.ones(32, 32).cumsum(0)
    quiet = bnlint.probe(model, x, steps=3)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        loaded = bnlint.probe(model, x, steps=3)
    finally:
        busy.kill()
        busy.wait()
    assert quiet.lr_ceiling is not None and quiet.steps == 3 and quiet.cut is None
    assert _without_time(loaded) == _without_time(quiet)


def _refuse_the_clock(monkeypatch) -> None:
    def clock():
        raise AssertionError("the plan read the clock")
    for name in ("monotonic", "perf_counter", "time", "process_time"):
        monkeypatch.setattr(time, name, clock)


def test_the_plan_reads_no_clock(monkeypatch):
    x = torch.randn(8, 3, 32, 32)
    graph = build(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)), (x,))
    options = ProbeOptions(synthetic_inputs=True, inferred_inputs=True)
    _refuse_the_clock(monkeypatch)
    plan = plan_for(graph, (x,), options)
    assert plan == plan_for(graph, (x,), options)
    assert plan.flops > 0 and plan.cost <= plan.budget_flops


def test_a_big_model_gets_a_smaller_batch_not_zero_steps():
    """ResNet-50 at 224 px (docs/SCIENCE.md §7: 1.56e12 FLOPs a forward+backward at batch 64)
    against the default budget: its inputs are the user's, so only the batch may shrink."""
    x = torch.randn(2, 3, 224, 224)
    plan = make_plan(ResNet50(), (x,), batch=64, steps=PROBE_STEPS, hvps=PROBE_HVPS,
                     budget=30.0, inferred=False)
    print(plan)
    assert 2.3e10 < plan.flops_per_sample < 2.5e10  # 1.56e12 / 64 = 2.43e10
    assert plan.batch < 64 and plan.steps >= 1 and plan.resolution is None
    assert plan.reasons[0].startswith(f"batch 64 -> {plan.batch}: ")


class Pooled(nn.Module):
    """Convolutions before a global pool: runs at any image size."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                  nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.body(x).mean((2, 3)))


def test_inferred_images_get_a_smaller_size_before_a_smaller_batch():
    model, x = Pooled(), torch.randn(4, 3, 128, 128)
    ample = make_plan(model, (x,), batch=64, steps=5, hvps=0, budget=1e6, inferred=True)
    assert (ample.batch, ample.resolution, ample.reasons) == (64, (128, 128), ())
    # Half the full size's FLOPs, planned at a 1000x slower assumed rate: the same plan, but the
    # budget's hard stop in seconds is 1000x further away, so machine load cannot cut the run.
    rate = ample.flop_rate / 1000
    budget = ample.cost / rate / 2  # the full size no longer fits; half of it does
    plan = make_plan(model, (x,), batch=64, steps=5, hvps=0, budget=budget, inferred=True,
                     flop_rate=rate)
    assert (plan.batch, plan.resolution, plan.steps) == (64, (64, 64), 5)
    assert plan.cost <= plan.budget_flops
    assert plan.reasons[0].startswith("inferred inputs 128x128 -> 64x64: ")
    given = make_plan(model, (x,), batch=64, steps=5, hvps=0, budget=budget, inferred=False,
                      flop_rate=rate)
    assert given.resolution is None and given.batch < 64  # the user's inputs keep their size

    seen = []
    model.body[0].register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    result = bnlint.probe(model, x, steps=5, budget=budget, flop_rate=rate, synthetic_inputs=True,
                          inferred_inputs=True,
                          optimizer=Optimizer("lalc", 1e-3))  # no lr bound: no products
    assert result.plan == plan and result.batch == 64 and result.steps == 5
    assert set(seen[-6:]) == {(64, 3, 64, 64)}  # the measurement and each step ran at 64 px


def test_a_model_whose_cost_is_its_ops_keeps_its_batch():
    """A deep narrow stack costs its ops' overhead, not arithmetic: a smaller batch would not
    help, so the plan keeps the batch and gives up Hessian-vector products first."""
    model, x = bn_mlp(60, 4), torch.randn(64, 4)
    plan = make_plan(model, (x,), batch=64, steps=PROBE_STEPS, hvps=PROBE_HVPS, budget=5.0,
                     inferred=False)
    assert plan.batch == 64 and plan.steps == PROBE_STEPS and plan.hvps < PROBE_HVPS
    assert plan.cost <= plan.budget_flops
    assert passes(plan.steps, plan.hvps) * plan.ops * PROBE_OP_FLOPS > plan.flops  # ops dominate


class Sleepy(nn.Module):
    """A small MLP whose forward sleeps: slow by construction, however fast the machine. The
    data-dependent test keeps torch.fx from tracing the sleep away, so the probe runs it."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.fc, self.head = nn.Linear(8, 8), nn.Linear(8, 2)

    def forward(self, x):
        if x.abs().sum() >= 0:
            time.sleep(self.seconds)
        return self.head(torch.relu(self.fc(x)))


def test_a_step_longer_than_the_budget_is_cut_and_the_report_says_so():
    torch.manual_seed(0)
    report = bnlint.lint(Sleepy(1.0), torch.randn(16, 8),
                         config=Config(probe_budget=0.5, probe_steps=PROBE_STEPS))
    probe = report.probe
    assert probe.plan.steps == PROBE_STEPS and probe.plan.hvps == PROBE_HVPS  # planned in full
    assert probe.steps == 0 and len(probe.history) == 1 and probe.lr_ceiling is None
    cut = probe.cut
    assert (cut.steps, cut.hvps, set(cut.short)) == (0, 0, {TRAJECTORY, LR_CEILING})
    assert f"ran out after 0 of {PROBE_STEPS} training steps and 0 of {PROBE_HVPS} " \
           "Hessian-vector products" in " ".join(probe.notes)
    # BNL901 and BNL902 judge the trajectory, BNL905 needs the ceiling
    assert {"BNL901", "BNL902", "BNL905"} <= set(cut.weaker)
    assert any("BNL901" in note and "judged less than planned" in note for note in report.notes)


def test_the_budget_is_exceeded_by_at_most_one_step():
    """Each pass sleeps 0.2 s, so within a 1 s budget at most 5 passes (the measurement at
    initialisation and 4 steps) can start; a budget overrun by one step allows one more."""
    sleep, budget = 0.2, 1.0
    result = bnlint.probe(Sleepy(sleep), torch.randn(16, 8), steps=50, budget=budget,
                          optimizer=Optimizer("lalc", 1e-3))  # no lr bound: no products
    assert result.plan.steps == 50
    assert result.steps <= budget / sleep and result.cut is not None
    assert result.cut.steps == result.steps and result.cut.short == (TRAJECTORY,)


def test_the_hessian_before_the_steps_leaves_them_their_time(monkeypatch):
    """For SGD the Hessian runs before the steps; a Hessian that takes all the time it is
    given (as Lanczos does when its products are slow: across ranks) still leaves the 2
    planned steps theirs, at the initialisation pass's cost (0.25 s), and is cut instead."""
    given = []

    def slow_curvature(self, products, deadline, scale=None):
        given.append(deadline)
        time.sleep(max(0.0, deadline - time.monotonic()))
        return hessian.Eigen(math.nan, 0, False, timed_out=True)

    monkeypatch.setattr(run._Run, "curvature", slow_curvature)
    result = bnlint.probe(Sleepy(0.25), torch.randn(16, 8), steps=2, budget=3.0)
    assert result.plan.steps == 2 and result.plan.hvps > 0 and len(given) == 1
    assert result.steps == 2 and result.lr_ceiling is None
    assert result.cut is not None and result.cut.short == (LR_CEILING,)


def test_cli_shows_the_plan_and_the_cut(write_model):
    path = write_model("""
        import time
        import torch
        import torch.nn as nn

        class Sleepy(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 2)

            def forward(self, x):
                if x.abs().sum() >= 0:
                    time.sleep(1.0)
                return self.fc(x)
    """)
    proc = run_cli(path, "--format", "json", "--probe-budget", "0.5")
    model = json.loads(proc.stdout)["models"][0]
    assert model["probe"]["plan"]["steps"] == PROBE_STEPS
    assert model["probe"]["cut"]["steps"] == 0 and "BNL901" in model["probe"]["cut"]["weaker"]
    text = run_cli(path, "--probe-budget", "0.5").stdout
    assert f", 0 of {PROBE_STEPS} steps, " in text and "within a budget of 0.5 s" in text
    assert "probe budget of 0.5 s ran out" in text


def test_cli_lowers_the_size_of_inferred_inputs_only(write_model):
    """The worker tells the probe which inputs were inferred: only those may be resized."""
    path = write_model("""
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 64, 3, padding=1)
                self.head = nn.Linear(64, 10)

            def forward(self, x):
                return self.head(self.conv(x).mean((2, 3)))
    """)
    proc = run_cli(path, "--format", "json", "--probe-budget", "1", "--probe-steps", "1")
    inferred = json.loads(proc.stdout)["models"][0]["probe"]["plan"]
    assert inferred["resolution"] == [32, 32]  # inputs.py infers 32 px first
    proc = run_cli(path, "--format", "json", "--probe-budget", "1", "--probe-steps", "1",
                   "--input-shape", "4,3,64,64")
    given = json.loads(proc.stdout)["models"][0]["probe"]["plan"]
    assert given["resolution"] is None and given["batch"] < inferred["batch"]  # 4x the pixels


def test_the_plans_meta_pass_leaves_a_shared_submodule_its_own_weights():
    """A submodule registered under several names (timm's CoaT shares its conv position
    encodings between blocks): the plan counts the cost with meta tensors in place of the
    weights, and torch.func.functional_call alone left that submodule holding them, so the
    probe could not copy the model and the user's model kept meta weights."""
    from bnlint import lint
    from bnlint.config import Config

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 8)
            self.blocks = nn.ModuleList(nn.ModuleDict({"proj": self.proj}) for _ in range(2))
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            for block in self.blocks:
                x = torch.relu(block["proj"](x))
            return self.head(x)

    torch.manual_seed(0)
    model = Shared()
    weight = model.proj.weight
    report = lint(model, torch.randn(16, 8), config=Config(probe_steps=1))
    assert report.probe is not None, report.notes
    assert model.proj.weight is weight and model.blocks[1]["proj"].weight is weight
    assert not any(p.is_meta for p in model.parameters())
