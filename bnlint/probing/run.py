"""The probe: a short measured forward/backward, then a few training steps, on a copy of the
model, as planned before it runs (:mod:`.plan`: batch, resolution, steps and Hessian-vector
products from the model's FLOPs, never from the clock). It measures what the static rules
predict: per-layer activation statistics, dead ReLUs, gradient norms and the first/last
gradient ratio, sample correlation (which Paik & Choi, arXiv:2304.11692, show offsets BN-ReLU
gradient explosion), the first module to produce NaN/Inf, and the optimizer's learning-rate
ceiling (:mod:`.stability`: factor / lambda_max of the Hessian at initialisation, or of the
preconditioned Hessian after the steps for adaptive optimizers).

``--probe-budget`` is also a hard stop: after the measurement at initialisation, which always
runs, no step or Hessian-vector product starts that the one before it says would end past the
budget (the Hessian gets its planned share of it, less the time the steps after it need at
the initialisation pass's measured cost). A run the clock cuts says so in
``ProbeResult.cut`` and a note; on a machine at least as fast as the plan's rate that never
happens, so the numbers do not depend on the machine or its load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import config as defaults
from .. import optim as bnlint_optim
from ..config import OPTIMIZER_ARGS, OPTIMIZERS, Config, Optimizer
from ..discover.loss import LOSSES
from ..discover.loss import Loss as LossSpec
from ..discover.targets import Targets, are_class_labels
from ..errors import InputError
from ..measurement import (
    LR_CEILING,
    TRAJECTORY,
    Cut,
    LayerStats,
    LrCeiling,
    NonFinite,
    ProbePlan,
    ProbeResult,
    ProbeStep,
)
from ..model.graph import ModelGraph
from . import hessian, stability
from . import taps as measure
from .plan import first_tensor, make_plan, passes, resized


@dataclass
class ProbeOptions:
    """How to probe: the defaults are config.py's (``--device``, ``--probe-batch``,
    ``--probe-steps``, ``--probe-budget``, ``optimizer``, the Hessian-vector products and the
    plan's FLOP rate)."""
    device: str = defaults.DEVICE
    batch: int = defaults.PROBE_BATCH
    steps: int = defaults.PROBE_STEPS
    budget: float = defaults.PROBE_BUDGET
    optimizer: Optimizer | None = None
    loss: LossSpec | None = None    # the loss the model trains with, when bnlint knows it
    hvps: int = defaults.PROBE_HVPS
    flop_rate: float = defaults.PROBE_FLOP_RATE
    seed: int = 0
    synthetic_inputs: bool = False  # inputs are random (not data): regenerate at probe batch
    inferred_inputs: bool = False   # ...and inferred, not given: the plan may lower their size
    in_place: bool = False          # train the model itself, not a copy (a throwaway model)

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> ProbeOptions:
        """The probe settings of a lint config (device, batch, steps, budget, optimizer)."""
        return cls(**{"device": config.device, "batch": config.probe_batch,
                      "steps": config.probe_steps, "budget": config.probe_budget,
                      "optimizer": config.optimizer, **overrides})


def select_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None
                 and torch.backends.mps.is_available()}
    if not available[name]:
        raise InputError(f"--device {name}: no {name.upper()} device is available here.",
                         hint="Use --device auto (cuda, then mps, then cpu) or --device cpu.")
    return torch.device(name)


def probe_batch(inputs: tuple, batch: int, synthetic: bool) -> int:
    """The batch the probe trains on: ``batch`` for random inputs, else at most the samples
    the real inputs have."""
    return batch if synthetic else min(batch, inputs[0].shape[0])


def _batch(inputs: tuple, targets: Targets | None, synthetic: bool, batch: int,
           gen: torch.Generator) -> tuple[tuple, torch.Tensor | None]:
    """The probe batch: random inputs are redrawn at the probe batch size; real ones (and
    the targets paired with them) are subsampled to it in a seeded random order."""
    target = targets.tensor if targets is not None else None
    if synthetic:
        size = batch if target is None else min(batch, target.shape[0])
        drawn = tuple(torch.randn((size, *x.shape[1:]), generator=gen).to(x.dtype)
                      if x.is_floating_point() else
                      x[torch.randint(0, x.shape[0], (size,), generator=gen)] for x in inputs)
        return drawn, (target[:size] if target is not None else None)
    n = inputs[0].shape[0]
    index = torch.randperm(n, generator=gen)[:min(batch, n)]
    if target is not None:
        target = target[index] if target.shape[0] == n else target[:len(index)]
    return tuple(x[index] for x in inputs), target


Loss = Callable[[torch.Tensor, slice], torch.Tensor]


def _bce(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCELoss on probabilities (used only for a model whose first outputs are in [0, 1]; the
    clamp keeps a later step that leaves the range from raising)."""
    return F.binary_cross_entropy(out.clamp(0, 1), target)


# The losses the probe can train with on given targets: the torch function, and whether it
# takes class labels (True), targets of the output's shape (False) or either (None)
_TORCH_LOSSES = {"mse": (F.mse_loss, False), "mae": (F.l1_loss, False),
                 "huber": (F.huber_loss, False), "ce": (F.cross_entropy, None),
                 "bce": (_bce, False),
                 "bce_with_logits": (F.binary_cross_entropy_with_logits, False),
                 "nll": (F.nll_loss, True)}


OWN_LOSS = "the model's loss"  # how the probe's loss text starts when it is the model's own


def _known_loss(spec: LossSpec, out: torch.Tensor, target: torch.Tensor,
                probabilities: bool) -> tuple[Loss, str] | None:
    """The model's own loss (config or inferred) on the given targets, with its reduction,
    when the probe can train with it on them; ``out`` has the whole batch's output shape.
    A summed loss is the mean times the whole batch's count, so that the ranks' shares of it
    (each its rows' mean times its share of the batch) add up to the sum. BCELoss only when
    the model's outputs are ``probabilities`` (else the file applies something before it)."""
    if spec.name not in _TORCH_LOSSES or (spec.name == "bce" and not probabilities):
        return None
    fn, labels = _TORCH_LOSSES[spec.name]
    if labels is not False and are_class_labels(target, out):
        t, count = target.long(), out.shape[0]
    elif labels is not True and target.numel() == out.numel():
        t, count = target.reshape(out.shape).to(out.dtype), out.numel()
    else:
        return None
    factor = spec.scale * (count if spec.reduction == "sum" else 1)
    how = f", {spec.reduced}" if spec.reduced else ""
    return (lambda o, rows: fn(o, t[rows]) * factor), \
        f"{OWN_LOSS} ({LOSSES[spec.name][1]}{how}) on the given targets"


def _loss(out: torch.Tensor, targets: Targets | None, target: torch.Tensor | None,
          gen: torch.Generator, spec: LossSpec | None = None,
          probabilities: bool = False, class_dim: int | None = None) -> tuple[Loss, str]:
    """The training loss of the output for ``rows`` of the batch: the model's own (``spec``)
    on the given targets when it is a torch loss the probe can run on them, else cross-entropy
    or mean-squared error on the given targets when they fit the output, else synthetic;
    ``out`` has the shape of the whole batch's output; ``probabilities``: its values are all in
    [0, 1]; ``class_dim``: the dimension the output layer writes its units to, where a model
    whose own loss is a cross-entropy or NLL has its classes (a language model's vocabulary,
    last; a segmentation net's channels, 1)."""
    n = out.shape[0]
    classes = out.dim() == 2 and out.shape[1] > 1
    if target is not None:
        target = target.to(out.device)
        own = _known_loss(spec, out, target, probabilities) if spec is not None else None
        if own is not None:
            return own
        if are_class_labels(target, out):
            labels = target.long()
            return (lambda o, rows: F.cross_entropy(o, labels[rows])), \
                "cross-entropy on the given targets"
        if target.numel() == out.numel():
            t = target.reshape(out.shape).to(out.dtype)
            return (lambda o, rows: F.mse_loss(o, t[rows])), \
                "mean-squared error on the given targets"
        note = (f"the targets' shape {tuple(target.shape)} does not fit the output "
                f"{tuple(out.shape)}; ")
    else:
        note = ""
    if classes:
        labels = torch.randint(0, out.shape[1], (n,), generator=gen).to(out.device)
        return (lambda o, rows: F.cross_entropy(o, labels[rows])), \
            note + "synthetic targets: random class labels, cross-entropy"
    if spec is not None and spec.name in ("ce", "nll") and class_dim is not None \
            and out.dim() > 2 and class_dim % out.dim() > 0:
        dim = class_dim % out.dim()
        fn = F.cross_entropy if spec.name == "ce" else F.nll_loss
        labels = torch.randint(0, out.shape[dim], (*out.shape[:dim], *out.shape[dim + 1:]),
                               generator=gen).to(out.device)
        return (lambda o, rows: fn(o.movedim(dim, 1), labels[rows])), \
            note + (f"synthetic targets: random class labels over the output's dimension "
                    f"{dim} ({out.shape[dim]} classes), {spec.said}")
    std = targets.std if targets is not None and targets.tensor is None else 1.0
    t = (torch.randn(out.shape, generator=gen) * std).to(out.device, out.dtype)
    return (lambda o, rows: F.mse_loss(o, t[rows])), \
        note + f"synthetic targets: N(0, {std:g}^2), mean-squared error"


def _optimizer_name(opt: Optimizer | None) -> str:
    return (opt.name if opt else "sgd").lower()


def _optimizer(opt: Optimizer | None,
               params: list[nn.Parameter]) -> tuple[torch.optim.Optimizer, dict]:
    """The optimizer the config names (any of config.OPTIMIZER_ARGS, with its arguments), or
    SGD at the probe's defaults."""
    name = _optimizer_name(opt)
    if name not in OPTIMIZER_ARGS:
        raise InputError(f"optimizer '{name}' is not one the probe can run.",
                         hint=f"Use one of {', '.join(OPTIMIZERS)} in the optimizer config.")
    lr = opt.lr if opt and opt.lr is not None else defaults.PROBE_LR
    momentum = opt.momentum if opt else defaults.PROBE_MOMENTUM
    class_name, known = OPTIMIZER_ARGS[name]
    kwargs = {k: tuple(v) if isinstance(v, list) else v
              for k, v in (opt.args if opt else {}).items()}
    if "momentum" in known:
        kwargs["momentum"] = momentum
    made_by = getattr(bnlint_optim, class_name, None) or getattr(torch.optim, class_name)
    try:
        made = made_by(params, lr=lr, **kwargs)
    except (ValueError, TypeError) as exc:  # torch's own check of a value
        raise InputError(f"optimizer {class_name}: {exc}.",
                         hint="Fix its arguments in the optimizer config.") from None
    return made, {"name": name, "lr": lr,
                  "momentum": momentum if "momentum" in known else None,
                  "args": dict(opt.args) if opt else {}}


def _affine_modules(graph: ModelGraph, model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, weight) of each affine layer in execution order, on the probe copy: a module's
    own weight, named by the module; or, for the affine op inside a subclass of an affine
    layer that rewrites its weight before the op (the scaled weight-standardised conv of
    NF-Nets, arXiv:2101.08692; a padding conv), that layer's weight, named by the op's key."""
    out, seen = [], set()
    for layer in graph.order:
        if not layer.is_("@affine"):
            continue
        name, owner = (layer.module, layer.module) if layer.module else \
            (layer.key, graph.affine_owner(layer))
        if owner is None or owner in seen:
            continue
        weight = getattr(model.get_submodule(owner), "weight", None)
        if isinstance(weight, torch.Tensor) and weight.requires_grad:
            seen.add(owner)
            out.append((name, weight))
    return out


class _Run:
    """One probe run on one device and batch size: the instrumented copy, its batch and loss.
    The probe across ranks (:class:`.ranks.ShardedRun`) is a subclass: its model is sharded, it
    runs its rows of the batch, and :meth:`summed`, :meth:`local` and :meth:`agreed` reduce
    what it measures across the ranks; here, with the whole model and batch, they return
    their argument."""

    world = 1  # processes that share the run
    rows = slice(None)  # the samples of the batch this process runs
    reduce: measure.Reduce | None = None  # how the taps' sums are reduced across processes
    curvature_tail = 0  # forward+backward passes curvature() runs after its deadline

    def __init__(self, graph: ModelGraph, inputs: tuple, targets: Targets | None,
                 opts: ProbeOptions, device: torch.device, plan: ProbePlan):
        self.graph = graph
        self.gen = torch.Generator().manual_seed(opts.seed)
        torch.manual_seed(opts.seed)
        x, target = _batch(resized(inputs, plan.resolution), targets, opts.synthetic_inputs,
                           plan.batch, self.gen)
        self.batch = x[0].shape[0]
        self.recorder = measure.Recorder(self.reduce)
        self.model = self.placed(opts, device)
        self.x = tuple(t[self.rows].to(device) for t in x)
        self.tapped = measure.tapped_layers(graph)
        self.affine = _affine_modules(graph, self.model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.targets, self.target = targets, target
        self.loss_fn: Loss | None = None
        self.loss_text = ""
        self.loss_spec = opts.loss

    def placed(self, opts: ProbeOptions, device: torch.device) -> nn.Module:
        """The instrumented model, on ``device``: a copy unless ``opts.in_place``."""
        return measure.instrumented(self.graph, self.recorder,
                                    copy=not opts.in_place).to(device).train()

    def summed(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over the processes of the run."""
        return t

    def local(self, t: torch.Tensor) -> torch.Tensor:
        """This process's part of a parameter (or of its gradient)."""
        return t

    def agreed(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any process of the run (so that all take one branch)."""
        return flag

    def forward(self) -> Any:
        return self.model(*self.x)

    def loss(self) -> torch.Tensor:
        """The loss of this process's rows, weighted by their share of the batch (so that
        the losses and gradients of all processes sum to the whole batch's)."""
        out = first_tensor(self.forward())
        if self.loss_fn is None:  # made from the first output: no extra forward pass
            whole = out.detach().new_empty((self.batch, *out.shape[1:]))
            outside = self.agreed(bool(((out < 0) | (out > 1)).any()))
            self.loss_fn, self.loss_text = _loss(whole, self.targets, self.target, self.gen,
                                                 self.loss_spec, not outside,
                                                 self._class_dim(whole))
        share = len(range(self.batch)[self.rows]) / self.batch
        return self.loss_fn(out, self.rows) * share

    def _class_dim(self, out: torch.Tensor) -> int | None:
        """The dimension of ``out`` the last affine layer writes its units to, when it is the
        output's: a Linear's last, a convolution's 1."""
        if not self.affine:
            return None
        last = self.affine[-1][1]
        units, dim = last.shape[0], (-1 if last.dim() == 2 else 1)
        return dim if out.dim() > 2 and out.shape[dim] == units else None

    def late(self, deadline: float, seconds: float) -> bool:
        """Whether work taking ``seconds`` would end past ``deadline``."""
        return self.agreed(time.monotonic() + seconds > deadline)

    def measure(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """Forward and backward on the probe batch: the pass's measurements (the gradients
        stay in .grad for the optimizer step that follows)."""
        self.recorder.reset()
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss()
        total = float(self.summed(loss.detach()))
        finite = math.isfinite(total)
        if finite:
            loss.backward()
        forward, grads = self.recorder.collect()
        weight_grads, weights, grad_norm = {}, {}, None
        if finite:  # one sum across processes for every norm: the affine weights' gradients,
            # the weights themselves (for the rules that weigh weight decay against the
            # gradient) and the total
            zero = torch.zeros((), device=self.x[0].device)
            squares = [self.local(w.grad.detach()).float().square().sum().to(zero.device)
                       if w.grad is not None else zero for _, w in self.affine]
            # in float64: weights of 1e20 and more are finite but their squares overflow float32
            squares += [self.local(w.detach()).double().square().sum().to(zero.device)
                        for _, w in self.affine]
            present = [self.local(p.grad.detach()).float().square().sum().to(zero.device)
                       for p in self.params if p.grad is not None]
            if present:
                squares.append(torch.stack(present).sum())
            if squares:
                norms = self.summed(torch.stack(squares)).sqrt().tolist()
                weight_grads = {name: v for (name, _), v in zip(self.affine, norms)}
                weights = {name: v for (name, _), v in zip(self.affine,
                                                             norms[len(self.affine):])}
                grad_norm = norms[-1] if present else None
        numbers = [*weight_grads.values(), *grads.values(),
                   *(v for stats in forward.values() for v in (stats["mean"], stats["std"]))]
        finite = finite and all(math.isfinite(v) for v in numbers)
        return {"loss": total, "finite": finite, "forward": forward,
                "grads": grads, "weight_grads": weight_grads, "weights": weights,
                "grad_norm": grad_norm}

    def curvature(self, products: int, deadline: float,
                  scale: list[torch.Tensor] | None = None) -> hessian.Eigen:
        """The top eigenvalue of the loss's Hessian H (with ``scale`` s = P^-1/2: of
        P^-1 H) at the current weights, from at most ``products`` Hessian-vector products."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        return hessian.top_eigenvalue(self.loss, params, iterations=products,
                                      deadline=deadline, generator=self.gen, scale=scale)

    def first_nonfinite(self) -> str | None:
        """The key of the first layer whose output overflows on a forward pass."""
        return measure.first_nonfinite(self.graph, self.model, self.x)

    def ratio(self, weight_grads: dict[str, float]) -> float | None:
        if len(self.affine) < 2 or not weight_grads:
            return None
        first, last = weight_grads[self.affine[0][0]], weight_grads[self.affine[-1][0]]
        return first / last if last > 0 else None

    def act_ratio(self, grads: dict[str, float]) -> float | None:
        """RMS gradient at the first affine layer's output over that at the input of the last
        affine layer (the output of the layer feeding it)."""
        if len(self.affine) < 2:
            return None
        first_key = self.graph.find(self.affine[0][0]).key
        last = self.graph.find(self.affine[-1][0])
        feeding = [p.key for p in self.graph.prev(last) if p.key in grads]
        if first_key not in grads or len(feeding) != 1 or not grads[feeding[0]]:
            return None
        return grads[first_key] / grads[feeding[0]]

    def dead(self, forward: dict) -> float | None:
        pairs = [(forward[t.key]["dead"], t.units) for t in self.tapped
                 if "dead" in forward.get(t.key, {})]
        total = sum(u for _, u in pairs)
        return sum(d * u for d, u in pairs) / total if total else None

    @staticmethod
    def correlation(forward: dict) -> float | None:
        values = [s["cosine"] for s in forward.values()
                  if "cosine" in s and not math.isnan(s["cosine"])]
        return sum(values) / len(values) if values else None

    def layer_table(self, step: dict[str, Any]) -> dict[str, dict[str, float]]:
        table = {}
        for t in self.tapped:
            stats = dict(step["forward"].get(t.key, {}))
            if t.key in step["grads"]:
                stats["act_grad"] = step["grads"][t.key]
            if t.key in step["weight_grads"]:  # keyed as _affine_modules names them
                stats["weight_grad"] = step["weight_grads"][t.key]
            if t.key in step["weights"]:
                stats["weight_norm"] = step["weights"][t.key]
            table[t.key] = stats
        return table


def _lr_ceiling(run: _Run, bound: stability.Bound, lr: float, step: int, products: int,
                deadline: float, notes: list[str]) -> tuple[LrCeiling | None, hessian.Eigen | None]:
    """The ceiling ``bound.factor / lambda`` from at most ``products`` Hessian-vector products
    (of P^-1 H with the bound's scales), and the Lanczos iteration's outcome (None when it could
    not run)."""
    run.recorder.enabled = False
    try:
        eig = run.curvature(products, deadline, scale=bound.scales)
    except RuntimeError as exc:  # an op without double backward
        notes.append(f"lr ceiling not estimated: {str(exc).splitlines()[0]}")
        return None, None
    finally:
        run.recorder.enabled = True
    if eig.timed_out:  # a number that depends on where the clock stopped: none at all
        return None, eig
    if not math.isfinite(eig.value):
        notes.append("lr ceiling not estimated: the Hessian-vector products were not finite")
        return None, eig
    if eig.value <= 0:
        notes.append("lr ceiling not estimated: the loss has no positive curvature here")
        return None, eig
    return LrCeiling(lambda_max=eig.value, factor=bound.factor, formula=bound.formula,
                     preconditioned=bound.scales is not None, step=step,
                     iterations=eig.iterations, converged=eig.converged,
                     configured_lr=lr, residual=eig.residual), eig


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc)


def plan_for(graph: ModelGraph, inputs: tuple, opts: ProbeOptions) -> ProbePlan:
    """The probe's plan for ``graph.model`` (see :mod:`.plan`): Hessian-vector products only
    for an optimizer whose step a curvature bound limits (:mod:`.stability`)."""
    return make_plan(graph.model, inputs,
                     batch=probe_batch(inputs, opts.batch, opts.synthetic_inputs),
                     steps=opts.steps,
                     hvps=0 if _optimizer_name(opts.optimizer) in stability.UNBOUNDED
                     else opts.hvps,
                     budget=opts.budget, inferred=opts.inferred_inputs and opts.synthetic_inputs,
                     flop_rate=opts.flop_rate)


def run_probe(graph: ModelGraph, inputs: tuple, targets: Targets | None,
              opts: ProbeOptions) -> ProbeResult:
    """Measure ``graph.model`` (never modified) at initialisation and over the planned
    training steps, within ``opts.budget`` seconds; halves the batch on out-of-memory."""
    device = select_device(opts.device)
    plan, notes = plan_for(graph, inputs, opts), []
    while True:
        try:
            with _cpu_threads(device, graph, plan.batch):
                return _measure(graph, inputs, targets, opts, device, plan, notes)
        except RuntimeError as exc:
            if not _is_oom(exc) or plan.batch <= 2:
                raise
            plan = dataclasses.replace(plan, batch=plan.batch // 2)
            notes.append(f"out of memory on {device}: batch reduced to {plan.batch}")
            if device.type == "cuda":
                torch.cuda.empty_cache()


# Below this many elements in its largest layer output, a step's ops are too small to gain from
# more CPU threads (torch splits work in chunks of 32768, at::internal::GRAIN_SIZE), and spare
# threads spin: a tiny model's probe took 5-10 s with 2 threads and 1.3 s with 1 when another
# process kept the second core busy (2-core machine, measured 2026-11-25).
SMALL_STEP_ELEMENTS = 2 * 32768


@contextlib.contextmanager
def _cpu_threads(device: torch.device, graph: ModelGraph, batch: int) -> Iterator[None]:
    """One CPU thread while probing a model whose layers are small, else torch's setting."""
    largest = max((math.prod(layer.shape[1:]) for layer in graph.layers()
                   if layer.shape), default=0)
    threads = torch.get_num_threads()
    if device.type == "cpu" and largest * batch < SMALL_STEP_ELEMENTS:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _locate_nonfinite(graph: ModelGraph, run: _Run, measured: dict, step: int) -> NonFinite:
    """Where the numbers broke: the first layer whose output overflows on a forward pass
    re-run layer by layer; else the layer nearest the output whose output gradient did (the
    backward pass runs from there); else only the weight gradients."""
    key, where = run.first_nonfinite(), "forward"
    if key is None:
        broken = [t.key for t in run.tapped if not math.isfinite(measured["grads"].get(t.key, 0))]
        key, where = (broken[-1], "backward") if broken else (None, "weight gradients")
    layer = graph.find(key)
    return NonFinite(key, where, layer.module if layer else None,
                     layer.site.line if layer and layer.site else None, step)


def _record(history: list[ProbeStep], run: _Run, step: int, measured: dict) -> None:
    history.append(ProbeStep(step, measured["loss"], run.ratio(measured["weight_grads"]),
                             run.dead(measured["forward"]),
                             run.correlation(measured["forward"]), measured["grad_norm"],
                             measured["weight_grads"].get(run.affine[0][0])
                             if run.affine else None))


def _cut(plan: ProbePlan, steps: int, eig: hessian.Eigen | None, steps_cut: bool,
         notes: list[str]) -> Cut | None:
    """What the clock left short of the plan, with a note; None when it left nothing."""
    short = ((TRAJECTORY,) if steps_cut else ()) + \
        ((LR_CEILING,) if eig is not None and eig.timed_out else ())
    if not short:
        return None
    hvps = eig.iterations if eig is not None else 0
    done = [f"{steps} of {plan.steps} training steps"] if steps_cut else []
    if LR_CEILING in short:
        done.append(f"{hvps} of {plan.hvps} Hessian-vector products (no lr ceiling)")
    why = ("even the smallest plan was over the budget (see the plan)"
           if plan.cost > plan.budget_flops else
           f"this machine ran slower than the {plan.flop_rate:.2g} FLOP/s the plan assumes")
    notes.append(f"the probe budget of {plan.budget:g} s ran out after " + " and ".join(done)
                 + f": {why}, so where the clock stopped it depends on the machine's speed "
                 "and load")
    return Cut(plan.budget, steps, hvps, short)


def _measure(graph: ModelGraph, inputs: tuple, targets: Targets | None, opts: ProbeOptions,
             device: torch.device, plan: ProbePlan, notes: list[str], *,
             make_run: Callable[..., _Run] = _Run) -> ProbeResult:
    start = time.monotonic()
    deadline = start + opts.budget
    run = make_run(graph, inputs, targets, opts, device, plan)
    optimizer, opt_info = _optimizer(opts.optimizer, [p for p in run.model.parameters()
                                                      if p.requires_grad])
    history: list[ProbeStep] = []
    tick = time.monotonic()
    first = last = run.measure(optimizer)  # step 0: the initialisation, which always runs
    step_seconds = time.monotonic() - tick
    _record(history, run, 0, first)
    name, params = opt_info["name"], [p for p in run.model.parameters() if p.requires_grad]
    # the Hessian's planned share of the budget: beside the initialisation's pass for SGD-like
    # optimizers, after the steps for adaptive ones (their preconditioner comes from the steps).
    # Before the steps it leaves them the time they need at the initialisation pass's measured
    # cost, and one pass more (each step's check allows for the step before it, which also
    # updates the weights): where a pass costs more than the plan's FLOPs say (across ranks,
    # where the parameters travel between processes on every pass) the steps run and the
    # Hessian gets fewer products, rather than the steps none.
    share = passes(0, plan.hvps) / passes(plan.steps, plan.hvps) if plan.hvps else 0.0
    steps_deadline = deadline - (share * opts.budget if name in stability.ADAPTIVE else 0.0)
    tail = run.curvature_tail * step_seconds
    ceiling = eig = None
    if name in stability.UNBOUNDED:
        notes.append(f"lr ceiling not estimated: {name} {stability.UNBOUNDED[name]}, so no "
                     "curvature bound limits its lr")
    elif not plan.hvps:
        notes.append("lr ceiling not estimated: the plan has no Hessian-vector products "
                     "(see its reasons)")
    elif name in stability.PLAIN and first["finite"]:
        hessian_deadline = min(start + share * opts.budget,
                               deadline - (plan.steps + 1) * step_seconds) - tail
        if run.late(hessian_deadline, step_seconds):  # not even its gradient fits
            eig = hessian.Eigen(math.nan, 0, False, timed_out=True)
        else:
            bound = stability.plain(name, opt_info["momentum"] or 0.0, opt_info["args"])
            ceiling, eig = _lr_ceiling(run, bound, opt_info["lr"], 0, plan.hvps,
                                       hessian_deadline, notes)
    nonfinite, steps_cut = None, False
    for step in range(1, plan.steps + 1):
        if not last["finite"]:
            break
        if run.late(steps_deadline, step_seconds):
            steps_cut = True
            break
        optimizer.step()  # with the gradients of the previous measurement
        tick = time.monotonic()
        last = run.measure(optimizer)
        step_seconds = time.monotonic() - tick
        _record(history, run, step, last)
    if name in stability.ADAPTIVE and plan.hvps and last["finite"]:
        bound = stability.adaptive(name, optimizer, params)
        if bound is None:
            notes.append(f"lr ceiling not estimated: {name}'s step is preconditioned by its "
                         "state, which the probe's steps build, and it took none")
        elif run.late(deadline, step_seconds):
            eig = hessian.Eigen(math.nan, 0, False, timed_out=True)
        else:
            ceiling, eig = _lr_ceiling(run, bound, opt_info["lr"], len(history) - 1,
                                       plan.hvps, deadline - tail, notes)
    if not last["finite"]:
        run.recorder.enabled = False
        nonfinite = _locate_nonfinite(graph, run, last, history[-1].step)
    cut = _cut(plan, len(history) - 1, eig, steps_cut, notes)
    init_table, final_table = run.layer_table(first), run.layer_table(last)
    layers = tuple(LayerStats(t.key, t.module, t.kind, t.units, init_table[t.key],
                              final_table[t.key]) for t in run.tapped)
    return ProbeResult(
        device=str(device), batch=run.batch, steps=len(history) - 1,
        seconds=round(time.monotonic() - start, 3), grad_ratio=history[0].grad_ratio,
        act_grad_ratio=run.act_ratio(first["grads"]),
        dead_fraction=history[0].dead_fraction, nan=nonfinite is not None,
        first_nonfinite=nonfinite, layers=layers, history=tuple(history), lr_ceiling=ceiling,
        loss=run.loss_text, optimizer=opt_info,
        first_module=run.affine[0][0] if run.affine else None,
        last_module=run.affine[-1][0] if run.affine else None, notes=tuple(notes), plan=plan,
        cut=cut, ranks=run.world)
