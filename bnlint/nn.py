"""Modules that bnlint's repairs insert: depth-shaped activations and a target standardiser.

- :class:`ShapedActivation`: layer ``l`` (1-based) of a BatchNorm chain computes
  ``act(l ** -alpha * x)`` for tanh, sin or the identity; Meterez et al. (arXiv:2310.02012)
  show this keeps gradients bounded at any depth.
- :class:`DepthLeakyReLU`: gain shaping does nothing for ReLU (ReLU(g x) = g ReLU(x) and the
  next BatchNorm removes g), so a ReLU is shaped through its slope instead: negative slope
  ``1 - l ** -alpha`` (our variant, in the spirit of TAT, Zhang, Botev & Martens 2022; measured
  in docs/SCIENCE.md §2).
- :class:`Standardize`: targets to zero mean and unit variance for training, and back for
  predictions (Arnekvist et al., arXiv:2005.06195: ReLUs die more easily as the target
  variance goes to 0).
"""

from __future__ import annotations

import torch
from torch import nn

from .predict.theory import SHAPING_ALPHA

_FUNCTIONS = {"tanh": torch.tanh, "sin": torch.sin, "identity": lambda x: x}


class ShapedActivation(nn.Module):
    """``act(layer ** -alpha * x)`` for act in tanh, sin, identity."""

    def __init__(self, kind: str, layer: int, alpha: float = SHAPING_ALPHA):
        super().__init__()
        if kind not in _FUNCTIONS:
            raise ValueError(f"kind must be one of {sorted(_FUNCTIONS)}, got {kind!r}")
        if layer < 1:
            raise ValueError("layer is 1-based")
        self.kind, self.layer, self.alpha = kind, layer, alpha
        self.gain = float(layer) ** -alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _FUNCTIONS[self.kind](self.gain * x)

    def extra_repr(self) -> str:
        return f"{self.kind}, layer={self.layer}, alpha={self.alpha}, gain={self.gain:.4g}"


class DepthLeakyReLU(nn.LeakyReLU):
    """Leaky ReLU whose negative slope grows with depth: ``1 - layer ** -alpha``."""

    def __init__(self, layer: int, alpha: float = SHAPING_ALPHA, inplace: bool = False):
        if layer < 1:
            raise ValueError("layer is 1-based")
        super().__init__(negative_slope=1.0 - float(layer) ** -alpha, inplace=inplace)
        self.layer, self.alpha = layer, alpha

    def extra_repr(self) -> str:
        return f"layer={self.layer}, alpha={self.alpha}, negative_slope={self.negative_slope:.4g}"


class Standardize(nn.Module):
    """``(y - mean) / std`` per output column, with :meth:`inverse` for predictions.

    Train on ``standardize(y)``; predict with ``standardize.inverse(model(x))``. The
    statistics are buffers, so they are saved with the model's state_dict."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-12))

    @classmethod
    def from_targets(cls, targets: torch.Tensor) -> Standardize:
        t = targets.float()
        t = t.reshape(t.shape[0], -1) if t.dim() > 1 else t
        return cls(t.mean(dim=0), t.std(dim=0))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mean.reshape(y.shape[1:] or ())) / self.std.reshape(y.shape[1:] or ())

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std.reshape(z.shape[1:] or ()) + self.mean.reshape(z.shape[1:] or ())

    def extra_repr(self) -> str:
        return f"outputs={self.mean.numel()}"
