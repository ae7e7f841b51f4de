"""The probe's plan, made before it runs and without reading the clock: the batch, the resolution
of inferred image inputs, the training steps and the Hessian-vector products, chosen from the
model's cost against a FLOP budget (``--probe-budget`` seconds at the fixed rate
``config.PROBE_FLOP_RATE``). The same model gets the same plan on any machine and under any
load, so the probe measures the same thing; the clock only stops a run that a much slower
machine cannot finish (bnlint/probing/run.py).

The cost is counted on the meta device (no arithmetic, no memory; docs/SCIENCE.md §7): one
forward+backward's FLOPs (``torch.utils.flop_counter.FlopCounterMode``), the torch ops it
dispatches and the bytes of the forward's new tensors. A model that cannot run on the meta
device (data-dependent control flow) is counted the same way on its example inputs.

The rule: the full plan (``steps`` training steps after the measurement at initialisation and,
for SGD, ``hvps`` Hessian-vector products) at the largest batch, halving from the requested one
down to ``PROBE_MIN_BATCH``, and for each batch the largest resolution of inferred image inputs,
halving down to ``PROBE_MIN_RESOLUTION``, whose cost fits the budget (and whose activations fit
``PROBE_MEMORY``). When none does, the smallest batch and resolution get the passes the
budget allows, ``HESSIAN_SHARE`` of them (or all the steps leave) to the Hessian (none when
fewer than ``MIN_HVPS`` products fit) and the rest to steps (at least one), and the plan takes
the largest batch and resolution that fit as many steps and products (a model whose cost is
its ops' overhead, not its arithmetic, keeps its batch).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from .. import config as defaults
from ..errors import FORWARD_FAILED, InputError, UserCodeError
from ..measurement import ProbePlan
from ..model.sandbox import functional_forward, meta_state

# A Hessian-vector product by double backward counts this many times the FLOPs of one
# forward+backward (FlopCounterMode on the meta device: 2.02 for ResNet-20 at batch 64, 2.09 for
# ResNet-50 at 32 and 224 px, 1.91 for an 8x1024 BN-ReLU MLP; torch 2.13).
HVP_COST = 2.1
HESSIAN_SHARE = 0.3  # of the passes a budget allows, when it cannot hold the full plan
MIN_HVPS = 5         # fewer rarely converge (Lanczos took 4-18: docs/SCIENCE.md §7)


@dataclasses.dataclass(frozen=True)
class Cost:
    """One forward+backward: FLOPs and the forward's new tensors (bytes) per sample, and the
    torch ops it dispatches."""
    flops: float
    bytes: float
    ops: int


class _Census(TorchDispatchMode):
    """Counts the ops dispatched and, while ``forward`` is set, the bytes of the new tensors
    they return (views and in-place results share memory and are left out)."""

    def __init__(self):
        super().__init__()
        self.ops, self.bytes, self.forward = 0, 0, True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        if self.forward and not func.is_view and not any(
                a.alias_info is not None and a.alias_info.is_write
                for a in func._schema.arguments):
            self.bytes += sum(t.numel() * t.element_size()
                              for t in torch.utils._pytree.tree_leaves(out)
                              if isinstance(t, torch.Tensor))
        return out


def first_tensor(value: Any) -> torch.Tensor:
    """The first tensor of a model's output (the one the probe trains on); an output without
    one is a problem of the model (the engine locates it at its forward)."""
    found: list[torch.Tensor] = []
    torch.utils._pytree.tree_map(
        lambda v: found.append(v) if isinstance(v, torch.Tensor) and not found else None, value)
    if not found:
        raise UserCodeError(
            FORWARD_FAILED, f"the model's output ({type(value).__name__}) holds no tensor, so "
            "the probe has nothing to train; the static rules ran.",
            hint="Return the output tensor from forward, or run with --no-probe for the "
                 "static checks only.")
    return found[0]


def _count(model: nn.Module, state: dict[str, torch.Tensor], inputs: tuple) -> Cost:
    flops, census = FlopCounterMode(display=False), _Census()
    was_training = model.training
    model.train()
    try:
        with torch.enable_grad(), flops, census:
            out = first_tensor(functional_forward(model, state, inputs))
            census.forward = False
            if out.requires_grad:
                out.float().sum().backward()
    finally:
        model.train(was_training)
    n = max(inputs[0].shape[0], 1) if inputs[0].dim() else 1
    return Cost(flops.get_total_flops() / n, census.bytes / n, census.ops)


def _meta_cost(model: nn.Module, inputs: tuple) -> Cost:
    """The cost on the meta device: shapes only, no arithmetic and no memory."""
    return _count(model, meta_state(model),
                  tuple(torch.empty_like(x, device="meta") for x in inputs))


def _real_cost(model: nn.Module, inputs: tuple) -> Cost:
    """The cost counted by running the example inputs, on detached weights and copied buffers
    (the model keeps its gradients and BatchNorm statistics)."""
    state = {name: p.detach().requires_grad_(p.requires_grad)
             for name, p in model.named_parameters()}
    state.update({name: b.clone() for name, b in model.named_buffers()})
    return _count(model, state, inputs)


def resolutions(inputs: tuple, inferred: bool) -> list[tuple[int, ...] | None]:
    """The spatial sizes the plan may give the inputs, largest first: halvings of inferred
    image inputs (one floating tensor of shape batch, channels, *spatial) down to
    ``PROBE_MIN_RESOLUTION``; [None] (the inputs as given) otherwise."""
    x = inputs[0]
    if not (inferred and len(inputs) == 1 and x.is_floating_point() and x.dim() >= 3):
        return [None]
    sizes = [tuple(x.shape[2:])]
    while all(s // 2 >= defaults.PROBE_MIN_RESOLUTION for s in sizes[-1]):
        sizes.append(tuple(s // 2 for s in sizes[-1]))
    return sizes


def resized(inputs: tuple, resolution: tuple[int, ...] | None) -> tuple:
    """Zeros shaped like ``inputs`` at ``resolution`` (None, or their own size: the inputs
    themselves); the probe draws its random batch in their shape."""
    if resolution is None or tuple(inputs[0].shape[2:]) == resolution:
        return inputs
    x = inputs[0]
    return (torch.zeros((x.shape[0], x.shape[1], *resolution), dtype=x.dtype, device=x.device),)


def batches(requested: int) -> list[int]:
    """The batches the plan may use, largest first: halvings down to ``PROBE_MIN_BATCH``."""
    out = [requested]
    while out[-1] // 2 >= defaults.PROBE_MIN_BATCH:
        out.append(out[-1] // 2)
    return out


def passes(steps: int, hvps: int) -> float:
    """Forward+backward passes of a plan: the measurement at initialisation and each step; the
    Hessian's gradient (with its graph) and each product."""
    return 1 + steps + (1 + HVP_COST * hvps if hvps else 0)


def _cost(model: nn.Module, inputs: tuple, resolution: tuple[int, ...] | None) -> Cost | None:
    """The cost at ``resolution``: on the meta device, else (at the inputs' own size only) on
    the example inputs; None for a lowered resolution the model cannot take."""
    shaped = resized(inputs, resolution)
    try:
        return _meta_cost(model, shaped)
    except InputError:
        raise
    except Exception:  # noqa: BLE001 - e.g. data-dependent control flow, or a size it rejects
        if shaped is not inputs:
            return None
    return _real_cost(model, inputs)


def make_plan(model: nn.Module, inputs: tuple, *, batch: int, steps: int, hvps: int,
              budget: float, inferred: bool, flop_rate: float = defaults.PROBE_FLOP_RATE
              ) -> ProbePlan:
    """The probe's plan for ``model`` on ``inputs`` (see the module docstring). ``batch`` is
    the batch asked for (already capped at the samples real inputs have), ``hvps`` 0 when no
    lr ceiling is wanted, ``inferred`` whether the inputs were inferred (only then may their
    resolution be lowered)."""
    budget_flops = budget * flop_rate
    sizes = resolutions(inputs, inferred)
    costs: dict[tuple[int, ...] | None, Cost | None] = {}

    def cost_at(size: tuple[int, ...] | None) -> Cost | None:
        if size not in costs:
            costs[size] = _cost(model, inputs, size)
        return costs[size]

    def unit(b: int, c: Cost) -> float:
        """One forward+backward at batch ``b``, each op's overhead included, in FLOPs."""
        return b * c.flops + c.ops * defaults.PROBE_OP_FLOPS

    def shared(b: int, c: Cost) -> tuple[int, int]:
        """Steps and products when the budget holds fewer passes than the full plan."""
        allowed = budget_flops / unit(b, c)
        room = max(HESSIAN_SHARE * allowed, allowed - passes(steps, 0))  # the Hessian's passes
        h = min(hvps, math.floor((room - 1) / HVP_COST)) if hvps else 0
        h = h if h >= MIN_HVPS else 0
        return (min(steps, max(1, math.floor(allowed - passes(0, h)) - 1)) if steps else 0), h

    def candidates() -> Iterator[tuple[int, tuple[int, ...] | None, Cost]]:
        """(batch, size, cost) from the largest; the sizes are counted when first reached."""
        for b in batches(batch):
            for size in sizes:
                c = cost_at(size)
                if c is not None and b * c.bytes <= defaults.PROBE_MEMORY:
                    yield b, size, c

    full = passes(steps, hvps)
    s, h = steps, hvps
    fit = next(((b, size) for b, size, c in candidates()
                if full * unit(b, c) <= budget_flops), None)
    if fit is not None:
        b, size = fit
    else:  # what the smallest allows, at the largest that allows as much
        every = list(candidates()) or [(batches(batch)[-1], sizes[0], cost_at(sizes[0]))]
        s, h = shared(every[-1][0], every[-1][2])
        b, size, _ = next((x for x in every if shared(x[0], x[2]) == (s, h)
                           and passes(s, h) * unit(x[0], x[2]) <= budget_flops), every[-1])
    c = cost_at(size)
    reasons = _lowered(batch, b, sizes[0], size, full, cost_at(sizes[0]), budget_flops)
    if (s, h) != (steps, hvps):
        reasons.append(
            f"at batch {b}, {_count_of(steps, 'step')} and "
            f"{_count_of(hvps, 'Hessian-vector product')} still cost {full * unit(b, c):.2g} "
            f"FLOPs: {_count_of(s, 'step')} and {_count_of(h, 'product')} planned"
            + ("" if passes(s, h) * unit(b, c) <= budget_flops else
               " (still over the budget, so the clock may stop it)"))
    n = passes(s, h)
    return ProbePlan(batch=b, requested_batch=batch, resolution=size, steps=s, hvps=h,
                     flops_per_sample=c.flops, ops=c.ops, activation_bytes=b * c.bytes,
                     flops=n * b * c.flops, cost=n * unit(b, c), budget_flops=budget_flops,
                     budget=budget, flop_rate=flop_rate, reasons=tuple(reasons))


def _lowered(batch: int, b: int, size0: tuple[int, ...] | None, size: tuple[int, ...] | None,
             full: float, cost0: Cost, budget_flops: float) -> list[str]:
    """Why the plan lowered the batch or the resolution, if it did."""
    if b == batch and size == size0:
        return []
    changes = [f"inferred inputs {_px(size0)} -> {_px(size)}"] if size != size0 else []
    if b != batch:
        changes.append(f"batch {batch} -> {b}")
    need = full * (batch * cost0.flops + cost0.ops * defaults.PROBE_OP_FLOPS)
    why = (f"the full plan ({full:.3g} forward+backward passes) costs {need:.2g} FLOPs at "
           f"batch {batch}, over the budget's {budget_flops:.2g}")
    if batch * cost0.bytes > defaults.PROBE_MEMORY:
        why += (f", and needs {batch * cost0.bytes / 2**30:.3g} GiB of activations, over "
                f"{defaults.PROBE_MEMORY / 2**30:g} GiB")
    return [", ".join(changes) + ": " + why]


def _count_of(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _px(size: tuple[int, ...] | None) -> str:
    return "x".join(map(str, size)) if size else "as given"
