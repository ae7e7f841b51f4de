"""Depth and gradient-flow family (2xx): what the predicted gradient flow (:mod:`bnlint.flow`)
says about plain chains and residual branches, at the training batch the probe uses."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from ..model.graph import Layer, ModelGraph
from ..model.stats import all_finite
from ..predict import theory
from ..predict.flow import Chain, activation_after, activation_options, fans, safe_ratio
from .base import Context, Hit, check
from .catalog import Rule


def module_layer(graph: ModelGraph, module: str) -> Layer:
    """The first graph layer that calls ``module``."""
    return graph.find(module)


def _number(value: float) -> float | None:
    """A prediction for the evidence, or None where there is none (no signal: 0/0)."""
    return value if math.isfinite(value) else None


def chain_evidence(chain: Chain, predicted: dict) -> dict:
    return {"predicted": predicted, "first_module": chain.first_module,
            "last_module": chain.last_module, "blocks": chain.blocks,
            "activation": chain.activation, "chain_modules": chain.modules}


def _rate_basis(chain: Chain, batch: int) -> str:
    if chain.activation in ("ReLU", "ReLU6"):
        if chain.spatial:
            return "the rate bnlint measured for conv -> BN -> ReLU"
        return (f"the rate measured at batch {batch}; at large batch mean field gives "
                f"sqrt(pi/(pi-1)) = {theory.leaky_relu_gain(0.0):.3f}, arXiv:1902.08129")
    return f"the mean-field rate for {chain.activation}, as for tanh in arXiv:2310.02012"


@check("BNL201")
def batchnorm_chain(ctx: Context, rule: Rule) -> Iterator[Hit]:
    pred = ctx.prediction
    for chain in pred.chains:
        ratio = chain.grad_ratio
        if chain.kind != "batchnorm" or not math.isfinite(ratio) \
                or ratio <= ctx.threshold(rule, "ratio_warning"):
            continue
        first = module_layer(ctx.graph, chain.first_module)
        error = ratio >= ctx.threshold(rule, "ratio_error")
        yield Hit(first, {"first": chain.first_module, "last": chain.last_module,
                          "blocks": chain.blocks, "affine": first.kind,
                          "act": chain.activation, "ratio": ratio, "gain": chain.gain,
                          "basis": _rate_basis(chain, pred.batch),
                          "trigger": ctx.threshold(rule, "ratio_error" if error
                                                   else "ratio_warning")},
                  {**chain_evidence(chain, {"grad_ratio": ratio, "gain": chain.gain}),
                   "batch": pred.batch}, severity="error" if error else None)


@check("BNL202")
def residual_without_zero_init(ctx: Context, rule: Rule) -> Iterator[Hit]:
    branches = ctx.branches
    live = list({b.end.module: b.end for b in branches if b.end is not None and isinstance(
        getattr(b.end.obj, "weight", None), torch.Tensor) and not b.end.obj.weight.is_meta
        and bool(b.end.obj.weight.detach().abs().max() > 0)}.values())
    if not live:
        return
    pred = ctx.prediction
    zero = ctx.predict({bn.module: {"gamma2": 0.0} for bn in live})
    adds = [b.add for b in branches]
    growth, growth_zero = (safe_ratio(p.rms[adds[-1].name], p.rms[adds[0].name])
                           for p in (pred, zero))
    if not (math.isfinite(growth) and math.isfinite(growth_zero)) or growth_zero <= 0 \
            or growth < ctx.threshold(rule, "rms_growth") * growth_zero:
        return
    shown = ", ".join(bn.label for bn in live[:3]) + (", ..." if len(live) > 3 else "")
    yield Hit(live[0], {"n": len(live), "blocks": len(branches), "bns": shown,
                        "growth": growth, "growth_zero": growth_zero},
              {"predicted": {"forward_rms_ratio": growth, "grad_ratio": _number(pred.grad_ratio),
                             "zero_init": {"forward_rms_ratio": growth_zero,
                                           "grad_ratio": _number(zero.grad_ratio)}},
               "first_module": pred.first_module, "last_module": pred.last_module,
               "forward_first": adds[0].key, "forward_last": adds[-1].key,
               "batchnorms": [bn.label for bn in live]})


def _orthogonality(weight: torch.Tensor) -> float:
    """Spread of the singular values (std / mean): 0 for an orthogonal matrix."""
    s = torch.linalg.svdvals(weight.detach().double().reshape(weight.shape[0], -1))
    return float(s.std() / s.mean()) if s.numel() > 1 and s.mean() > 0 else 0.0


@check("BNL203")
def batchnorm_linear_stack(ctx: Context, rule: Rule) -> Iterator[Hit]:
    for chain in ctx.prediction.chains:
        if chain.kind != "batchnorm-linear":
            continue
        weights = [module_layer(ctx.graph, m).obj.weight for m in chain.modules]
        if any(w.is_meta or not all_finite(w) for w in weights):
            continue
        spread = max(_orthogonality(w) for w in weights)
        if spread <= ctx.threshold(rule, "orthogonal_spread"):
            continue
        growth = theory.bn_linear_growth(chain.blocks, orthogonal=False)
        if growth < ctx.threshold(rule, "growth_info"):
            continue
        warn = growth >= ctx.threshold(rule, "growth_warning")
        yield Hit(module_layer(ctx.graph, chain.first_module),
                  {"first": chain.first_module, "last": chain.last_module,
                   "blocks": chain.blocks, "spread": spread, "growth": growth},
                  chain_evidence(chain, {"grad_ratio": chain.grad_ratio * growth,
                                         "growth_over_orthogonal": growth}),
                  severity="warning" if warn else None)


def ideal_init(graph: ModelGraph, chain: Chain) -> dict[str, dict[str, float]] | None:
    """Overrides giving every layer of an unnormalised chain the variance-preserving init of the
    activation it feeds (:func:`bnlint.theory.activation_gain` over sqrt(fan_in), divided by
    any constant its output is multiplied by on the way, as in sin(30 x)), zero biases; the
    last layer, which feeds none, gets the first one's gain. None if the chain's activation is
    not modelled."""
    first, _ = activation_after(graph, module_layer(graph, chain.first_module))
    if first is None or first.kind not in theory.MODELLED_ACTIVATIONS:
        return None
    overrides = {}
    for name in chain.modules:
        layer = module_layer(graph, name)
        act, scale = activation_after(graph, layer)
        if act is None or act.kind not in theory.MODELLED_ACTIVATIONS:
            act, scale = first, 1.0
        if not scale:
            return None
        gain = theory.activation_gain(act.kind, activation_options(act)) / abs(scale)
        overrides[name] = {"weight2": gain * gain / fans(layer.obj.weight)[0], "bias2": 0.0}
    return overrides


def chain_activation(graph: ModelGraph, chain: Chain) -> Layer | None:
    """The activation the chain's first layer feeds."""
    return activation_after(graph, module_layer(graph, chain.first_module))[0]


@check("BNL204")
def deep_unnormalised_stack(ctx: Context, rule: Rule) -> Iterator[Hit]:
    pred = ctx.prediction
    below, above = ctx.threshold(rule, "ratio_below"), ctx.threshold(rule, "ratio_above")
    for chain in pred.chains:
        overrides = ideal_init(ctx.graph, chain) if chain.kind == "unnormalised" else None
        if overrides is None or not math.isfinite(chain.grad_ratio) \
                or below <= chain.grad_ratio <= above:
            continue  # as initialised, the stack is fine: nothing to report
        ideal = ctx.predict(overrides)
        grad_ratio = safe_ratio(ideal.layers[chain.first_module],
                                ideal.layers[chain.last_module])
        if not math.isfinite(grad_ratio) or below <= grad_ratio <= above:
            continue  # the init is the cause: BNL302
        error = not (ctx.threshold(rule, "error_below") <= grad_ratio
                     <= ctx.threshold(rule, "error_above"))
        act = chain_activation(ctx.graph, chain)
        init = theory.init_label(act.kind, activation_options(act))
        yield Hit(module_layer(ctx.graph, chain.first_module),
                  {"first": chain.first_module, "last": chain.last_module,
                   "blocks": chain.blocks, "act": chain.activation, "ratio": grad_ratio,
                   "now": chain.grad_ratio,
                   "way": "vanishes" if grad_ratio < below else "explodes", "init": init},
                  chain_evidence(chain, {"grad_ratio": chain.grad_ratio,
                                         "reference_init": {"grad_ratio": grad_ratio,
                                                            "init": init}}),
                  severity="error" if error else None)
