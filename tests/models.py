"""Small models several tests share."""

from __future__ import annotations

import torch
from torch import nn


def bn_mlp(depth: int, width: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """A plain chain of ``depth`` Linear -> BatchNorm1d -> activation blocks."""
    return nn.Sequential(*[m for _ in range(depth)
                           for m in (nn.Linear(width, width), nn.BatchNorm1d(width), act())])


class PreActResidual(nn.Module):
    """A pre-activation residual MLP: stem, ``depth`` branches BN -> ReLU -> Linear -> BN ->
    ReLU -> Linear -> BN added to the stream, head. ``zero_init`` sets each branch's last
    BatchNorm gamma to 0."""

    def __init__(self, depth: int = 20, width: int = 64, zero_init: bool = False):
        super().__init__()
        self.stem = nn.Linear(width, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width, bias=False),
                          nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width, bias=False),
                          nn.BatchNorm1d(width))
            for _ in range(depth))
        if zero_init:
            for block in self.blocks:
                nn.init.zeros_(block[-1].weight)
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)
