"""Repairs for your own model code, in place: ``bnlint.repair.he_init(model)`` and the others
below each run one of :mod:`bnlint.fixes.repairs`' graph repairs on ``model`` itself (which
torch.fx must be able to trace) and return it. (``--fix --unsafe-fixes`` writes the same
repairs into the model's file as plain PyTorch instead: :mod:`bnlint.fixes.written`.)"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .fixes.repairs import REPAIRS
from .model.traced import trace

__all__ = ["drop_output_relu", "he_init", "orthogonal_init", "shape_activations",
           "zero_init_residual"]


def _in_place(name: str) -> Callable[[nn.Module], nn.Module]:
    repair = REPAIRS[name]

    def apply(model: nn.Module) -> nn.Module:
        repair(trace(model), model)
        return model
    apply.__name__ = name
    apply.__doc__ = (f"{repair.__doc__.splitlines()[0]}\n\nIn place on ``model`` (which torch.fx "
                     "must be able to trace); returns it.")
    return apply


shape_activations = _in_place("shape_activations")
zero_init_residual = _in_place("zero_init_residual")
he_init = _in_place("he_init")
orthogonal_init = _in_place("orthogonal_init")
drop_output_relu = _in_place("drop_output_relu")
