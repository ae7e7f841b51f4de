"""How a call edit changes the model's ``state_dict`` keys, derived from the built model: a
module the edit removes (``nn.BatchNorm1d(8)`` -> ``nn.Identity()``) takes its keys with it; a
constructor argument the edit sets (``bias=False``, ``affine=True``) changes the keys of a
module rebuilt with it (on the meta device, so no memory is spent); a bias dropped before a
BatchNorm is folded into its running mean. Written repairs only initialise parameters or swap
an activation for another without state, so they keep the keys."""

from __future__ import annotations

import ast
import inspect

import torch
from torch import nn

from ..errors import InputError
from ..findings import KeyChange
from ..model.graph import Layer, ModelGraph
from ..rules.catalog import Edit


def _rebuilt(module: nn.Module, name: str, value: object) -> nn.Module:
    """``module``'s class built again with its own settings, read from its attributes, and
    argument ``name`` set to ``value``. A missing bias is left to the default: the attribute
    is None both for ``bias=False`` and for a BatchNorm's ``affine=False``."""
    kwargs = {}
    for p in list(inspect.signature(type(module).__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name == name:
            kwargs[p.name] = value
        elif p.name == "bias":  # True where there is one; None may be affine=False's doing
            if isinstance(getattr(module, "bias", None), torch.Tensor):
                kwargs[p.name] = True
        elif hasattr(module, p.name):
            kwargs[p.name] = getattr(module, p.name)
        elif p.default is p.empty:
            raise TypeError(f"no attribute {p.name}")
    with torch.device("meta"):
        return type(module)(**kwargs)


def _folded(graph: ModelGraph, layer: Layer, bias: str) -> list[tuple[str, str]]:
    """(bias key, running-mean key) for each BatchNorm that reads ``layer``'s output, when
    only such BatchNorms read it (as ``bnlint.fixes.repairs.drop_bias`` folds it)."""
    after = graph.next(layer)
    means = [(bn.module, getattr(bn.obj, "running_mean", None)) for bn in after]
    shape = tuple(layer.obj.bias.shape)
    if not after or any(m is None or mean is None or tuple(mean.shape) != shape
                        for m, mean in means):
        return []
    return [(bias, f"{m}.running_mean") for m, _ in means]


def key_change(edits: list[Edit], layers: list[Layer], graph: ModelGraph) -> KeyChange | None:
    """How the call edits change the state_dict keys of the modules ``layers`` (the finding's,
    all built by the edited call); None when they keep them. An InputError when the change
    cannot be derived (a module class that cannot be rebuilt from its attributes)."""
    removed, added, folded = [], [], []
    for layer in layers:
        module = layer.obj
        if module is None or not layer.module:
            continue  # a functional op: no state
        keys = set(module.state_dict())
        for edit in edits:
            if edit.action == "remove_op":
                new: set[str] = set()
            elif edit.action == "set_kwarg":
                try:
                    new = set(_rebuilt(module, edit.name, ast.literal_eval(edit.value))
                              .state_dict())
                except (TypeError, ValueError) as exc:
                    raise InputError(f"cannot tell how {edit.name}={edit.value} changes the "
                                     f"state_dict of {type(module).__name__} ({exc})") from None
            else:
                continue
            removed += [f"{layer.module}.{k}" for k in sorted(keys - new)]
            added += [f"{layer.module}.{k}" for k in sorted(new - keys)]
            if edit.action == "set_kwarg" and "bias" in keys - new:
                folded += _folded(graph, layer, f"{layer.module}.bias")
    if not (removed or added):
        return None
    return KeyChange(tuple(dict.fromkeys(removed)), tuple(dict.fromkeys(added)),
                     tuple(dict.fromkeys(folded)))
