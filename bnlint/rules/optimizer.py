"""Measured family (9xx), the configured optimizer's own terms: its weight decay and its eps
against the per-layer gradients the probe measured at initialisation."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass

from ..model.graph import Layer
from .base import Context, Hit, check
from .catalog import Rule

# Optimizers whose weight_decay adds wd * w to the gradient (coupled L2); AdamW, and Adam,
# NAdam or RAdam with decoupled_weight_decay=True, shrink the weights outside the gradient.
COUPLED_DECAY = ("sgd", "adam", "adamax", "nadam", "radam", "rmsprop", "adagrad")
# Optimizers whose step divides by sqrt(second moment) + eps, with torch's default eps.
EPS_DEFAULT = {"adam": 1e-8, "adamw": 1e-8, "adamax": 1e-8, "nadam": 1e-8, "radam": 1e-8,
               "rmsprop": 1e-8, "adagrad": 1e-10}


@dataclass(frozen=True)
class Measured:
    """One trainable affine layer's weight and weight-gradient RMS at initialisation."""
    layer: Layer
    weight_rms: float
    grad_rms: float


def measured_layers(ctx: Context) -> list[Measured]:
    """The affine layers whose weight and weight gradient the probe measured at init, with a
    nonzero gradient."""
    out = []
    for stats in ctx.probe.layers if ctx.probe else ():
        layer = ctx.graph.find(stats.module)
        weight = getattr(layer.obj, "weight", None) if layer is not None else None
        grad, norm = stats.init.get("weight_grad"), stats.init.get("weight_norm")
        if weight is None or not grad or norm is None or not weight.numel() \
                or not (math.isfinite(grad) and math.isfinite(norm)):
            continue
        root = math.sqrt(weight.numel())
        out.append(Measured(layer, norm / root, grad / root))
    return out


def coupled_decay(ctx: Context) -> float:
    """The configured weight decay when it is added to the gradient, else 0."""
    opt = ctx.config.optimizer
    if opt is None or opt.name not in COUPLED_DECAY or opt.args.get("decoupled_weight_decay"):
        return 0.0
    return float(opt.args.get("weight_decay", 0.0))


@check("BNL908")
def decay_dominates_gradient(ctx: Context, rule: Rule) -> Iterator[Hit]:
    wd = coupled_decay(ctx)
    layers = measured_layers(ctx)
    if wd <= 0 or not layers:
        return
    ratios = [(wd * m.weight_rms / m.grad_rms, m) for m in layers]
    median, bound = statistics.median(r for r, _ in ratios), ctx.threshold(rule,
                                                                             "decay_to_gradient")
    if median < bound:
        return
    over = [x for x in ratios if x[0] >= bound]
    ratio, worst = max(ratios, key=lambda x: x[0])
    yield Hit(worst.layer,
              {"optimizer": ctx.config.optimizer.name, "wd": wd, "layer": worst.layer.label,
               "decay": wd * worst.weight_rms, "grad": worst.grad_rms, "ratio": ratio,
               "median": median, "count": len(over), "judged": len(ratios),
               "device": ctx.probe.device},
              {"measured": {"weight_decay": wd, "median_decay_to_gradient": median,
                            "decay_to_gradient": {m.layer.module or m.layer.name: r
                                                  for r, m in ratios}}})


@check("BNL909")
def eps_above_gradient(ctx: Context, rule: Rule) -> Iterator[Hit]:
    opt = ctx.config.optimizer
    layers = measured_layers(ctx)
    if opt is None or opt.name not in EPS_DEFAULT or not layers:
        return
    eps = float(opt.args.get("eps", EPS_DEFAULT[opt.name]))
    median, bound = statistics.median(m.grad_rms for m in layers), ctx.threshold(
        rule, "eps_to_gradient")
    if eps < bound * median:
        return
    over = [m for m in layers if eps >= bound * m.grad_rms]
    default = "eps" not in opt.args
    cause = ("; at torch's default eps this means the gradients themselves are tiny: find "
             "where they vanish (BNL902) rather than lower eps") if default else ""
    yield Hit(min(layers, key=lambda m: m.grad_rms).layer,
              {"optimizer": opt.name, "which": "default eps" if default else "eps", "eps": eps,
               "median": median, "ratio": eps / median, "count": len(over),
               "judged": len(layers), "device": ctx.probe.device, "cause": cause},
              {"measured": {"eps": eps, "median_grad_rms": median,
                            "grad_rms": {m.layer.module or m.layer.name: m.grad_rms
                                         for m in layers}}})
