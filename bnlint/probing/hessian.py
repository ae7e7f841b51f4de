"""The top Hessian eigenvalue of a loss by the Lanczos method with Hessian-vector products:
exact ones by double backward, or central differences of two ordinary gradients where double
backward is not available (the probe across ranks, :mod:`.ranks`).

For gradient descent on a quadratic with curvature lambda_max, steps are stable only while
lr < 2 / lambda_max (with heavy-ball momentum beta: lr < 2 (1 + beta) / lambda_max); see e.g.
Cohen et al., arXiv:2103.00065, on training at the edge of stability.

Lanczos finds the largest *algebraic* eigenvalue directly, also when the one of largest
magnitude is negative, and in fewer products than power iteration: 4 to 18 against 5 to 38 on
seven small models (docs/SCIENCE.md §7). It keeps three vectors (no reorthogonalisation: lost
orthogonality only repeats converged eigenvalues, it does not move the largest).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

Vector = list[torch.Tensor]


@dataclass
class Eigen:
    value: float        # the largest (algebraic) eigenvalue found; NaN when none was
    iterations: int     # Hessian-vector products done
    converged: bool
    timed_out: bool = False  # the deadline stopped it before convergence or the cap
    residual: float = 0.0    # ||Hx - value x|| of the last Ritz pair (an eigenvalue lies within
    #                          value +- residual; the largest is at least value)


def _dot(a: Vector, b: Vector) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def _by_deadline(deadline: float | None) -> Callable[[float], bool]:
    return lambda seconds: deadline is not None and time.monotonic() + seconds > deadline


def top_eigenvalue(loss_fn: Callable[[], torch.Tensor], params: Vector, *,
                   iterations: int = 30, tol: float = 0.05, deadline: float | None = None,
                   generator: torch.Generator | None = None,
                   scale: Vector | None = None) -> Eigen:
    """The largest eigenvalue of the Hessian H of ``loss_fn()`` w.r.t. ``params``, by
    :func:`lanczos` with exact Hessian-vector products by double backward, from a random
    start drawn with ``generator``. ``deadline`` (time.monotonic) is a safety stop only: no
    product starts once the one before it says it would end past it.

    With ``scale`` (one tensor per parameter, s = P^-1/2 for a diagonal preconditioner P), the
    largest eigenvalue of S H S, S = diag(s): the *preconditioned* sharpness, since S H S and
    P^-1 H = S^2 H have the same eigenvalues. A zero in s leaves that coordinate out.

    ``F.scaled_dot_product_attention`` runs its math kernel here: the fused ones (flash,
    memory-efficient) have no double backward."""
    with sdpa_kernel(SDPBackend.MATH):
        return _top_eigenvalue(loss_fn, params, iterations=iterations, tol=tol,
                               deadline=deadline, generator=generator, scale=scale)


def _top_eigenvalue(loss_fn: Callable[[], torch.Tensor], params: Vector, *, iterations: int,
                    tol: float, deadline: float | None, generator: torch.Generator | None,
                    scale: Vector | None) -> Eigen:
    start = time.monotonic()
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    used = [(p, g, s) for p, g, s in zip(params, grads, scale or [None] * len(params))
            if g is not None and g.requires_grad]
    params, grads = [p for p, _, _ in used], [g for _, g, _ in used]
    scales = [s for _, _, s in used] if scale is not None else None
    if not params:  # the loss is linear in every parameter: its Hessian is zero
        return Eigen(0.0, 0, True)

    def hvp(v: Vector) -> Vector:
        if scales is not None:
            v = [x * s for x, s in zip(v, scales)]
        out = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True,
                                  allow_unused=True)
        out = [torch.zeros_like(x) if h is None else h for h, x in zip(out, v)]
        return out if scales is None else [h * s for h, s in zip(out, scales)]

    first = [torch.randn(p.shape, generator=generator, device="cpu").to(p.device, p.dtype)
             for p in params]
    if scales is not None:  # start in the coordinates the preconditioner keeps
        first = [x * (s != 0) for x, s in zip(first, scales)]
    return lanczos(hvp, first, iterations=iterations, tol=tol, late=_by_deadline(deadline),
                   first_cost=time.monotonic() - start)


def lanczos(hvp: Callable[[Vector], Vector], first: Vector, *, late: Callable[[float], bool],
            first_cost: float, iterations: int = 30, tol: float = 0.05,
            dot: Callable[[Vector, Vector], torch.Tensor] = _dot) -> Eigen:
    """The largest (algebraic) eigenvalue of the symmetric operator ``hvp`` by Lanczos from
    the vector ``first``, with at most ``iterations`` products. Converged when the Ritz pair's
    residual ||Hx - theta x|| (|beta_k y_k| in Lanczos) is below ``tol`` |theta|. ``dot`` is
    the inner product (a sum across processes for vectors sharded over them, so that every
    process computes the same scalars and takes the same branches); ``late(s)`` says whether
    a product taking ``s`` seconds (the last one's time, first ``first_cost``) would end past
    the deadline: it stops before such a product (``timed_out``). ``first`` is normalised in
    place and ``hvp``'s output made the next vector in place, so three vectors are held at
    once (the one ``hvp`` returns among them)."""
    cost = first_cost
    v = first  # normalised in place: no second copy
    norm = max(float(dot(v, v).sqrt()), 1e-30)
    for x in v:
        x.div_(norm)
    previous: Vector | None = None
    alphas: list[float] = []
    betas: list[float] = []
    theta, residual = math.nan, math.inf
    for done in range(iterations):
        if late(cost):
            return Eigen(theta, done, False, timed_out=True, residual=residual)
        tick = time.monotonic()
        w = hvp(v)
        cost = time.monotonic() - tick
        alpha = float(dot(w, v))
        for wi, vi in zip(w, v):
            wi.sub_(vi, alpha=alpha)
        if previous is not None:
            for wi, pi in zip(w, previous):
                wi.sub_(pi, alpha=betas[-1])
        beta = float(dot(w, w).sqrt())
        alphas.append(alpha)
        if not (math.isfinite(alpha) and math.isfinite(beta)):
            return Eigen(math.nan, done + 1, False)
        theta, last = _top_ritz(alphas, betas)
        residual = abs(beta * last)
        if residual <= tol * max(abs(theta), 1e-12) or beta <= 1e-30:
            return Eigen(theta, done + 1, True, residual=residual)
        betas.append(beta)
        for wi in w:
            wi.div_(beta)
        previous, v = v, w
    return Eigen(theta, iterations, False, residual=residual)


def _top_ritz(alphas: list[float], betas: list[float]) -> tuple[float, float]:
    """The largest eigenvalue of the Lanczos tridiagonal matrix and the last component of its
    eigenvector."""
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    for i, b in enumerate(betas):
        t[i, i + 1] = t[i + 1, i] = b
    values, vectors = torch.linalg.eigh(t)
    return float(values[-1]), float(vectors[-1, -1])


class Kinks(TorchFunctionMode):
    """The pieces of the piecewise-linear ops (ReLU, leaky ReLU, hardtanh/ReLU6, max-pooling)
    as one forward pass found them, for later passes to stay on: inside :meth:`recording` each
    such call records its slope and offset at its input (max-pooling, which element it chose);
    inside :meth:`replaying` the same calls, in the same order, compute ``slope * x + offset``
    (take the recorded element). Differences of gradients then see the Hessian that double
    backward computes, which holds each unit on its piece: a ReLU that changes sides between
    the two points otherwise adds its jump over 2h, and in float32 no step is both small enough
    to cross none and large enough to beat rounding (docs/SCIENCE.md section 7)."""

    # each function, and the same without writing into its input
    _ELEMENTWISE: ClassVar[dict] = {
        F.relu: F.relu, torch.relu: torch.relu, torch.Tensor.relu: torch.relu,
        F.relu_: torch.relu, torch.relu_: torch.relu, torch.Tensor.relu_: torch.relu,
        F.leaky_relu: F.leaky_relu, F.leaky_relu_: F.leaky_relu, F.hardtanh: F.hardtanh,
        F.hardtanh_: F.hardtanh, F.relu6: F.relu6}
    _INPLACE: ClassVar[frozenset] = frozenset({F.relu_, torch.relu_, torch.Tensor.relu_,
                                               F.leaky_relu_, F.hardtanh_})
    _POOLS: ClassVar[dict] = {F.max_pool1d: (F.max_pool1d_with_indices, 1),
                              F.max_pool2d: (F.max_pool2d_with_indices, 2),
                              F.max_pool3d: (F.max_pool3d_with_indices, 3)}

    def __init__(self):
        super().__init__()
        self.pieces: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.replay: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        self.pieces, self.replay = [], None
        with self:
            yield

    @contextlib.contextmanager
    def replaying(self) -> Iterator[None]:
        self.replay = iter(self.pieces)
        with self:
            yield

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._POOLS:
            return self._pool(func, args, kwargs)
        if func not in self._ELEMENTWISE:
            return func(*args, **kwargs)
        inplace = func in self._INPLACE or bool(kwargs.pop("inplace", False)) or (
            len(args) > 1 and args[-1] is True)
        if len(args) > 1 and args[-1] is True:
            args = args[:-1]
        x = args[0]
        if self.replay is not None:
            slope, offset = next(self.replay)
            y = x * slope + offset
            return x.copy_(y) if inplace else y
        with torch.enable_grad():
            point = x.detach().requires_grad_()
            y = self._ELEMENTWISE[func](point, *args[1:], **kwargs)
            slope = torch.autograd.grad(y.sum(), point)[0]
        self.pieces.append((slope, y.detach() - slope * x.detach()))
        return func(*args, **kwargs, **({"inplace": True} if inplace and func not in
                                        self._INPLACE else {}))

    def _pool(self, func, args, kwargs):
        with_indices, dims = self._POOLS[func]
        indices = bool(kwargs.pop("return_indices", False))
        if self.replay is not None:
            index, _ = next(self.replay)
            x = args[0]
            y = x.flatten(x.dim() - dims).gather(-1, index.flatten(index.dim() - dims))
            y = y.view(index.shape)
        else:
            y, index = with_indices(*args, **kwargs)
            self.pieces.append((index, index))
        return (y, index) if indices else y


def central_difference(backward: Callable[[float], None],
                       taken: Callable[[], list[torch.Tensor]], params: list[torch.Tensor],
                       dot: Callable[..., torch.Tensor], longest: float, change: float = 1e-3
                       ) -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
    """Hessian-vector products (g(theta + h v) - g(theta - h v)) / 2h of unit vectors v from
    two ordinary gradients, where double backward is not available (FSDP2's sharded
    parameters, docs/SCIENCE.md section 7). ``params`` are moved in place and put back exactly
    after each product; ``backward(sign)`` adds sign times the gradient at their current
    values to the gradients, which ``taken()`` returns (to be overwritten) and clears, so the
    two gradients of a product share one buffer; ``dot`` is the inner product.

    The step: the first is ``longest``; each next one moves the gradient by about ``change``
    of its size, h = change ||g|| / ||Hv|| with the last product's ||Hv|| (never longer than
    ``longest``), so that rounding costs about eps32 / change = 1e-4 of ||Hv|| whatever the
    curvature and the gradient stays near linear over the step. Along the top eigenvector of a
    30-block BatchNorm chain (lambda 2.4e6) a step that suits a random direction, 1e-3 of
    ||theta||, measured v H v = 53; the adapted steps give 2.2e6, the float32 weights barely
    resolving them (docs/SCIENCE.md section 7)."""
    saved = [p.detach().clone() for p in params]
    backward(1.0)
    size = float(dot(start := taken(), start).sqrt())
    del start
    step = [longest]

    def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
        h = step[0]
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, s, x in zip(params, saved, v):
                    p.copy_(s).add_(x, alpha=sign * h)
            backward(sign)
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
        out = [g.div_(2 * h) for g in taken()]
        curvature = float(dot(out, out).sqrt())
        step[0] = min(longest, change * size / curvature) if curvature > 0 else longest
        return out

    return hvp
