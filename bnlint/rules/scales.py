"""Input scale (4xx): the user's example inputs, per channel, against a first layer that no
normalisation shields from them."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..model.graph import Layer, ModelGraph
from ..model.stats import all_finite
from .base import Context, Hit, check
from .catalog import Rule

_PASS = ("@transparent", "@dropout", "MaxPool*", "AvgPool*", "AdaptiveAvgPool*", "Pad*")


def first_layers(graph: ModelGraph) -> list[Layer]:
    """The affine layers the model's (first) input reaches first through pass-through ops;
    a path that meets anything else first (a norm, the forward's own ``x / 255``) has none."""
    start = next((x for x in graph.order if x.op == "input"), None)
    found, stack, seen = [], [start] if start is not None else [], set()
    while stack:
        for reader in graph.next(stack.pop()):
            if reader.name in seen:
                continue
            seen.add(reader.name)
            if reader.is_("@affine"):
                found.append(reader)
            elif any(reader.is_(spec) for spec in _PASS):
                stack.append(reader)
    return sorted(found, key=lambda x: x.name)


def _shielded(graph: ModelGraph, layer: Layer) -> bool:
    """Whether a norm follows the layer (through pass-through ops), removing the input's scale."""
    for cur in graph.downstream(layer):
        if cur.is_("@norm"):
            return True
        if not any(cur.is_(spec) for spec in _PASS):
            return False
    return False


def channel_stats(x: torch.Tensor, dim: int) -> dict[str, torch.Tensor]:
    """Mean, std, min, max and RMS of ``x`` per index of dimension ``dim``."""
    flat = x.detach().double().movedim(dim, 0).reshape(x.shape[dim], -1)
    mean, std = flat.mean(1), flat.std(1, unbiased=False)
    return {"mean": mean, "std": std, "min": flat.min(1).values, "max": flat.max(1).values,
            "rms": (mean.square() + std.square()).sqrt()}


def _snippet(x: torch.Tensor, dim: int, pixels: bool) -> str:
    others = tuple(d for d in range(x.dim()) if d != dim)
    dims = others[0] if len(others) == 1 else others
    text = (f"mean = x.mean(dim={dims}, keepdim=True); std = x.std(dim={dims}, keepdim=True)"
            "  # over the training set; then feed (x - mean) / std")
    return ("x = x / 255  # 8-bit pixels to [0, 1]; better still, " + text) if pixels else text


@check("BNL408")
def input_scale(ctx: Context, rule: Rule) -> Iterator[Hit]:
    x = ctx.inputs[0] if ctx.inputs else None
    if ctx.synthetic_inputs or not isinstance(x, torch.Tensor) or not x.is_floating_point() \
            or x.dim() < 2 or not all_finite(x):
        return
    hidden = ctx.graph.upstream_of("@affine")  # layers with another affine layer after them
    layers = [x for x in first_layers(ctx.graph) if x.name in hidden and x.obj is not None
              and not _shielded(ctx.graph, x)]
    if not layers:
        return  # a linear or one-layer model (the lr rules judge its conditioning), or a norm
    layer = layers[0]
    dim = 1 if layer.kind.startswith(("Conv", "LazyConv")) else x.dim() - 1
    stats = channel_stats(x, dim)
    rms_max, abs_max = ctx.threshold(rule, "rms_max"), ctx.threshold(rule, "abs_max")
    overall = float(x.double().square().mean().sqrt())
    largest = float(x.detach().abs().max())
    big = float(stats["rms"].max()) > rms_max or largest > abs_max
    small = 0 < overall < ctx.threshold(rule, "rms_min")
    if not (big or small):
        return
    worst = torch.argsort(stats["rms"], descending=big)[:3].tolist()
    name = "channel" if dim == 1 and x.dim() > 2 else "feature"
    shown = "; ".join(f"{name} {c}: mean {float(stats['mean'][c]):.3g}, std "
                      f"{float(stats['std'][c]):.3g}, range {float(stats['min'][c]):.3g} to "
                      f"{float(stats['max'][c]):.3g}" for c in worst)
    count = x.shape[dim]
    pixels = big and bool((x >= 0).all() and (x <= 255).all() and (x == x.round()).all()) \
        and largest > 1
    if big:
        effect = (f"they reach an RMS of {float(stats['rms'].max()):.3g} per {name} and "
                  f"values of {largest:.3g}, so its pre-activations start that many times "
                  "larger than unit-scale inputs would make them: its units saturate or switch "
                  "off for whole regions of the data, and its weights' gradient grows with the "
                  "input")
    else:
        effect = (f"the inputs' RMS is {overall:.2g}, so its output is mostly its bias and the "
                  f"signal reaches the next layers about {overall:.2g}x as strong as unit-scale "
                  "inputs would make it")
    snippet = _snippet(x, dim, pixels)
    yield Hit(layer, {"layer": layer, "stats": shown, "count": count,
                      "name": name, "effect": effect, "snippet": snippet},
              {"rms_max": float(stats["rms"].max()), "abs_max": largest, "rms": overall,
               "channel_dim": dim},
              fix_description=f"Standardise the inputs per {name}: {snippet}")
