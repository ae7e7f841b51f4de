"""Initialisation family (3xx): rules that read the weights as they are. On the meta device
there are no values to read: those rules (and the others that read weights) skip, and BNL300
says so once."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator

import torch
from torch import nn

from ..model.graph import Layer, ModelGraph
from ..predict import theory
from ..predict.flow import fans, predict, residual_branches, safe_ratio
from .base import Context, Hit, check
from .catalog import Rule
from .depth import chain_evidence, ideal_init, module_layer

_PASS = ("@transparent", "@dropout", "MaxPool*", "AvgPool*", "AdaptiveAvgPool*")


def readable(model: nn.Module) -> bool:
    """Whether the model's parameters and buffers hold values (not meta or lazy)."""
    return not any(t.is_meta or isinstance(t, nn.parameter.UninitializedTensorMixin)
                   for t in (*model.parameters(), *model.buffers()))


def first_calls(graph: ModelGraph, spec: str) -> list[Layer]:
    """The first call of each module of a kind (a module called twice is checked once)."""
    seen, out = set(), []
    for layer in graph.layers(spec):
        if layer.module and layer.obj is not None and layer.module not in seen:
            seen.add(layer.module)
            out.append(layer)
    return out


@check("BNL300")
def weights_not_readable(ctx: Context, rule: Rule) -> Iterator[Hit]:
    if readable(ctx.model):
        return
    meta = next((x for x in ctx.graph.order if x.obj is not None and any(
        t.is_meta for t in (*x.obj.parameters(), *x.obj.buffers()))), None)
    skipped = [c for c, r in ctx.catalog.items() if r.reads_weights and ctx.config.enabled(c)]
    yield Hit(meta, {"skipped": ", ".join(skipped) or "none"}, {"skipped": skipped})


def _activation_after(graph: ModelGraph, layer: Layer) -> tuple[Layer | None, bool]:
    """The activation an affine layer feeds (through pass-through ops) and whether a norm makes
    its weight scale irrelevant: a norm before it, or after a scale-free ReLU-family one."""
    cur, act = layer, None
    while True:
        readers = graph.next(cur)
        if len(readers) != 1:
            return act, False
        cur = readers[0]
        if cur.is_("@norm"):
            return act, act is None or (act.kind in theory.RECOMMENDED_INIT \
                and theory.RECOMMENDED_INIT[act.kind] == "he")
        if cur.is_("@activation") and act is None:
            act = cur
        elif cur.is_("@affine") or not any(cur.is_(s) for s in _PASS):
            return act, False


@check("BNL301")
def weight_scale(ctx: Context, rule: Rule) -> Iterator[Hit]:
    if not readable(ctx.model):
        return
    bound = ctx.threshold(rule, "std_ratio")
    for layer in first_calls(ctx.graph, "@affine"):
        weight = getattr(layer.obj, "weight", None)
        act, normalised = _activation_after(ctx.graph, layer)
        if weight is None or weight.dim() < 2 or weight.numel() < 2 or act is None \
                or normalised or act.kind not in theory.RECOMMENDED_INIT \
                or not bool(torch.isfinite(weight).all()):  # non-finite weights: BNL304
            continue
        scheme = theory.RECOMMENDED_INIT[act.kind]
        fan_in, fan_out = fans(weight)
        slope = (act.attr("negative_slope") or 0.0) if act.kind == "LeakyReLU" else 0.0
        expected = theory.init_std(scheme, fan_in, fan_out, slope)
        measured = float(weight.detach().double().std())
        ratio = measured / expected
        if 1 / bound <= ratio <= bound:
            continue
        yield Hit(layer, {"layer": layer, "act": act.label, "measured": measured,
                          "expected": expected, "ratio": ratio, "fan_in": fan_in,
                          "init": theory.INIT_NAMES[scheme]},
                  {"measured_std": measured, "expected_std": expected, "init": scheme,
                   "fan_in": fan_in, "predicted": {"std_ratio": ratio}})


@check("BNL302")
def stack_init_scale(ctx: Context, rule: Rule) -> Iterator[Hit]:
    if not readable(ctx.model):
        return
    pred = ctx.prediction
    for chain in pred.chains:
        if chain.kind != "unnormalised" or theory.RECOMMENDED_INIT.get(chain.activation) != "he":
            continue
        ideal = predict(ctx.graph, pred.batch, ctx.inputs,
                        overrides=ideal_init(ctx.graph, chain)).layers
        ideal_ratio = safe_ratio(ideal[chain.first_module], ideal[chain.last_module])
        if not ctx.threshold(rule, "ratio_below") <= ideal_ratio \
                <= ctx.threshold(rule, "ratio_above"):
            continue  # the architecture, not the init, is the cause: BNL204
        first = module_layer(ctx.graph, chain.first_module)
        last = module_layer(ctx.graph, chain.last_module)
        if not pred.signal.get(first.name):
            continue  # no signal at the chain's start (zero weights): BNL303's case
        signal = pred.signal[last.name] / pred.signal[first.name]
        ratio = chain.grad_ratio
        if not (math.isfinite(ratio) and math.isfinite(signal)):
            continue
        low, high = ctx.threshold(rule, "signal_below"), ctx.threshold(rule, "signal_above")
        if ratio >= ctx.threshold(rule, "ratio_below") and low <= signal <= high:
            continue
        weights = [module_layer(ctx.graph, m).obj.weight.detach().double()
                   for m in chain.modules]
        # fan_in E[w^2]: the weights' second moment, which sets the gain (Var(w) at zero mean)
        scale = statistics.median(float(w.square().mean()) * fans(w)[0] for w in weights)
        slope = next((x.attr("negative_slope") or 0.0 for x in ctx.graph.next(first)
                      if x.kind == "LeakyReLU"), 0.0)
        default = abs(scale * 3 - 1) < 0.2
        init = (f"PyTorch's default init (kaiming_uniform_ with a = sqrt(5); measured E[w^2] = "
                f"1/({1 / scale:.2g} fan_in))" if default
                else f"an init with E[w^2] = {scale:.2g}/fan_in (median, measured)")
        error = ratio < ctx.threshold(rule, "error_below")
        yield Hit(first, {"blocks": chain.blocks, "affine": first.kind,
                          "act": chain.activation, "first": chain.first_module,
                          "last": chain.last_module, "init": init,
                          "per_layer": theory.relu_stack_gain(scale, 1.0, slope),
                          "signal": signal,
                          "fwd": chain.forward_rms_ratio, "ratio": ratio},
                  chain_evidence(chain, {"grad_ratio": ratio,
                                         "forward_rms_ratio": chain.forward_rms_ratio,
                                         "signal_ratio": signal}),
                  severity="error" if error else None)


def _is_output_layer(graph: ModelGraph, layer: Layer) -> bool:
    return layer.name not in graph.upstream_of("@affine")


@check("BNL303")
def symmetric_weights(ctx: Context, rule: Rule) -> Iterator[Hit]:
    if not readable(ctx.model):
        return
    for layer in first_calls(ctx.graph, "@affine"):
        weight = getattr(layer.obj, "weight", None)
        if weight is None or weight.dim() < 2 or weight.shape[0] < 2 \
                or _is_output_layer(ctx.graph, layer):
            continue
        rows = weight.detach().reshape(weight.shape[0], -1)
        if not bool((rows == rows[0]).all()):
            continue
        zero = not bool(rows.any())
        if zero and any(r.is_("@merge") for r in ctx.graph.next(layer)):
            continue  # a zero-initialised residual branch end (Fixup) learns from the skip
        what = "all its weights are 0" if zero else \
            f"all its {weight.shape[0]} rows of weights are identical"
        yield Hit(layer, {"layer": layer, "what": what, "units": weight.shape[0]},
                  {"zero": zero, "units": weight.shape[0]})


@check("BNL304")
def non_finite_weights(ctx: Context, rule: Rule) -> Iterator[Hit]:
    if not readable(ctx.model):
        return
    for name, module in ctx.model.named_modules():
        tensors = (*module.named_parameters(recurse=False), *module.named_buffers(recurse=False))
        bad = {n: int((~torch.isfinite(t)).sum()) for n, t in tensors
               if t.is_floating_point() and not bool(torch.isfinite(t).all())}
        layer = ctx.graph.find(name)
        if bad and layer is not None:
            yield Hit(layer, {"layer": layer, "tensors": ", ".join(bad),
                              "count": sum(bad.values())}, {"non_finite": bad})


def _batchnorm_problems(ctx: Context, rule: Rule, bn: Layer,
                        branch_ends: set[str]) -> tuple[list[str], bool]:
    obj, problems, error = bn.obj, [], False
    momentum = obj.momentum
    if momentum == 0:
        problems.append("momentum=0: its running statistics never move from their start "
                        "(mean 0, variance 1), and eval mode normalises with those")
    elif momentum is not None and momentum > ctx.threshold(rule, "momentum_max"):
        problems.append(f"momentum={momentum:g}: PyTorch keeps 1 - momentum of the running "
                        f"estimate per batch, so it follows about the last {1 / momentum:.1f} "
                        "batches (momentum=0.9 is Keras' convention; PyTorch's default is 0.1)")
    source = ctx.graph.prev(bn)
    var = ctx.prediction.signal.get(source[0].name, 0.0) ** 2 if source else 0.0
    if obj.eps <= 0:
        problems.append(f"eps={obj.eps:g}: a channel with zero batch variance divides by 0")
    elif var > 0 and math.sqrt(var / (var + obj.eps)) < ctx.threshold(rule, "eps_shrink"):
        problems.append(f"eps={obj.eps:g} against a predicted batch variance of {var:.3g} at "
                        f"its input: it outputs {math.sqrt(var / (var + obj.eps)):.2f}x the unit "
                        "variance it should (sqrt(var / (var + eps)))")
    gamma = obj.weight.detach().double() if obj.weight is not None else None
    beta = obj.bias.detach().double() if obj.bias is not None else None
    if gamma is not None and not bool(gamma.any()) and bn.module not in branch_ends:
        problems.append("gamma is 0 in every channel and this is not the last BatchNorm of a "
                        "residual branch: it outputs beta whatever the input, and passes no "
                        "gradient back")
        error = True
    elif gamma is not None and beta is not None and all(
            r.kind in ("ReLU", "ReLU6") for r in ctx.graph.next(bn)) and ctx.graph.next(bn):
        ratio = beta / gamma.abs().clamp_min(1e-12)
        off = float((0.5 * torch.erfc(ratio / math.sqrt(2))).mean())
        if off > ctx.threshold(rule, "relu_off"):
            problems.append(f"beta/|gamma| switches the ReLU after it off for {off:.0%} of "
                            "inputs (Phi(-beta/|gamma|), averaged over channels)")
    return problems, error


@check("BNL305")
def batchnorm_parameters(ctx: Context, rule: Rule) -> Iterator[Hit]:
    if not readable(ctx.model):
        return
    branch_ends = {bn.module for _, bn in residual_branches(ctx.graph) if bn is not None}
    for bn in first_calls(ctx.graph, "@batchnorm"):
        problems, error = _batchnorm_problems(ctx, rule, bn, branch_ends)
        if problems:
            yield Hit(bn, {"bn": bn, "problems": "; ".join(problems)},
                      {"problems": problems}, severity="error" if error else None)
