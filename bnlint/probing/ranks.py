"""The probe across ranks (torch.distributed, FSDP2), for models larger than one device: each
rank holds an FSDP2 shard of the model (:mod:`.sharding`) and its rows of the probe batch, and
runs the single-process probe's code (:class:`.run._Run`, :func:`.run._measure`) with three
operations that reduce across the ranks: sums (all-reduce), a rank's part of a parameter, and
agreement on a branch. What the probe measures are sums over samples and parameters
(:mod:`.taps`, the gradient norms, the loss), so the reduced numbers are the whole batch's:
the result equals the single-process probe's up to the order of floating-point sums.

BatchNorm normalises with the statistics of the whole batch (their sums all-reduced, with
gradients, as SyncBatchNorm does; torch's SyncBatchNorm runs on GPUs only). The lr ceiling
comes from central differences of two ordinary backward passes, since double backward fails on
FSDP2's sharded parameters (docs/SCIENCE.md section 7).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.tensor import DTensor
from torch.overrides import TorchFunctionMode

from ..discover.targets import Targets
from ..errors import InputError
from ..measurement import ProbePlan, ProbeResult
from ..model.graph import ModelGraph
from ..model.meta import Build, rows
from . import hessian, sharding
from . import taps as measure
from .run import ProbeOptions, _cpu_threads, _measure, _Run, plan_for

# The longest finite-difference step (hessian.central_difference shortens it where the
# curvature is high), relative to 1 + ||theta|| for a unit direction: where truncation (O(h^2))
# and float32 rounding (O(eps/h)) balance on a random direction. On a conv-BN-ReLU6-maxpool-
# residual net with the pieces held (hessian.Kinks), ||Hv - exact|| / ||Hv|| was 1.1e-3 at
# 1e-2, 1.4e-4 at 1e-3 and 1.3e-3 at 1e-4 (tests/test_distributed.py checks it).
FD_STEP = 1e-3


@dataclass
class Ranks:
    """This process's place in the default process group, and the FSDP mesh over it."""
    rank: int
    world: int
    device: torch.device
    mesh: DeviceMesh

    @classmethod
    def joined(cls, device: torch.device) -> Ranks:
        """The ranks of the initialised default process group, computing on ``device``."""
        world = dist.get_world_size()
        return cls(dist.get_rank(), world, device, init_device_mesh(device.type, (world,)))

    def sum(self, t: torch.Tensor) -> None:
        dist.all_reduce(t)

    def max(self, t: torch.Tensor) -> None:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)


class _Summed(torch.autograd.Function):
    """All-reduce (sum) with its gradient: the gradient of every rank's input is the sum of
    the ranks' output gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(TorchFunctionMode):
    """While active, ``F.batch_norm`` in training mode (so every BatchNorm layer) uses the
    statistics of the whole batch across the ranks, and its gradient flows through them."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.batch_norm:
            return _batch_norm(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


def _batch_norm(x: torch.Tensor, running_mean: torch.Tensor | None,
                running_var: torch.Tensor | None, weight: torch.Tensor | None = None,
                bias: torch.Tensor | None = None, training: bool = False,
                momentum: float = 0.1, eps: float = 1e-5) -> torch.Tensor:
    """``F.batch_norm`` with batch statistics summed (float64) over the ranks."""
    if not training and running_mean is not None:
        return F.batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps)
    dims = [0, *range(2, x.dim())]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    count = x.new_full((1,), x.numel() // x.shape[1], dtype=torch.float64)
    sums = _Summed.apply(torch.cat([x.sum(dims, dtype=torch.float64), count]))
    n = sums[-1]
    mean = (sums[:-1] / n).to(x.dtype)
    centred = x - mean.view(shape)
    var = _Summed.apply((centred * centred).sum(dims, dtype=torch.float64)) / n
    y = centred * torch.rsqrt(var + eps).to(x.dtype).view(shape)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            unbiased = (var.detach() * n / (n - 1).clamp_min(1)).to(x.dtype)
            running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
    return y


class ShardedRun(_Run):
    """A probe run on one rank: the instrumented model sharded with FSDP2 and materialised
    from the meta device, this rank's rows of the batch, and the reductions across ranks."""

    curvature_tail = 1  # curvature() computes the gradients again after its last product

    def __init__(self, graph: ModelGraph, inputs: tuple, targets: Targets | None,
                 opts: ProbeOptions, device: torch.device, plan: ProbePlan, *, ranks: Ranks,
                 built: Build, buffers: dict[str, torch.Tensor], seed: int, notes: list[str]):
        self.ranks, self.world = ranks, ranks.world
        self.built, self.buffers, self.seed, self.notes = built, buffers, seed, notes
        super().__init__(graph, inputs, targets, opts, device, plan)

    @property
    def rows(self) -> slice:
        r, w = self.ranks.rank, self.world
        return slice(r * self.batch // w, (r + 1) * self.batch // w)

    def reduce(self, sums: torch.Tensor, maxima: torch.Tensor | None) -> None:
        self.ranks.sum(sums)
        if maxima is not None:
            self.ranks.max(maxima)

    def placed(self, opts: ProbeOptions, device: torch.device) -> nn.Module:
        originals = dict(self.graph.model.named_parameters(remove_duplicate=False))
        model = measure.instrumented(self.graph, self.recorder, copy=False)
        units = sharding.shard(self.graph, model, self.ranks.mesh)
        sharding.materialise(model, originals, self.built.rows, self.buffers, device)
        self.built.rows.clear()  # they are in the shards now
        rows = self.batch // self.world
        self.notes.append(
            f"probed on {self.world} ranks ({dist.get_backend()}), each with about {rows} of "
            f"the {self.batch} samples and 1/{self.world} of the parameters, gradients and "
            f"optimizer state (FSDP2, {units} units); built on the meta device with the values "
            f"its constructor gives from seed {self.seed}")
        odd = {name: self.built.unreproduced[id(p)] for name, p in originals.items()
               if id(p) in self.built.unreproduced}
        if odd:
            shown = ", ".join(f"{name} ({how})" for name, how in list(odd.items())[:5])
            self.notes.append(
                f"the constructor's init of {len(odd)} parameter(s) could not be reproduced "
                f"across ranks, by an in-place write that reads other ranks' rows: "
                f"{shown}{', ...' if len(odd) > 5 else ''}; the probe measured them with "
                f"the values before that write, not the model's")
        return model.train()

    def summed(self, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        self.ranks.sum(t)
        return t

    def local(self, t: torch.Tensor) -> torch.Tensor:
        return t.to_local() if isinstance(t, DTensor) else t

    def agreed(self, flag: bool) -> bool:
        t = torch.tensor([float(flag)], device=self.ranks.device)
        self.ranks.max(t)
        return bool(t.item())

    def forward(self) -> Any:
        with GlobalBatchNorm():
            return super().forward()

    def curvature(self, products: int, deadline: float,
                  scale: list[torch.Tensor] | None = None) -> hessian.Eigen:
        """The top Hessian eigenvalue by Lanczos on central differences of gradients, from at
        most ``products`` of them. The weights and buffers are as they were afterwards, and
        the gradients too: computed again rather than kept, so that at most five shards of the
        model are held at once (weights, their copy, and three Lanczos vectors, one of them
        the gradient buffer that each product accumulates into)."""
        if scale is not None:
            raise RuntimeError("the preconditioned sharpness is not estimated across processes")
        params = [p for p in self.model.parameters() if p.requires_grad]
        shards = [self.local(p).detach() for p in params]
        buffers = [b.clone() for b in self.model.buffers()]
        dot = self._dot
        norm = math.sqrt(float(dot(shards, shards)))
        kinks = hessian.Kinks()
        with torch.no_grad(), kinks.recording():
            self.loss()

        def backward(sign: float) -> None:  # FSDP adds it to the gradient already there
            with kinks.replaying():
                loss = self.loss()
            (loss * sign).backward()

        def taken() -> list[torch.Tensor]:
            grads = [torch.zeros_like(s) if p.grad is None else self.local(p.grad)
                     for p, s in zip(params, shards)]
            for p in params:
                p.grad = None
            return grads

        try:
            taken()
            tick = time.monotonic()
            hvp = hessian.central_difference(backward, taken, shards, dot, FD_STEP * (1 + norm))
            cost = 2 * (time.monotonic() - tick)  # a product is two gradients like its first
            # drawn whole, one parameter at a time: one process's start vector; its rows
            # copied, so that the whole draw is freed (Lanczos keeps this vector)
            first = [rows(torch.randn(p.shape, generator=self.gen), self.ranks.rank,
                          self.world).to(s.device, s.dtype, copy=True)
                     for p, s in zip(params, shards)]
            return hessian.lanczos(hvp, first, iterations=products, dot=dot, first_cost=cost,
                                   late=functools.partial(self.late, deadline))
        finally:
            taken()
            self.loss().backward()  # the gradients the next training step takes
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), buffers):
                    b.copy_(saved)

    def _dot(self, a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        local = sum(((x * y).sum(dtype=torch.float64) for x, y in zip(a, b)),
                    torch.zeros((), dtype=torch.float64, device=self.ranks.device))
        return self.summed(local)

    def first_nonfinite(self) -> str | None:
        """The first layer, in the graph's order, whose output overflows on any rank."""
        self.model.unshard()  # the root unit's parameters, which the forward reads directly
        try:
            with GlobalBatchNorm():
                key = measure.first_nonfinite(self.graph, self.model, self.x)
        finally:
            self.model.reshard()
        order = {layer.key: i for i, layer in reversed(list(enumerate(self.graph.order)))}
        first = torch.tensor([order.get(key, len(order))], device=self.ranks.device)
        dist.all_reduce(first, op=dist.ReduceOp.MIN)
        index = int(first.item())
        return self.graph.order[index].key if index < len(order) else None


def probe(graph: ModelGraph, inputs: tuple, targets: Targets | None, opts: ProbeOptions,
          ranks: Ranks, built: Build, buffers: dict[str, torch.Tensor],
          seed: int) -> ProbeResult:
    """The probe of ``graph.model`` (on the meta device; this rank's rows of its parameters
    and what could not be reproduced of them in ``built``, its buffers by name in
    ``buffers``) across the ranks of the default process group; ``seed`` is the one the model
    was built from. Every rank returns the same result."""
    plan = plan_for(graph, inputs, opts)
    if plan.batch < ranks.world:
        raise InputError(f"the probe's batch of {plan.batch} samples cannot be split over "
                         f"{ranks.world} ranks.",
                         hint="Give a larger --probe-batch (or more example inputs), or fewer "
                              "ranks.")
    notes: list[str] = []
    make_run = functools.partial(ShardedRun, ranks=ranks, built=built, buffers=buffers,
                                 seed=seed, notes=notes)
    with _cpu_threads(ranks.device, graph, plan.batch // ranks.world):
        return _measure(graph, inputs, targets, opts, ranks.device, plan, notes,
                        make_run=make_run)
