"""Tensor statistics shared by the static pass and the probe, each a reduction to a scalar
that allocates nothing the size of its input (the probe runs them on every activation)."""

from __future__ import annotations

from typing import Any

import torch

from . import ops


def channel_max(x: torch.Tensor) -> torch.Tensor:
    """The largest value of each unit (channel, dim 1) over samples and positions; one value
    for an input of fewer than 2 dimensions. Maxima over parts of a batch reduce by max."""
    if x.dim() < 2:
        return x.amax().reshape(1)
    return x.amax(dim=[0, *range(2, x.dim())])


def dead_fraction(x: torch.Tensor) -> torch.Tensor:
    """Fraction of units (channels, dim 1) that are zero for every sample and position."""
    return (channel_max(x) <= 0).float().mean()


def unit_sum(x: torch.Tensor) -> torch.Tensor:
    """sum_i x_i / ||x_i|| over the samples (dim 0) of ``x`` flattened per sample, in O(N*D)
    time and O(N+D) memory: X^T (1 / ||x_i||). Sums over parts of a batch add up."""
    rows = x.reshape(x.shape[0], -1)
    inverse = 1.0 / torch.linalg.vector_norm(rows, dim=1).clamp_min(1e-12)
    return torch.mv(rows.t(), inverse.to(rows.dtype))


def cosine_from_unit_sum(total: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over all pairs of ``n`` samples (a 0-dim tensor) whose unit
    vectors sum to ``total``: sum_{i != j} <u_i, u_j> = ||sum_i u_i||^2 - n. NaN for fewer
    than 2 samples."""
    pairs = (total.dot(total) - n) / (n * (n - 1)).clamp_min(1)
    return torch.where(n >= 2, pairs, torch.full_like(pairs, float("nan")))


def all_finite(x: torch.Tensor) -> bool:
    """Whether every element of ``x`` is finite. A finite sum says so in one reduction, a
    tenth of the cost of an isfinite mask (a 512x512x3x3 weight, one CPU thread); finite values
    whose sum overflows are told apart by the mask."""
    return bool(torch.isfinite(x.detach().sum())) or bool(torch.isfinite(x).all())


def dead_or_none(kind: str, out: Any) -> float | None:
    """The dead-unit fraction of a ReLU's (or ReLU6's) output; None for other kinds and for
    outputs that are not finite floating tensors with values. Such an output is never -inf
    (it is clamped at 0), and NaN and inf show in the units' maxima: one reduction, no tensor
    the size of ``out`` (an isfinite mask of every ReLU output made the static forward of
    ResNet-50 at 224 px a tenth slower)."""
    if not (ops.in_group(kind, "relu") and isinstance(out, torch.Tensor)
            and out.is_floating_point() and not out.is_meta and out.numel()):
        return None
    top = channel_max(out)
    if not bool(torch.isfinite(top).all()):
        return None
    return float((top <= 0).float().mean())
