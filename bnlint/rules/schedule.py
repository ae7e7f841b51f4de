"""Learning-rate family (5xx) finders: what the configured optimizer and schedule do to the
architecture."""

from __future__ import annotations

import math
from collections.abc import Iterator

from torch import nn

from ..model.graph import Layer, ModelGraph
from ..model.stats import all_finite
from .base import Context, Hit, check
from .catalog import Rule
from .init import affine_weights, is_output_layer

# Adam and the optimizers built on its step, which Xiong et al. (arXiv:2002.04745) study;
# RAdam rectifies the early steps' variance so as to need no warm-up (arXiv:1908.03265).
ADAM_LIKE = ("adam", "adamw", "adamax", "nadam")


def post_norm_sublayers(graph: ModelGraph, model: nn.Module) -> list[tuple[str, Layer | None]]:
    """(module, layer) for each post-LN residual sublayer: a LayerNorm that takes a residual
    add (one of whose inputs also feeds the branch) whose only consumer it is, so the
    normalised sum is the residual stream (in a pre-LN block the sum also feeds the next add;
    a lone final norm is no post-LN block). torch's TransformerEncoderLayer / DecoderLayer
    with norm_first=False count 2 and 3 each."""
    found = []
    for layer in graph.layers("LayerNorm"):
        adds = [p for p in graph.prev(layer) if p.is_("Add")]
        if adds and all(len(graph.next(a)) == 1 and any(len(graph.next(x)) > 1
                                                        for x in graph.prev(a))
                        for a in adds):
            found.append((layer.module or layer.name, layer))
    for name, module in model.named_modules():
        if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)) \
                and not module.norm_first:
            norms = ("norm1", "norm2", "norm3") if hasattr(module, "norm3") else \
                ("norm1", "norm2")
            found += [(f"{name}.{n}", _nearest(graph, f"{name}.{n}")) for n in norms]
    return found if len(found) >= 2 else []


def _nearest(graph: ModelGraph, module: str) -> Layer | None:
    """The graph's layer for ``module`` or, in a graph that does not reach inside it (hooks),
    for its nearest enclosing module."""
    parts = module.split(".")
    while parts:
        layer = graph.find(".".join(parts))
        if layer is not None:
            return layer
        parts.pop()
    return None


@check("BNL501")
def post_ln_without_warmup(ctx: Context, rule: Rule) -> Iterator[Hit]:
    opt = ctx.config.optimizer
    if opt is None or opt.lr is None or opt.name not in ADAM_LIKE \
            or opt.lr < ctx.threshold(rule, "lr_min") or ctx.config.warmup_steps:
        return
    sublayers = post_norm_sublayers(ctx.graph, ctx.model)
    if not sublayers:
        return
    deep = len(sublayers) >= ctx.threshold(rule, "sublayers_warning")
    module, layer = next(((m, x) for m, x in sublayers if x is not None), sublayers[0])
    depth = (f"{len(sublayers)} of them, deep enough that the instability grows with depth "
             f"(Liu et al., arXiv:2004.08249)" if deep else
             f"{len(sublayers)} of them; shallow post-LN stacks often still train, deeper "
             f"ones fail more (Liu et al., arXiv:2004.08249)")
    yield Hit(layer or _nearest(ctx.graph, ""),
              {"first": module, "count": len(sublayers), "depth": depth, "lr": opt.lr,
               "optimizer": opt.name},
              {"post_ln_sublayers": [m for m, _ in sublayers], "lr": opt.lr,
               "optimizer": opt.name, "warmup_steps": ctx.config.warmup_steps},
              severity=None if deep else "info")


def _rms(weight) -> float:
    return float(weight.detach().double().pow(2).mean().sqrt())


@check("BNL502")
def adaptive_step_over_weights(ctx: Context, rule: Rule) -> Iterator[Hit]:
    opt = ctx.config.optimizer
    if opt is None or opt.lr is None or opt.name not in ADAM_LIKE or ctx.config.warmup_steps:
        return
    bound = ctx.threshold(rule, "step_to_weight")
    judged, over = 0, []
    for layer, weight in affine_weights(ctx.graph):
        if weight is None or weight.dim() < 2 or weight.is_meta \
                or not all_finite(weight):
            continue
        rms = _rms(weight)
        if rms == 0 or is_output_layer(ctx.graph, layer):
            continue  # zero or small on purpose (Fixup, a zero or 0.01 head): grown by its steps
        judged += 1
        if opt.lr >= bound * rms:
            over.append((opt.lr / rms, layer, rms))
    if not over:
        return
    ratio, layer, rms = max(over, key=lambda x: x[0])
    yield Hit(layer, {"layer": layer.label, "optimizer": opt.name, "lr": opt.lr, "rms": rms,
                      "ratio": ratio, "count": len(over), "judged": judged},
              {"optimizer": opt.name, "lr": opt.lr,
               "step_to_weight": {x[1].module or x[1].name: x[0] for x in over}})


@check("BNL503")
def adadelta_lr_below_one(ctx: Context, rule: Rule) -> Iterator[Hit]:
    opt = ctx.config.optimizer
    if opt is None or opt.name != "adadelta" or opt.lr is None \
            or opt.lr > ctx.threshold(rule, "lr_warning"):
        return
    eps = float(opt.args.get("eps", 1e-6))
    rho = float(opt.args.get("rho", 0.9))
    first = math.sqrt(eps / (1 - rho))  # Adadelta's own first step, per coordinate
    first_layer = next((layer for layer, _ in affine_weights(ctx.graph)), None)
    yield Hit(first_layer,
              {"lr": opt.lr, "factor": 1 / opt.lr, "first": first, "step": opt.lr * first,
               "eps": eps, "rho": rho},
              {"optimizer": "adadelta", "lr": opt.lr, "eps": eps, "rho": rho})
