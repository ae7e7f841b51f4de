"""Tensor statistics shared by the static pass and the probe, each a reduction to a scalar."""

from __future__ import annotations

import torch


def dead_fraction(x: torch.Tensor) -> torch.Tensor:
    """Fraction of units (channels, dim 1) that are zero for every sample and position."""
    if x.dim() < 2:
        return (x <= 0).all().float()
    alive = (x > 0).transpose(0, 1).reshape(x.shape[1], -1).any(dim=1)
    return 1.0 - alive.float().mean()


def mean_cosine(x: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over all pairs of samples, in O(N*D): with unit rows u_i,
    sum_{i != j} <u_i, u_j> = ||sum_i u_i||^2 - N."""
    n = x.shape[0]
    if n < 2:
        return x.new_tensor(float("nan"))
    rows = x.reshape(n, -1).float()
    unit = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
    total = unit.sum(dim=0)
    return (total.dot(total) - n) / (n * (n - 1))
