"""Detection study: does bnlint flag the models that then fail to train, and only those?

    python -m bench.studies.detection          # the full suite (bench/studies/detection_models.py)
    python -m bench.studies.detection --quick  # the variants marked quick
    python -m bench.studies.detection --only NAME[,NAME...] [--steps N] [--no-bnlint]

Ground truth comes from *training* each variant (never from bnlint's rules): ``STEPS`` steps of
its configured optimizer (SGD momentum 0.9 unless the variant says otherwise, batch 64) on its
synthetic task, seeded. The outcome, decided in this order:

- ``diverged``: a training loss that is NaN/Inf or >= 1e5, or non-finite parameters at the end.
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
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import platform
import statistics
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import bnlint
from bench.studies.detection_models import CLASSES, IMG_C, IMG_HW, IN_CLS, IN_REG, Variant, suite
from bnlint.config import Config, Optimizer

STEPS, BATCH, N_TRAIN, N_TEST, N_DEAD, N_LINT = 400, 64, 8192, 1024, 512, 128
NO_FIT, DEAD, HUGE_LOSS = 0.5, 0.5, 1e5
DATA_SEED = 1234


# ---------------------------------------------------------------- tasks


@dataclass
class Task:
    kind: str                 # "cls" or "reg"
    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_baseline: float     # the trivial predictor's training loss
    test_baseline: torch.Tensor  # per output (one value for classification)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y) if self.kind == "cls" else F.mse_loss(out, y)

    def relative_test_loss(self, out: torch.Tensor) -> float:
        if self.kind == "cls":
            return float(F.cross_entropy(out, self.y_test)) / float(self.test_baseline)
        per_output = ((out - self.y_test) ** 2).mean(0)
        return float((per_output / self.test_baseline).mean())

    def lint_targets(self) -> torch.Tensor:
        y = self.y[:N_LINT]
        return y.float() if self.kind == "cls" else y


_TASKS: dict[tuple, Task] = {}


def _split(x: torch.Tensor, y: torch.Tensor) -> tuple:
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def _classification(x: torch.Tensor, logits: torch.Tensor) -> Task:
    y = logits.argmax(1)
    x, y, xt, yt = _split(x, y)
    freq = torch.bincount(y, minlength=CLASSES).float().add(1.0) / (len(y) + CLASSES)
    train_base = float(-(freq * freq.log()).sum())
    test_base = -freq.log()[yt].mean()
    return Task("cls", x, y, xt, yt, train_base, test_base.reshape(1))


def task(name: str, scales: tuple[float, ...], shift: float = 0.0) -> Task:
    key = (name, scales, shift)
    if key in _TASKS:
        return _TASKS[key]
    g = torch.Generator().manual_seed(DATA_SEED)
    n = N_TRAIN + N_TEST
    if name == "cls":
        x = torch.randn(n, IN_CLS, generator=g)
        w1 = torch.randn(IN_CLS, 16, generator=g) / math.sqrt(IN_CLS)
        w2 = torch.randn(16, CLASSES, generator=g)
        made = _classification(x, torch.tanh(x @ w1) @ w2)
    elif name == "img":
        x = F.interpolate(torch.randn(n, IMG_C, IMG_HW // 2, IMG_HW // 2, generator=g),
                          size=IMG_HW, mode="bilinear", align_corners=False)
        x = x / x.std()
        k = torch.randn(8, IMG_C, 3, 3, generator=g) / math.sqrt(IMG_C * 9) * 1.5
        h = torch.tanh(F.conv2d(x, k, padding=1)).mean((2, 3))
        h = (h - h.mean(0)) / h.std(0)
        w = torch.randn(h.shape[1], CLASSES, generator=g)
        made = _classification(x, h @ w)
    else:
        x = torch.randn(n, IN_REG, generator=g)
        a = torch.randn(IN_REG, generator=g)
        b = torch.randn(IN_REG, generator=g)
        a, b = a / a.norm() * 1.5, b / b.norm()
        terms = torch.stack([torch.sin(x @ a), 0.5 * torch.cos(x @ b)], 1)
        y = terms.sum(1, keepdim=True) if name == "reg" else terms
        y = (y - y[:N_TRAIN].mean(0)) / y[:N_TRAIN].std(0)
        y = y * torch.tensor(scales) + shift
        x, y, xt, yt = _split(x, y)
        mean = y.mean(0)
        train_base = float(((y - mean) ** 2).mean())
        made = Task("reg", x, y, xt, yt, train_base, ((yt - mean) ** 2).mean(0))
    _TASKS[key] = made
    return made


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


def make_optimizer(v: Variant, params) -> torch.optim.Optimizer:
    if v.optimizer == "adam":
        return torch.optim.Adam(params, lr=v.lr)
    return torch.optim.SGD(params, lr=v.lr, momentum=v.momentum)


def bnlint_optimizer(v: Variant) -> Optimizer:
    if v.optimizer == "adam":
        return Optimizer("adam", v.lr, 0.0)
    return Optimizer("sgd", v.lr, v.momentum)


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
    if nonfinite or max_loss >= HUGE_LOSS or not params_finite:
        why = (f"loss non-finite at step {len(losses) - 1}" if nonfinite else
               f"max loss {max_loss:.3g}" if max_loss >= HUGE_LOSS else "non-finite weights")
        return Outcome("diverged", why, max_loss, None, None, None, seconds, monitor)
    dead = dead_fraction(model, t.x_test[:N_DEAD])
    model.eval()
    with torch.no_grad():
        out = model(t.x_test)
    test_rel = t.relative_test_loss(out) if bool(torch.isfinite(out).all()) else float("inf")
    if not math.isfinite(test_rel):
        return Outcome("diverged", "non-finite eval output", max_loss, final_rel, test_rel,
                       dead, seconds, monitor)
    evidence = (f"train {final_rel:.2f}, test {test_rel:.2f} of trivial"
                + (f", dead {dead:.0%}" if dead is not None else ""))
    if dead is not None and dead >= DEAD:
        label = "dead"
    elif test_rel > NO_FIT:
        label = "no-fit"
    else:
        label = "fine"
    return Outcome(label, evidence, max_loss, final_rel, test_rel, dead, seconds, monitor)


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
    config = Config(probe=probe, optimizer=bnlint_optimizer(v))
    model = copy.deepcopy(model)
    x, y = t.x[:N_LINT], t.lint_targets()
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
    other_seeds: list[str]


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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="only the variants marked quick, and no extra-seed check")
    p.add_argument("--only", help="comma-separated variant names")
    p.add_argument("--steps", type=int, default=STEPS, help="training steps (ground truth)")
    p.add_argument("--no-bnlint", action="store_true", help="ground truth and AUTOTRAINER only")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    wall = time.perf_counter()
    variants = suite()
    if args.only:
        names = args.only.split(",")
        variants = [v for v in variants if v.name in names]
    elif args.quick:
        variants = [v for v in variants if v.quick]
    extra_seeds = () if args.quick else (1, 2)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, {platform.machine()} "
          f"{os.cpu_count()}-core CPU; {len(variants)} variants; ground truth: {args.steps} "
          f"steps, batch {BATCH}, {N_TRAIN} training / {N_TEST} held-out examples, seed 0; "
          f"no-fit: held-out loss > {NO_FIT} x trivial; dead: >= {DEAD:.0%} of ReLU units dead "
          f"on {N_DEAD} held-out inputs; diverged: NaN/Inf or loss >= {HUGE_LOSS:g}. "
          + (f"Seeds {', '.join(map(str, extra_seeds))}: the same training from another init "
             "and batch order, to show how stable each label is (not used for scoring)."
             if extra_seeds else ""))
    print("bnlint: lint() on the model at init with 128 training examples and targets and "
          "the variant's optimizer; static = probe off; +probe = default probe (batch 64, "
          "20 steps, 30 s budget). Flag = a warning or error finding. AUTOTRAINER: checks "
          "every 10 steps, symptom persists = 3 consecutive checks, judged from 30% of the "
          "run.\n")

    rows = []
    for v in variants:
        t = task(v.task, v.target_scales, v.target_shift)
        torch.manual_seed(v.seed)
        model = v.build()
        init = copy.deepcopy(model)
        outcome = train(v, model, t, args.steps)
        others = []
        for seed in extra_seeds:
            w = dataclasses.replace(v, seed=seed)
            torch.manual_seed(seed)
            o = train(w, w.build(), t, args.steps)
            others.append(o.label + (f" {o.test_rel:.2f}" if o.test_rel is not None else ""))
        static = probed = None
        if not args.no_bnlint:
            static = run_bnlint(v, init, t, probe=False)
            probed = run_bnlint(v, init, t, probe=True)
        rows.append(Row(v, outcome, static, probed, others))
        print(f"  {v.name}: {outcome.label} ({outcome.evidence}; {outcome.seconds:.1f} s)"
              f" | seeds 1, 2: {', '.join(others) or 'n/a'} | static {_codes(static) or '-'}"
              f" | probe {_codes(probed) or '-'} | AUTOTRAINER {_at(outcome)}", flush=True)

    print_tables(rows, not args.no_bnlint)
    print(f"\nElapsed: {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
