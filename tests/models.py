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


class ScaledWSConv2d(nn.Conv2d):
    """A scaled weight-standardised conv (NF-Nets, arXiv:2101.08692), written as timm's
    ScaledStdConv2d: it standardises its weight in its own forward, times a learned gain,
    and calls F.conv2d. Bias zero, as NF-Nets initialise it."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, gain: float = 1.0):
        super().__init__(cin, cout, k, stride=stride, padding=k // 2)
        nn.init.zeros_(self.bias)
        self.gain = nn.Parameter(torch.full((cout, 1, 1, 1), gain))
        self.scale = self.weight[0].numel() ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = nn.functional.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None,
            weight=(self.gain * self.scale).view(-1), training=True, momentum=0.0,
            eps=1e-6).reshape_as(self.weight)
        return nn.functional.conv2d(x, w, self.bias, self.stride, self.padding)


class SqueezeExcite(nn.Module):
    """An SE gate: channel means -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid, times the input
    (biases zero, as NF-Nets initialise them)."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // 2, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // 2, channels, 1)
        nn.init.zeros_(self.fc1.bias)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))))


class NormFree(nn.Module):
    """A tiny NF-Net (timm's NormFreeBlock): a weight-standardised stem, two residual blocks
    x + 0.2 * branch whose branch's last conv has a zero gain (so the branch outputs zero at
    initialisation), each with an SE gate before that conv (``gate_last=False``, NF-RegNet)
    or after it (``gate_last=True``, NFNet), and a linear head."""

    def __init__(self, gate_last: bool = False, width: int = 32):
        super().__init__()
        self.gate_last = gate_last
        self.stem = ScaledWSConv2d(3, width, 3, stride=2)
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "conv1": ScaledWSConv2d(width, width, 3), "act": nn.ReLU(),
            "attn": SqueezeExcite(width), "conv2": ScaledWSConv2d(width, width, 1, gain=0.0)})
            for _ in range(2))
        self.head = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for b in self.blocks:
            out = b["conv1"](torch.relu(x))
            if not self.gate_last:
                out = 2.0 * b["attn"](out)
            out = b["conv2"](b["act"](out))
            if self.gate_last:
                out = 2.0 * b["attn"](out)
            x = x + 0.2 * out
        return self.head(x.mean((2, 3)))
