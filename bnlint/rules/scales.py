"""Input scale (4xx): the user's example inputs, per channel, against a first layer that no
normalisation shields from them."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from ..model.graph import Layer, ModelGraph
from .base import Context, Hit, check
from .catalog import Rule
from .init import activation_and_norm

_PASS = ("@transparent", "@dropout", "MaxPool*", "AvgPool*", "AdaptiveAvgPool*", "Pad*")


def first_layer(graph: ModelGraph) -> Layer | None:
    """The affine layer the model's (first) input reaches first through pass-through ops; None
    when a norm comes first, the path forks, or the forward computes on the input first (a
    ``x / 255`` of its own)."""
    cur = next((x for x in graph.order if x.op == "input"), None)
    while cur is not None:
        readers = graph.next(cur)
        if len(readers) != 1:
            return None
        cur = readers[0]
        if cur.is_("@affine"):
            return cur
        if not any(cur.is_(spec) for spec in _PASS):
            return None
    return None


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
            or x.dim() < 2 or not bool(torch.isfinite(x).all()):
        return
    layer = first_layer(ctx.graph)
    if layer is None:
        return
    act, normalised = activation_and_norm(ctx.graph, layer)
    if act is None or normalised:
        return  # a linear model (the lr rules judge its conditioning) or a norm after it
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
        scale = max(float(stats["rms"].max()), largest / math.sqrt(3))
        effect = (f"its pre-activations start up to about {scale:.3g}x the unit scale its init "
                  "assumes, so its units saturate or switch off for whole regions of the data, "
                  "and the gradient of its weights grows with the input")
    else:
        effect = (f"the inputs' RMS is {overall:.2g}, so its output is mostly its bias and the "
                  f"signal reaches the next layers about {overall:.2g}x as strong as its init "
                  "assumes")
    snippet = _snippet(x, dim, pixels)
    yield Hit(layer, {"layer": layer, "act": act.label, "stats": shown, "count": count,
                      "name": name, "effect": effect, "snippet": snippet},
              {"rms_max": float(stats["rms"].max()), "abs_max": largest, "rms": overall,
               "channel_dim": dim},
              fix_description=f"Standardise the inputs per {name}: {snippet}")
