"""Layers that output exactly zero at initialisation whatever the input, reasoned from the graph
and the weights: a zero-initialised layer (an affine layer whose weight or weight-standardised
gain is 0, a norm layer whose gamma is 0, each without bias) and what its zero reaches through
ops that keep zero zero. A residual branch that ends in such a layer outputs zero until its
first update (SkipInit, arXiv:2002.10444; the NF-Nets' zero-gain last conv, arXiv:2102.06171),
and a unit fed only by it outputs 0 for every sample without being dead: the probe rules do not
judge it at initialisation."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..model import ops
from ..model.graph import Layer, ModelGraph
from ..predict.theory import zero_at_zero

# Kinds whose output is zero when every input is (Mul is zero when any input is).
_KEEPING = ops.GROUPS["transparent"] | ops.GROUPS["dropout"] | ops.GROUPS["merge"] | {
    "Sub", "Mean", "Sum", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d",
    "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "Identity"}


def _keeps_zero(layer: Layer) -> bool:
    """Whether ``layer`` outputs zero when all its inputs are zero."""
    return layer.kind in _KEEPING or (layer.is_("@activation")
                                      and zero_at_zero(layer.kind, layer.options))


def zero_tensor(t: object) -> bool:
    """``t`` is a tensor with values, all of them zero (not a meta tensor, whose values are
    unknown)."""
    return isinstance(t, torch.Tensor) and not t.is_meta and t.numel() > 0 \
        and not torch.count_nonzero(t)


def _all_zero(t: torch.Tensor | None) -> bool:
    """``t`` is None (no bias) or holds only zeros."""
    return t is None or (isinstance(t, torch.Tensor) and not t.is_meta
                         and not torch.count_nonzero(t))


def _affine_module(graph: ModelGraph, layer: Layer) -> nn.Module | None:
    """The affine module behind ``layer``: the module it calls, or for a functional affine op
    the module that calls it when that is an affine layer with its own forward (a
    weight-standardised conv)."""
    if layer.obj is not None:
        return layer.obj
    owner = graph.affine_owner(layer)
    return graph.model.get_submodule(owner) if owner else None


def _zero_map(module: nn.Module, shape: tuple[int, ...] | None, own_forward: bool) -> bool:
    """Whether the affine ``module`` maps every input to 0: its weight is all zero or, when it
    rewrites its weight in its own forward (weight standardisation with a zero gain), its
    output on one random input of the input's ``shape`` is."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.is_meta:
        return False
    if not own_forward:
        return zero_tensor(weight)
    if not shape or len(shape) < 2:
        return False
    try:
        with torch.no_grad():
            out = module(torch.randn(1, *shape[1:], dtype=weight.dtype, device=weight.device))
    except Exception:  # noqa: BLE001 - a layer that cannot run alone is not known to be zero
        return False
    return isinstance(out, torch.Tensor) and not torch.count_nonzero(out)


def zero_layers(graph: ModelGraph, within: set[str] | None = None) -> dict[str, str]:
    """Each layer (by node name) whose output is exactly zero at initialisation for every
    input, with the name of the zero-initialised layer its zero comes from (itself for that
    layer). Layers that do not depend on the inputs (the weight-standardisation ops on a
    parameter) are left out. A weight-standardised layer is run once on a random input to tell
    whether it is zero, only when in ``within`` (when given)."""
    data: set[str] = set()
    zero: dict[str, str] = {}
    shapes = {layer.name: layer.shape for layer in graph.order}
    for layer in graph.order:
        if layer.op == "input":
            data.add(layer.name)
            continue
        preds = [p for p in graph.g.predecessors(layer.name) if p in data]
        if not preds:
            continue
        data.add(layer.name)
        fed = [zero[p] for p in preds if p in zero]
        every = len(fed) == len(preds)
        if layer.is_("@affine"):
            module = _affine_module(graph, layer)
            if module is None or not _all_zero(getattr(module, "bias", None)):
                continue
            if every:
                zero[layer.name] = fed[0]
            elif (within is None or layer.name in within or layer.obj is not None) and \
                    _zero_map(module, shapes.get(preds[0]), own_forward=layer.obj is None):
                zero[layer.name] = layer.name
        elif layer.is_("@norm") and layer.obj is not None:
            if not _all_zero(getattr(layer.obj, "bias", None)):
                continue
            if every:
                zero[layer.name] = fed[0]
            elif getattr(layer.obj, "weight", None) is not None and \
                    _all_zero(layer.obj.weight):
                zero[layer.name] = layer.name
        elif (layer.kind == "Mul" and fed) or (every and _keeps_zero(layer)):
            zero[layer.name] = fed[0]
    return zero


def trains(graph: ModelGraph, source: str, zero: dict[str, str]) -> bool:
    """Whether the zero-initialised layer ``source`` gets a gradient at initialisation: its
    output reaches a layer that is not zero (the merge with a residual stream, the model's
    output) through zero layers that pass a gradient back, not through an activation (a ReLU's
    derivative at 0 is 0) or another zero-initialised layer (whose zero weight passes none)."""
    todo, seen = list(graph.g.successors(source)), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in zero:
            return True
        layer = graph.layer(name)
        if layer.is_("@activation") or zero[name] == name:
            continue
        todo.extend(graph.g.successors(name))
    return False


def starved(graph: ModelGraph, names: Iterable[str]) -> dict[str, str]:
    """Of the layers ``names`` (node names), those whose output is exactly zero at
    initialisation because a zero-initialised layer that trains feeds them (a residual
    branch's zero end), with that layer's name."""
    names = list(names)
    zero = zero_layers(graph, graph.ancestors(names))
    return {name: zero[name] for name in names
            if name in zero and trains(graph, zero[name], zero)}
