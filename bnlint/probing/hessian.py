"""The top Hessian eigenvalue of a loss by power iteration with Hessian-vector products.

For gradient descent on a quadratic with curvature lambda_max, steps are stable only while
lr < 2 / lambda_max (with heavy-ball momentum beta: lr < 2 (1 + beta) / lambda_max); see e.g.
Cohen et al., arXiv:2103.00065, on training at the edge of stability.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Eigen:
    value: float        # the largest (algebraic) eigenvalue found; NaN when none was
    iterations: int     # Hessian-vector products done
    converged: bool
    timed_out: bool = False  # the deadline stopped it before convergence or the cap


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def _normalise(v: list[torch.Tensor]) -> list[torch.Tensor]:
    norm = _dot(v, v).sqrt().clamp_min(1e-30)
    return [x / norm for x in v]


def top_eigenvalue(loss_fn: Callable[[], torch.Tensor], params: list[torch.Tensor], *,
                   iterations: int = 30, tol: float = 0.05, deadline: float | None = None,
                   generator: torch.Generator | None = None) -> Eigen:
    """Power iteration on the Hessian of ``loss_fn()`` w.r.t. ``params``, with at most
    ``iterations`` Hessian-vector products in all. If the dominant eigenvalue is negative, a
    shifted iteration on H - lambda I (with the products left) finds the largest one.
    Converged when the eigen-residual ||Hv - lambda v|| is below ``tol`` |lambda| (a plateau of
    the Rayleigh quotient alone is not enough: it can sit on a small value for a few steps).
    ``deadline`` (time.monotonic) is a safety stop only: no product starts once the one before
    it says it would end past it."""
    start = time.monotonic()
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    used = [(p, g) for p, g in zip(params, grads) if g is not None and g.requires_grad]
    params, grads = [p for p, _ in used], [g for _, g in used]
    if not params:  # the loss is linear in every parameter: its Hessian is zero
        return Eigen(0.0, 0, True)

    def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
        out = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True,
                                  allow_unused=True)
        return [torch.zeros_like(x) if h is None else h for h, x in zip(out, v)]

    cost = [time.monotonic() - start]  # seconds per product, first guessed from the gradient

    def iterate(shift: float, cap: int) -> Eigen:
        v = _normalise([torch.randn(p.shape, generator=generator, device="cpu")
                        .to(p.device, p.dtype) for p in params])
        value, done = math.nan, 0
        while done < cap:
            if deadline is not None and time.monotonic() + cost[0] > deadline:
                return Eigen(value + shift, done, False, timed_out=True)
            tick = time.monotonic()
            hv = [h - shift * x for h, x in zip(hvp(v), v)]
            cost[0] = time.monotonic() - tick
            value = float(_dot(v, hv))
            r = [h - value * x for h, x in zip(hv, v)]
            residual = float(_dot(r, r).sqrt())
            v = _normalise(hv)
            done += 1
            if residual <= tol * max(abs(value + shift), 1e-12):  # relative to H's eigenvalue
                return Eigen(value + shift, done, True)
        return Eigen(value + shift, done, False)

    dominant = iterate(0.0, iterations)
    if not dominant.value < 0 or dominant.timed_out:  # NaN (no product), >= 0, or cut
        return dominant
    # The eigenvalues of H - lambda I are >= 0; its top one gives the largest of H.
    shifted = iterate(dominant.value, iterations - dominant.iterations)
    return Eigen(shifted.value, dominant.iterations + shifted.iterations, shifted.converged,
                 shifted.timed_out)
