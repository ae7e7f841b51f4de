"""Detection study: does bnlint flag the models that then fail to train, and only those?

    python -m bench.studies.detection          # calibration and validation, side by side
    python -m bench.studies.detection --suite calibration|validation|holdout|both|all
    python -m bench.studies.detection --quick  # the variants marked quick in each set
    python -m bench.studies.detection --only NAME[,NAME...] [--steps N] [--no-bnlint]
    python -m bench.studies.detection --suite validation --no-bnlint --record-labels
    python -m bench.studies.detection --recorded [--suite ...]  # bnlint vs the recorded labels

Three sets of labelled models: the *calibration* set (bench/studies/detection_models.py), on
which bnlint's rules and thresholds were developed; the *validation* set
(bench/studies/validation_models.py), written and labelled afterwards to check them out of
sample; and the *held-out* set (bench/studies/holdout_models.py), written and labelled after
rules had been changed against the validation set, to measure them out of sample again
(``--suite both``: calibration and validation; ``all``: the three). Tasks in
bench/studies/detection_tasks.py. Each set's labels are on record in
bench/studies/SET_labels.json (bench/studies/detection_labels.py): every run compares its
training labels with them and warns loudly when one differs.

Ground truth comes from *training* each variant (never from bnlint's rules): ``STEPS`` steps of
its configured optimizer (SGD momentum 0.9 unless the variant says otherwise; Adam, AdamW,
RMSprop or Adagrad at torch's defaults; either with the variant's ``opt_args``), batch 64 (a
variant's ``warmup`` ramps the lr linearly from 0 over its first steps), on its synthetic
task, seeded. The outcome, decided in this order:

- ``diverged``: a training loss that is NaN/Inf or >= 1e5 x the trivial predictor's training
  loss (at least 1e5), or non-finite parameters at the end.
- ``dead``: at the end, >= 50% of the units (features, or conv channels) of the model's
  nn.ReLU modules output exactly 0 for every one of 512 held-out inputs (train-mode forward on
  a copy, so BatchNorm uses batch statistics as in training).
- ``no-fit``: the held-out loss of the trained model (eval mode, 1024 inputs) is above
  ``NO_FIT`` = 0.5 of the trivial predictor's (class frequencies of the training set for
  cross-entropy; the training mean for MSE, per output, averaged over outputs): the model did
  not remove at least half of the trivial loss.
- ``fine``: none of these. "problem" = not fine.

Without --quick each variant is also trained from seeds 1 and 2 and those labels are printed
beside seed 0's, to show how stable each label is; only seed 0 is scored.

Detectors, each compared with "problem":

1. bnlint static: ``bnlint.lint(model, x, y, Config(probe=False, optimizer=...))`` on a copy of
   the model at initialisation, with 128 training examples and their targets.
2. bnlint static+probe: the same with the probe on, at its defaults (batch 64, 20 steps,
   30 s budget) and the variant's optimizer.
   A bnlint run flags a model when it reports a finding at warning or error.
3. AUTOTRAINER (Zhang et al., ICSE 2021), reimplemented from docs/SCIENCE.md §6 and its
   published monitor (shiningrain/AUTOTRAINER, AutoTrainer/utils/monitor.py), run inside the
   same training run as the ground truth: see ``AutoTrainer``. Its time to verdict is the
   training time until it flags, or the whole run when it never does.

bnlint is told the variant's optimizer (name, peak lr, momentum, opt_args) and warm-up steps
(0: none). The summary gives each set's recall, precision and error findings on fine models
with 95% Wilson intervals.

``--recorded`` trains nothing: it scores bnlint (static and static+probe, on each variant's
seed-0 initialisation) against the labels on record, which is what a change to bnlint's rules
needs re-measured; the labels themselves are only re-checked by a full run.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import bnlint
from bench.studies import detection_labels as labels
from bench.studies.detection_models import Variant
from bench.studies.detection_models import suite as calibration_suite
from bench.studies.detection_tasks import DATA_SEED, N_TEST, N_TRAIN, Task, task
from bench.studies.holdout_models import suite as holdout_suite
from bench.studies.validation_models import suite as validation_suite
from bnlint.config import Config, Optimizer

STEPS, BATCH, N_DEAD, N_LINT = 400, 64, 512, 128
NO_FIT, DEAD, HUGE_LOSS = 0.5, 0.5, 1e5


# ---------------------------------------------------------------- AUTOTRAINER


@dataclass
class AutoTrainer:
    """AUTOTRAINER's detector (ICSE 2021) as we reimplement it, run during training.

    Every step: a NaN/Inf or >= 1e5 loss (or, at a check, a NaN gradient) is reported at once.
    Every ``every`` steps (a *check*) on the step's gradients: explosion
    ||gW_first|| / ||gW_last|| > 70; vanishing ratio < 1e-3 and ||gW_first|| < 1e-4 (first and
    last conv/linear weights); dying ReLU >= 70% of all gradient entries exactly 0. A symptom
    *persists* once it is seen in ``persist`` consecutive checks (then it stays latched, like the
    published monitor's counters). From ``judgment`` x the run on, at each check the model is
    *not converging* if the best 20-step mean training loss so far is above ``theta`` x the
    trivial loss (the analogue of the tool's "satisfied accuracy", 0.7, here the ground truth's
    own fit margin), or *slowly converging* if no check-to-check fall of that mean reached
    ``delta`` x the trivial loss (its sc_accuracy, delta = 0.01). When either holds, it reports
    the first persisted symptom in the tool's order (dying ReLU, explosion, vanishing), else
    ``not_converge`` when converging slowly. The tool's loss-oscillation and overfitting checks
    are left out (no validation curve here, and neither is in docs/SCIENCE.md §6)."""

    model: nn.Module
    steps: int
    baseline: float
    every: int = 10
    persist: int = 3
    judgment: float = 0.3
    theta: float = NO_FIT
    delta: float = 0.01
    verdict: str | None = None
    verdict_step: int | None = None
    verdict_time: float | None = None
    losses: list[float] = field(default_factory=list)
    windows: list[float] = field(default_factory=list)
    run: dict[str, int] = field(default_factory=lambda: {"relu": 0, "explode": 0, "vanish": 0})
    latched: dict[str, bool] = field(default_factory=lambda: {"relu": False, "explode": False,
                                                              "vanish": False})

    def __post_init__(self):
        kernels = [m.weight for m in self.model.modules()
                   if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) and m.weight.requires_grad]
        self.first, self.last = kernels[0], kernels[-1]
        self.params = [p for p in self.model.parameters() if p.requires_grad]

    def _flag(self, what: str, step: int, elapsed: float) -> None:
        if self.verdict is None:
            self.verdict, self.verdict_step, self.verdict_time = what, step, elapsed

    def observe(self, step: int, loss: float, elapsed: float) -> None:
        """After the backward pass of ``step`` (0-based); ``elapsed`` = training seconds."""
        self.losses.append(loss)
        if self.verdict is not None:
            return
        if not math.isfinite(loss) or loss >= HUGE_LOSS:
            self._flag("nan", step, elapsed)
            return
        if (step + 1) % self.every:
            return
        grads = [p.grad for p in self.params]
        if any(g is not None and not bool(torch.isfinite(g).all()) for g in grads):
            self._flag("nan", step, elapsed)
            return
        norm = lambda w: float(w.grad.norm()) if w.grad is not None else 0.0  # noqa: E731
        g_first, g_last = norm(self.first), norm(self.last)
        ratio = g_first / max(g_last, 1e-30)
        zeros = sum(int((g == 0).sum()) if g is not None else p.numel()
                    for g, p in zip(grads, self.params))
        total = sum(p.numel() for p in self.params)
        seen = {"explode": ratio > 70, "vanish": ratio < 1e-3 and g_first < 1e-4,
                "relu": zeros / total >= 0.7}
        for name, now in seen.items():
            self.run[name] = self.run[name] + 1 if now else 0
            if self.run[name] >= self.persist:
                self.latched[name] = True
        window = self.losses[-20:]
        self.windows.append(sum(window) / len(window))
        if step + 1 < self.judgment * self.steps:
            return
        not_converge = min(self.windows) > self.theta * self.baseline
        falls = [a - b for a, b in zip(self.windows, self.windows[1:])]
        slow = bool(falls) and max(falls) < self.delta * self.baseline
        if not (not_converge or slow):
            return
        for name in ("relu", "explode", "vanish"):
            if self.latched[name]:
                self._flag(name, step, elapsed)
                return
        if slow:
            self._flag("not_converge", step, elapsed)


# ---------------------------------------------------------------- training and ground truth


# A variant's optimizer by name (bnlint.config.OPTIMIZER_ARGS's names); torch's defaults
# besides lr, SGD's momentum and the variant's opt_args.
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}


def make_optimizer(v: Variant, params) -> torch.optim.Optimizer:
    if v.optimizer == "sgd":
        return torch.optim.SGD(params, lr=v.lr, momentum=v.momentum, **v.opt_args)
    return OPTIMIZERS[v.optimizer](params, lr=v.lr, **v.opt_args)


def bnlint_optimizer(v: Variant) -> Optimizer:
    return Optimizer(v.optimizer, v.lr, v.momentum if v.optimizer == "sgd" else 0.0,
                     dict(v.opt_args))


def dead_fraction(model: nn.Module, x: torch.Tensor) -> float | None:
    """Units-weighted fraction of nn.ReLU units that are 0 for every input (and position)."""
    model = copy.deepcopy(model).train()
    counts: list[tuple[int, int]] = []

    def hook(_m, _i, out):
        alive = (out != 0).transpose(0, 1).reshape(out.shape[1], -1).any(1)
        counts.append((int((~alive).sum()), out.shape[1]))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    total = sum(u for _, u in counts)
    return sum(d for d, _ in counts) / total if total else None


@dataclass
class Outcome:
    label: str
    evidence: str
    max_loss: float
    final_rel: float | None
    test_rel: float | None
    dead: float | None
    seconds: float
    autotrainer: AutoTrainer
    test_acc: float | None = None

    @property
    def initial_loss(self) -> float:
        return self.autotrainer.losses[0]

    @property
    def final_loss(self) -> float:
        """The mean training loss of the last 20 steps run."""
        window = self.autotrainer.losses[-20:]
        return sum(window) / len(window)


def huge_loss(t: Task) -> float:
    """The training loss that counts as diverged: ``HUGE_LOSS`` times the trivial loss, at least
    ``HUGE_LOSS``. (An absolute 1e5 called a model with targets of std 1000, trivial MSE 1e6,
    diverged at step 0; the scaled threshold changes no calibration label.)"""
    return HUGE_LOSS * max(1.0, t.train_baseline)


def train(v: Variant, model: nn.Module, t: Task, steps: int) -> Outcome:
    torch.manual_seed(v.seed + 1)
    gen = torch.Generator().manual_seed(v.seed + 2)
    model.train()
    opt = make_optimizer(v, [p for p in model.parameters() if p.requires_grad])
    monitor = AutoTrainer(model, steps, t.train_baseline)
    nonfinite = False
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, t.x.shape[0], (BATCH,), generator=gen)
        loss = t.loss(model(t.x[idx]), t.y[idx])
        value = float(loss.detach())
        opt.zero_grad(set_to_none=True)
        if v.warmup:
            for group in opt.param_groups:
                group["lr"] = v.lr * min(1.0, (step + 1) / v.warmup)
        if math.isfinite(value):
            loss.backward()
        monitor.observe(step, value, time.perf_counter() - start)
        if not math.isfinite(value):
            nonfinite = True
            break
        opt.step()
    seconds = time.perf_counter() - start
    losses = monitor.losses
    max_loss = max(losses) if not nonfinite else float("inf")
    final_rel = (sum(losses[-20:]) / len(losses[-20:])) / t.train_baseline
    params_finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    huge = huge_loss(t)
    if nonfinite or max_loss >= huge or not params_finite:
        why = (f"loss non-finite at step {len(losses) - 1}" if nonfinite else
               f"max loss {max_loss:.3g}" if max_loss >= huge else "non-finite weights")
        return Outcome("diverged", why, max_loss, None, None, None, seconds, monitor)
    dead = dead_fraction(model, t.x_test[:N_DEAD])
    model.eval()
    with torch.no_grad():
        out = model(t.x_test)
    test_rel = t.relative_test_loss(out) if bool(torch.isfinite(out).all()) else float("inf")
    test_acc = t.accuracy(out)
    if not math.isfinite(test_rel):
        return Outcome("diverged", "non-finite eval output", max_loss, final_rel, test_rel,
                       dead, seconds, monitor, test_acc)
    evidence = (f"train {final_rel:.2f}, test {test_rel:.2f} of trivial"
                + (f", dead {dead:.0%}" if dead is not None else ""))
    if dead is not None and dead >= DEAD:
        label = "dead"
    elif test_rel > NO_FIT:
        label = "no-fit"
    else:
        label = "fine"
    return Outcome(label, evidence, max_loss, final_rel, test_rel, dead, seconds, monitor,
                   test_acc)


# ---------------------------------------------------------------- bnlint


@dataclass
class LintResult:
    flagged: bool
    codes: list[str]            # warning/error codes, e.g. "E304"
    infos: list[str]            # info codes
    errors: list[str]           # error findings' messages
    seconds: float
    crash: str | None = None    # lint() raised: the exception (counted as not flagged)


def run_bnlint(v: Variant, model: nn.Module, t: Task, probe: bool) -> LintResult:
    config = Config(probe=probe, optimizer=bnlint_optimizer(v), warmup_steps=v.warmup)
    model = copy.deepcopy(model)
    x, y = t.x[:N_LINT], t.lint_targets(N_LINT)
    start = time.perf_counter()
    try:
        report = bnlint.lint(model, x, y, config=config, name=v.name)
    except Exception as exc:  # noqa: BLE001 - a bnlint bug: recorded, counted as no flag
        where = traceback.extract_tb(exc.__traceback__)[-1]
        crash = (f"{type(exc).__name__}: {exc} ({os.path.relpath(where.filename)}:"
                 f"{where.lineno})")
        return LintResult(False, [], [], [], time.perf_counter() - start, crash)
    seconds = time.perf_counter() - start
    codes, infos, errors = [], [], []
    for f in report.findings:
        short = f.code.removeprefix("BNL")
        if f.severity in ("warning", "error"):
            tag = ("E" if f.severity == "error" else "W") + short
            if tag not in codes:
                codes.append(tag)
            if f.severity == "error":
                errors.append(f"{f.code} {f.module}: {f.message}")
        elif short not in infos:
            infos.append(short)
    return LintResult(bool(codes), codes, infos, errors, seconds)


# ---------------------------------------------------------------- tables


def confusion(truth: list[bool], flags: list[bool]) -> dict[str, Any]:
    tp = sum(a and b for a, b in zip(truth, flags))
    fp = sum(b and not a for a, b in zip(truth, flags))
    fn = sum(a and not b for a, b in zip(truth, flags))
    tn = sum(not a and not b for a, b in zip(truth, flags))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "precision": precision, "recall": recall}


def _codes(r: LintResult | None) -> str:
    if r is None:
        return ""
    if r.crash:
        return "CRASH"
    shown = " ".join(r.codes) if r.codes else "-"
    return shown + (f" (i: {' '.join(r.infos)})" if r.infos else "")


@dataclass
class Row:
    variant: Variant
    outcome: Outcome
    static: LintResult | None
    probed: LintResult | None
    others: list[tuple[int, Outcome]]  # (seed, outcome) of the stability check's seeds

    @property
    def other_seeds(self) -> list[str]:
        return [o.label + (f" {o.test_rel:.2f}" if o.test_rel is not None else "")
                for _, o in self.others]


def _at(o: Outcome) -> str:
    at = o.autotrainer
    return f"{at.verdict} @ step {at.verdict_step}" if at.verdict else "-"


def print_tables(rows: list[Row], with_bnlint: bool) -> None:
    print("\n| variant | family | seeded defect | ground truth | evidence (loss / trivial; dead "
          "ReLU units) | seeds 1, 2 | bnlint static | bnlint static+probe | AUTOTRAINER |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        v, o = r.variant, r.outcome
        print(f"| {v.name} | {v.family} | {v.defect} | **{o.label}** | {o.evidence} | "
              f"{', '.join(r.other_seeds) or 'n/a'} | {_codes(r.static)} | {_codes(r.probed)} "
              f"| {_at(o)} |")
    print("\nCodes: W/E = a warning/error finding (BNLxyz without the prefix); i: info findings "
          "(not a flag); CRASH = lint() raised.")

    truth = [r.outcome.label != "fine" for r in rows]
    labels = {k: sum(r.outcome.label == k for r in rows) for k in ("diverged", "dead", "no-fit")}
    print(f"\n{sum(truth)} problems ({', '.join(f'{k} {n}' for k, n in labels.items())}), "
          f"{len(rows) - sum(truth)} fine.")
    at_flags = [r.outcome.autotrainer.verdict is not None for r in rows]
    at_seconds = [r.outcome.autotrainer.verdict_time if r.outcome.autotrainer.verdict
                  else r.outcome.seconds for r in rows]
    detectors: list[tuple[str, list[bool], list[float], int | None]] = []
    if with_bnlint:
        for name, attr in (("bnlint static", "static"), ("bnlint static+probe", "probed")):
            results = [getattr(r, attr) for r in rows]
            fine_errors = sum(bool(res.errors) for res, r in zip(results, rows)
                              if r.outcome.label == "fine")
            detectors.append((name, [res.flagged for res in results],
                              [res.seconds for res in results], fine_errors))
        for name, attr in (("bnlint static, errors only", "static"),
                           ("bnlint static+probe, errors only", "probed")):
            results = [getattr(r, attr) for r in rows]
            detectors.append((name, [bool(res.errors) for res in results],
                              [res.seconds for res in results], None))
    detectors.append(("AUTOTRAINER (in training)", at_flags, at_seconds, None))

    print("\n| detector | TP | FP | TN | FN | precision | recall | time to verdict: median "
          "| mean | max | fine models with an error finding |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, flags, seconds, errs in detectors:
        c = confusion(truth, flags)
        print(f"| {name} | {c['tp']} | {c['fp']} | {c['tn']} | {c['fn']} | "
              f"{c['precision']:.2f} | {c['recall']:.2f} | {statistics.median(seconds):.2f} s | "
              f"{statistics.mean(seconds):.2f} s | {max(seconds):.2f} s | "
              f"{'n/a' if errs is None else errs} |")
    steps = [r.outcome.autotrainer.verdict_step for r in rows if r.outcome.autotrainer.verdict]
    runs = [r.outcome.seconds for r in rows]
    if steps:
        print(f"\nAUTOTRAINER's verdict came at training step {min(steps)}-{max(steps)} "
              f"(median {statistics.median(steps):g}) where it flagged; a full training run "
              f"here took {statistics.median(runs):.2f} s (median), {max(runs):.1f} s (max). "
              "bnlint's time is the wall time of lint() (fx trace, rules, probe).")

    if with_bnlint:
        print("(\"errors only\": flag = an error finding; its fine-model column is the FP "
              "count.)")
    detectors = [d for d in detectors if "errors only" not in d[0]]
    families = list(dict.fromkeys(r.variant.family for r in rows))
    print("\n| family | problems | fine | flagged problems: static / +probe / AUTOTRAINER "
          "| flagged fine models: static / +probe / AUTOTRAINER |")
    print("|---|---|---|---|---|")
    for fam in families:
        idx = [i for i, r in enumerate(rows) if r.variant.family == fam]
        prob = [i for i in idx if truth[i]]
        fine = [i for i in idx if not truth[i]]
        cols = [" / ".join(str(sum(d[1][i] for i in group)) for d in detectors)
                for group in (prob, fine)]
        print(f"| {fam} | {len(prob)} | {len(fine)} | {cols[0]} | {cols[1]} |")

    if with_bnlint:
        print()
        for name, attr in (("static", "static"), ("static+probe", "probed")):
            for r in rows:
                res = getattr(r, attr)
                if r.outcome.label == "fine" and res.errors:
                    print(f"  bnlint {name}: error on fine model {r.variant.name}: "
                          f"{res.errors[0]}" + (f" (+{len(res.errors) - 1} more)"
                                                if len(res.errors) > 1 else ""))
                if res.crash:
                    print(f"  bnlint {name} crashed on {r.variant.name}: {res.crash}")
    for name, flags, _, _ in detectors:
        fps = [r.variant.name for r, f in zip(rows, flags) if f and r.outcome.label == "fine"]
        fns = [r.variant.name for r, f in zip(rows, flags) if not f and r.outcome.label != "fine"]
        print(f"  {name}: false positives: {', '.join(fps) or 'none'}; "
              f"misses: {', '.join(fns) or 'none'}")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for k successes in n trials (95% for z = 1.96)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(k: int, n: int) -> str:
    if not n:
        return "n/a (0/0)"
    lo, hi = wilson(k, n)
    return f"{k / n:.2f} ({k}/{n}) [{lo:.2f}, {hi:.2f}]"


def print_summary(results: dict[str, list[Row]]) -> None:
    """Each set side by side: bnlint's recall and precision (warning or error = flag) and its
    error findings on models that trained fine, each with its 95% Wilson interval."""
    print("\n## Summary: " + " vs ".join(results) + "\n")
    print("| measure | " + " | ".join(f"{name} ({len(rows)} models)"
                                      for name, rows in results.items()) + " |")
    print("|---|" + "---|" * len(results))
    cells: dict[str, list[str]] = {}
    for rows in results.values():
        truth = [r.outcome.label != "fine" for r in rows]
        cells.setdefault("problems / fine (by training)", []).append(
            f"{sum(truth)} / {len(rows) - sum(truth)}")
        for name, attr in (("static", "static"), ("static+probe", "probed")):
            results_ = [getattr(r, attr) for r in rows]
            c = confusion(truth, [res.flagged for res in results_])
            fine_errors = sum(bool(res.errors) for res, bad in zip(results_, truth) if not bad)
            cells.setdefault(f"bnlint {name}: recall", []).append(
                _rate(c["tp"], c["tp"] + c["fn"]))
            cells.setdefault(f"bnlint {name}: precision", []).append(
                _rate(c["tp"], c["tp"] + c["fp"]))
            cells.setdefault(f"bnlint {name}: errors on models that trained fine", []).append(
                _rate(fine_errors, len(rows) - sum(truth)))
    for measure, values in cells.items():
        print(f"| {measure} | " + " | ".join(values) + " |")
    print("\nRates as k/n with a 95% Wilson score interval [low, high]; flag = a warning or "
          "error finding; \"errors on models that trained fine\" = fine models with at least "
          "one error finding, over all fine models.")


SETS: dict[str, tuple[str, Callable[[], list[Variant]]]] = {
    "calibration": ("bench/studies/detection_models.py", calibration_suite),
    "validation": ("bench/studies/validation_models.py", validation_suite),
    "holdout": ("bench/studies/holdout_models.py", holdout_suite),
}
SUITES = {**{name: [name] for name in SETS}, "both": ["calibration", "validation"],
          "all": list(SETS)}


def run_set(variants: list[Variant], steps: int, extra_seeds: tuple[int, ...],
            with_bnlint: bool) -> list[Row]:
    rows = []
    for v in variants:
        t = task(v.task, v.target_scales, v.target_shift)
        torch.manual_seed(v.seed)
        model = v.build()
        init = copy.deepcopy(model)
        outcome = train(v, model, t, steps)
        others = []
        for seed in extra_seeds:
            w = dataclasses.replace(v, seed=seed)
            torch.manual_seed(seed)
            others.append((seed, train(w, w.build(), t, steps)))
        static = probed = None
        if with_bnlint:
            static = run_bnlint(v, init, t, probe=False)
            probed = run_bnlint(v, init, t, probe=True)
        row = Row(v, outcome, static, probed, others)
        rows.append(row)
        print(f"  {v.name}: {outcome.label} ({outcome.evidence}; {outcome.seconds:.1f} s)"
              f" | seeds 1, 2: {', '.join(row.other_seeds) or 'n/a'} | static "
              f"{_codes(static) or '-'} | probe {_codes(probed) or '-'} | AUTOTRAINER "
              f"{_at(outcome)}", flush=True)
    return rows


@dataclass
class Recorded:
    """A recorded training outcome, as the tables read it (--recorded: no training, so no
    AUTOTRAINER verdict)."""
    label: str
    evidence: str


def run_recorded(name: str, variants: list[Variant]) -> list[Row]:
    """bnlint on each variant's seed-0 initialisation, against the labels on record."""
    recorded = json.loads(labels.path(name).read_text())["variants"]
    rows = []
    for v in variants:
        entry = recorded[v.name]
        t = task(v.task, v.target_scales, v.target_shift)
        torch.manual_seed(v.seed)
        model = v.build()
        static = run_bnlint(v, model, t, probe=False)
        probed = run_bnlint(v, model, t, probe=True)
        others = [(int(s), Recorded(o["label"], "")) for s, o in entry["other_seeds"].items()]
        rows.append(Row(v, Recorded(entry["label"], entry["evidence"]), static, probed, others))
        print(f"  {v.name}: {entry['label']} (recorded) | static {_codes(static) or '-'} | "
              f"probe {_codes(probed) or '-'}", flush=True)
    return rows


def print_recorded(rows: list[Row]) -> None:
    print("\n| variant | family | seeded defect | ground truth (recorded) | evidence | seeds 1, 2 "
          "| bnlint static | bnlint static+probe |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        v = r.variant
        print(f"| {v.name} | {v.family} | {v.defect} | **{r.outcome.label}** | "
              f"{r.outcome.evidence} | {', '.join(o.label for _, o in r.others) or 'n/a'} | "
              f"{_codes(r.static)} | {_codes(r.probed)} |")
    truth = [r.outcome.label != "fine" for r in rows]
    print("\n| detector | TP | FP | TN | FN | precision | recall | fine models with an error "
          "finding |")
    print("|---|---|---|---|---|---|---|---|")
    for name, attr in (("bnlint static", "static"), ("bnlint static+probe", "probed")):
        results = [getattr(r, attr) for r in rows]
        c = confusion(truth, [res.flagged for res in results])
        errs = sum(bool(res.errors) for res, bad in zip(results, truth) if not bad)
        print(f"| {name} | {c['tp']} | {c['fp']} | {c['tn']} | {c['fn']} | "
              f"{c['precision']:.2f} | {c['recall']:.2f} | {errs} |")
    for name, attr in (("static", "static"), ("static+probe", "probed")):
        for r in rows:
            res = getattr(r, attr)
            if r.outcome.label == "fine" and res.errors:
                print(f"  bnlint {name}: error on fine model {r.variant.name}: {res.errors[0]}")
            if res.crash:
                print(f"  bnlint {name} crashed on {r.variant.name}: {res.crash}")
        flags = [getattr(r, attr).flagged for r in rows]
        fps = [r.variant.name for r, f in zip(rows, flags) if f and r.outcome.label == "fine"]
        fns = [r.variant.name for r, f in zip(rows, flags) if not f and r.outcome.label != "fine"]
        print(f"  bnlint {name}: false positives: {', '.join(fps) or 'none'}; "
              f"misses: {', '.join(fns) or 'none'}")


def protocol(steps: int) -> dict[str, Any]:
    """What a training label depends on besides the variant (compared before labels are)."""
    return {"steps": steps, "batch": BATCH, "n_train": N_TRAIN, "n_test": N_TEST,
            "data_seed": DATA_SEED, "no_fit": NO_FIT, "dead": DEAD, "n_dead": N_DEAD,
            "huge_loss": f"{HUGE_LOSS:g} x max(1, trivial loss)"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=tuple(SUITES), default="both",
                   help="which set of models (default both: calibration and validation, side "
                        "by side; all: the three)")
    p.add_argument("--quick", action="store_true",
                   help="only the variants marked quick, and no extra-seed check")
    p.add_argument("--only", help="comma-separated variant names")
    p.add_argument("--steps", type=int, default=STEPS, help="training steps (ground truth)")
    p.add_argument("--no-bnlint", action="store_true", help="ground truth and AUTOTRAINER only")
    p.add_argument("--record-labels", action="store_true",
                   help="write each set's training labels and metrics to "
                        "bench/studies/SET_labels.json (whole sets at the default steps only)")
    p.add_argument("--recorded", action="store_true",
                   help="train nothing: score bnlint against the labels on record")
    args = p.parse_args(argv)
    if args.recorded and (args.no_bnlint or args.record_labels or args.steps != STEPS):
        p.error("--recorded scores bnlint against the recorded labels: drop --no-bnlint, "
                "--record-labels and --steps")
    if args.record_labels and (args.quick or args.only or args.steps != STEPS):
        p.error("--record-labels records whole sets at the default steps: drop --quick, "
                "--only and --steps")
    sets = SUITES[args.suite]
    chosen = {name: SETS[name][1]() for name in sets}
    if args.only:
        names = args.only.split(",")
        known = {v.name for variants in chosen.values() for v in variants}
        unknown = [n for n in names if n not in known]
        if unknown:
            p.error(f"no variant named {', '.join(unknown)} in the {' and '.join(sets)} set(s)")
        chosen = {k: [v for v in vs if v.name in names] for k, vs in chosen.items()}
    elif args.quick:
        chosen = {k: [v for v in vs if v.quick] for k, vs in chosen.items()}
    chosen = {k: vs for k, vs in chosen.items() if vs}
    for name, variants in chosen.items() if args.recorded else ():
        if not labels.path(name).exists():
            p.error(f"--recorded: no labels on record for the {name} set "
                    f"({os.path.relpath(labels.path(name))}); record them with "
                    f"--suite {name} --no-bnlint --record-labels")
        missing = [v.name for v in variants
                   if v.name not in json.loads(labels.path(name).read_text())["variants"]]
        if missing:
            p.error(f"--recorded: {', '.join(missing)} not in {labels.path(name).name}; "
                    "record the set's labels again")
    extra_seeds = () if args.quick else (1, 2)
    torch.set_num_threads(1)
    wall = time.perf_counter()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, {platform.machine()} "
          f"{os.cpu_count()}-core CPU; ground truth: {args.steps} "
          f"steps, batch {BATCH}, {N_TRAIN} training / {N_TEST} held-out examples, seed 0; "
          f"no-fit: held-out loss > {NO_FIT} x trivial; dead: >= {DEAD:.0%} of ReLU units dead "
          f"on {N_DEAD} held-out inputs; diverged: NaN/Inf or loss >= {HUGE_LOSS:g} x max(1, "
          "trivial loss). "
          + (f"Seeds {', '.join(map(str, extra_seeds))}: the same training from another init "
             "and batch order, to show how stable each label is (not used for scoring)."
             if extra_seeds else ""))
    print("bnlint: lint() on the model at init with 128 training examples and targets and "
          "the variant's optimizer; static = probe off; +probe = default probe (batch 64, "
          "20 steps, 30 s budget). Flag = a warning or error finding. AUTOTRAINER: checks "
          "every 10 steps, symptom persists = 3 consecutive checks, judged from 30% of the "
          "run.")

    results = {}
    for name, variants in chosen.items():
        print(f"\n## {name.capitalize()} set ({SETS[name][0]}): {len(variants)} variants\n")
        if args.recorded:
            print(f"Labels as recorded in {os.path.relpath(labels.path(name))}; nothing trained.")
            results[name] = run_recorded(name, variants)
            print_recorded(results[name])
            continue
        rows = run_set(variants, args.steps, extra_seeds, not args.no_bnlint)
        print_tables(rows, not args.no_bnlint)
        print()
        for line in labels.check(name, rows, protocol(args.steps)):
            print(line)
        if args.record_labels:
            where = labels.record(name, rows, protocol(args.steps), sys.argv[1:] if argv is None
                                  else argv)
            print(f"Labels recorded in {os.path.relpath(where)}.")
        results[name] = rows
    if not args.no_bnlint and results:
        print_summary(results)
    print(f"\nElapsed: {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
