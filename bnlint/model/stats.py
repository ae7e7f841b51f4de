"""Tensor statistics shared by the static pass and the probe, each a reduction to a scalar
that allocates nothing the size of its input (the probe runs them on every activation)."""

from __future__ import annotations

from typing import Any

import torch

from . import ops


def dead_fraction(x: torch.Tensor) -> torch.Tensor:
    """Fraction of units (channels, dim 1) that are zero for every sample and position."""
    if x.dim() < 2:
        return (x.amax() <= 0).float()
    dims = [0, *range(2, x.dim())]
    return (x.amax(dim=dims) <= 0).float().mean()


def mean_cosine(x: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over all pairs of samples, in O(N*D) time and O(N+D) memory:
    with unit rows u_i = x_i / ||x_i||, sum_{i != j} <u_i, u_j> = ||sum_i u_i||^2 - N, and
    sum_i u_i = X^T (1 / ||x_i||)."""
    n = x.shape[0]
    if n < 2:
        return x.new_tensor(float("nan"))
    rows = x.reshape(n, -1)
    inverse = 1.0 / torch.linalg.vector_norm(rows, dim=1).clamp_min(1e-12)
    total = torch.mv(rows.t(), inverse.to(rows.dtype))
    return (total.dot(total) - n) / (n * (n - 1))


def dead_or_none(kind: str, out: Any) -> float | None:
    """The dead-unit fraction of a ReLU-family output; None for other kinds and for outputs
    that are not finite floating tensors with values."""
    if ops.in_group(kind, "relu") and isinstance(out, torch.Tensor) and out.is_floating_point() \
            and not out.is_meta and bool(torch.isfinite(out).all()):
        return float(dead_fraction(out))
    return None
