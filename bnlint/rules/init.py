"""Initialisation family (3xx): rules that read the weights as they are. On the meta device
there are no values to read: those rules (and the others that read weights) skip, and BNL300
says so once."""

from __future__ import annotations

import math
import operator
import statistics
from collections.abc import Iterator

import torch
from torch import nn

from ..discover import checkpoints
from ..model import sites
from ..model.graph import Layer, ModelGraph
from ..model.stats import all_finite
from ..predict import theory
from ..predict.flow import activation_after, activation_options, fans, safe_ratio
from .base import Context, Hit, check
from .catalog import Rule
from .depth import chain_activation, chain_evidence, ideal_init, module_layer

_PASS = ("@transparent", "@dropout", "MaxPool*", "AvgPool*", "AdaptiveAvgPool*")


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
    if ctx.weights_readable:
        return
    meta = next((x for x in ctx.graph.order if x.obj is not None and any(
        t.is_meta for t in (*x.obj.parameters(), *x.obj.buffers()))), None)
    skipped = [c for c, r in ctx.catalog.items() if r.reads_weights and ctx.config.enabled(c)]
    yield Hit(meta, {"skipped": ", ".join(skipped) or "none"}, {"skipped": skipped})


def activation_and_norm(graph: ModelGraph, layer: Layer) -> tuple[Layer | None, bool]:
    """The activation an affine layer feeds (through pass-through ops) and whether a norm makes
    its weight scale irrelevant: a norm before it, or after a scale-free ReLU-family one."""
    act = None
    for cur in graph.downstream(layer):
        if cur.is_("@norm"):
            return act, act is None or theory.is_homogeneous(act.kind)
        if cur.is_("@activation") and act is None:
            act = cur
        elif cur.is_("@affine") or not any(cur.is_(s) for s in _PASS):
            return act, False
    return act, False


def weight_gain2(weight: torch.Tensor) -> float:
    """fan_in E[w^2]: the weights' second moment per input, which sets a layer's gain."""
    return float(weight.detach().double().square().mean()) * fans(weight)[0]


def is_pytorch_default(gain2: float) -> bool:
    """Whether fan_in E[w^2] is PyTorch's default Linear/Conv init's 1/3, within 20% (the
    sampling spread of E[w^2] over 256 uniform weights is 6%)."""
    return abs(gain2 / theory.DEFAULT_WEIGHT_GAIN2 - 1) < 0.2


def branch_members(ctx: Context) -> set[str]:
    """Nodes that lie on a residual branch only (not on the stream the skip carries)."""
    return {n for b in ctx.branches for n in b.members}


def _gates(graph: ModelGraph, act: Layer) -> bool:
    """Whether the activation's output multiplies another tensor (a squeeze-excitation or
    GLU-style gate) instead of feeding the next layer as its signal."""
    readers = graph.next(act)
    return bool(readers) and all(r.kind == "Mul" and r.tensor_inputs == 2 for r in readers)


def _read_weight(graph: ModelGraph, layer: Layer) -> torch.Tensor | None:
    """The weight a functional affine op reads from a parameter or buffer of the model
    (``F.linear(x, self.w)``, ``x @ self.w``), laid out as a layer's (out, in, ...): a matmul's
    second operand is (in, out)."""
    if layer.op != "function":
        return None
    for position, name in enumerate(graph.g.predecessors(layer.name)):
        source = graph.layer(name)
        if source.op != "attr" or not source.module:
            continue
        value = operator.attrgetter(source.module)(graph.model)
        if not isinstance(value, torch.Tensor) or value.dim() < 2:
            continue  # a bias
        if layer.kind == "MatMul":
            return value.mT if position == 1 and value.dim() == 2 else None
        return value
    return None


def affine_weights(graph: ModelGraph) -> Iterator[tuple[Layer, torch.Tensor | None]]:
    """Each affine layer with its weight: a module's (the first call of each), and the
    model's or a custom module's own parameters that functional ops read (each op)."""
    for layer in first_calls(graph, "@affine"):
        yield layer, getattr(layer.obj, "weight", None)
    for layer in graph.layers("@affine"):
        weight = _read_weight(graph, layer)
        if weight is not None:
            yield layer, weight


def _stack_end(graph: ModelGraph, act: Layer) -> Layer:
    """The last activation of the unnormalised stack ``act`` is in: forward along the one data
    path until a norm resets the scale, or the path forks, merges or ends."""
    last = act
    for cur in graph.downstream(act):
        if cur.is_("@norm") or cur.is_("@merge") or cur.op == "output":
            break
        if cur.is_("@activation"):
            last = cur
    return last


def _compound_gains(ctx: Context, off: dict[str, tuple[Layer, Layer, float]]) -> dict[str, float]:
    """Per off-scale layer (module -> (layer, its activation, the reference std)), the signal
    gain its stack compounds from all the off-scale layers in it: the predicted signal at the
    stack's last activation with the weights as they are, over the same with every off-scale
    layer at its reference std (:func:`bnlint.predict.flow.predict`); nan when it cannot be
    predicted."""
    overrides = {m: {"weight2": std * std, "bias2": 0.0} for m, (_, _, std) in off.items()}
    try:
        fixed = ctx.predict(overrides).signal
        actual = ctx.prediction.signal
    except Exception:  # noqa: BLE001 - no prediction: judge the layer alone, as before
        return {}
    gains = {}
    for module, (_, act, _) in off.items():
        end = _stack_end(ctx.graph, act).name
        gains[module] = safe_ratio(actual.get(end, math.nan), fixed.get(end, math.nan))
    return gains


@check("BNL301")
def weight_scale(ctx: Context, rule: Rule) -> Iterator[Hit]:
    if not ctx.weights_readable:
        return
    bound = ctx.threshold(rule, "std_ratio")
    in_branch = branch_members(ctx) if ctx.branches else set()
    found = []
    for layer, weight in affine_weights(ctx.graph):
        act, normalised = activation_and_norm(ctx.graph, layer)
        if weight is None or weight.dim() < 2 or weight.numel() < 2 or act is None \
                or normalised or act.kind not in theory.MODELLED_ACTIVATIONS \
                or _gates(ctx.graph, act) \
                or not all_finite(weight):  # non-finite weights: BNL304
            continue
        options = activation_options(act)
        gain = theory.activation_gain(act.kind, options)
        fan_in, fan_out = fans(weight)
        # He et al. (arXiv:1502.01852, section 2.2) derive the std from the forward pass
        # (fan-in) or the backward pass (fan-out), and either will do: both are the reference
        low, high = (gain / math.sqrt(f) for f in (max(fan_in, fan_out), min(fan_in, fan_out)))
        # PyTorch's default init is accepted too: its compound effect in deep stacks is BNL302's
        default = math.sqrt(theory.DEFAULT_WEIGHT_GAIN2 / fan_in)
        measured = float(weight.detach().double().std())
        if min(low, default) / bound <= measured <= high * bound:
            continue
        if measured < low and layer.name in in_branch:
            continue  # a residual branch scaled down on purpose: Fixup, SkipInit
        expected = low if measured < low else high
        found.append((layer, act, options, gain, fan_in, fan_out, default, measured, expected,
                      measured < low))
    if not found:
        return
    stack = ctx.threshold(rule, "stack_gain")
    # (a weight a functional op reads has no module to override: it is judged alone)
    compound = _compound_gains(ctx, {x[0].module: (x[0], x[1], x[8]) for x in found
                                     if x[0].module})
    for layer, act, options, gain, fan_in, fan_out, default, measured, expected, small in found:
        total = compound.get(layer.module, math.nan)
        if math.isfinite(total) and 1 / stack <= total <= stack:
            continue  # a shallow stack: the layers' scales compound to a tolerable gain
        fan = ("fan-in", fan_in) if expected == gain / math.sqrt(fan_in) else ("fan-out", fan_out)
        ratio = measured / expected
        init = theory.init_label(act.kind, options)
        end = _stack_end(ctx.graph, act)
        yield Hit(layer, {"layer": layer, "act": act.label, "measured": measured,
                          "expected": expected, "ratio": ratio, "fan": f"{fan[0]} of {fan[1]}",
                          "init": init, "gain": gain, "default": default,
                          "beyond": (f", and under 1/{bound:g} of PyTorch's default std "
                                     f"({default:.3g})") if small else "",
                          "stack": (f"; with the other off-scale layers of its stack, the "
                                    f"signal reaching {end.label} is predicted at {total:.2g}x "
                                    "what their reference inits give")
                          if math.isfinite(total) else ""},
                  {"measured_std": measured, "expected_std": expected, "init": init,
                   "fan_in": fan_in, "fan_out": fan_out, "gain": gain,
                   "predicted": {"std_ratio": ratio,
                                 **({"stack_gain": total} if math.isfinite(total) else {})}})


def _head_after(ctx: Context, chain) -> str | None:
    """The model's output layer (the one its gradient ratios end at, as AUTOTRAINER's first/last
    ratio does) when the chain's last activation feeds it directly; else None."""
    last = module_layer(ctx.graph, chain.last_module)
    act, _ = activation_after(ctx.graph, last)
    if act is None:
        return None
    for cur in ctx.graph.downstream(act):
        if cur.is_("@affine"):
            return cur.module if cur.module == ctx.prediction.last_module else None
        if not any(cur.is_(spec) for spec in _PASS):
            return None
    return None


@check("BNL302")
def stack_init_scale(ctx: Context, rule: Rule) -> Iterator[Hit]:
    if not ctx.weights_readable:
        return
    pred = ctx.prediction
    below, above = ctx.threshold(rule, "ratio_below"), ctx.threshold(rule, "ratio_above")
    low, high = ctx.threshold(rule, "signal_below"), ctx.threshold(rule, "signal_above")
    for chain in pred.chains:
        overrides = ideal_init(ctx.graph, chain) if chain.kind == "unnormalised" else None
        if overrides is None:
            continue
        ideal = ctx.predict(overrides).layers
        ideal_ratio = safe_ratio(ideal[chain.first_module], ideal[chain.last_module])
        if not below <= ideal_ratio <= above:
            continue  # the architecture, not the init, is the cause: BNL204
        first = module_layer(ctx.graph, chain.first_module)
        last = module_layer(ctx.graph, chain.last_module)
        if not pred.signal.get(first.name):
            continue  # no signal at the chain's start (zero weights): BNL303's case
        signal = pred.signal[last.name] / pred.signal[first.name]
        ratio, end = chain.grad_ratio, chain.last_module
        head = _head_after(ctx, chain)
        if head is not None and below <= ratio <= above:
            # the chain feeds the output layer: its gradient is where the model's ratio ends
            through = safe_ratio(pred.layers[chain.first_module], pred.layers[head])
            if not below <= safe_ratio(ideal[chain.first_module], ideal[head]) <= above:
                through = ratio  # at the reference init too: not the init's doing
            if math.isfinite(through) and not below <= through <= above:
                ratio, end = through, head
        if not (math.isfinite(ratio) and math.isfinite(signal)):
            continue
        if below <= ratio <= above and low <= signal <= high:
            continue
        # the layers' gain, measured: median fan_in E[w^2] (Var(w) fan_in at zero mean)
        scale = statistics.median(weight_gain2(module_layer(ctx.graph, m).obj.weight)
                                  for m in chain.modules)
        act = chain_activation(ctx.graph, chain)
        options = activation_options(act)
        # a constant between the layer and its activation (sin(30 x)) scales the pre-activation
        factor = abs(activation_after(ctx.graph, first)[1]) or 1.0
        init = (f"PyTorch's default init (kaiming_uniform_ with a = sqrt(5); measured E[w^2] = "
                f"1/({1 / scale:.2g} fan_in))" if is_pytorch_default(scale)
                else f"an init with E[w^2] = {scale:.2g}/fan_in (median, measured)")
        vanish = ratio < below or signal < low
        error = ratio < ctx.threshold(rule, "error_below") \
            or ratio > ctx.threshold(rule, "error_above")
        yield Hit(first, {"blocks": chain.blocks, "affine": first.kind,
                          "act": chain.activation, "first": chain.first_module,
                          "last": chain.last_module, "grad_last": end, "init": init,
                          "per_layer": theory.stack_gains(act.kind, scale * factor ** 2,
                                                          options)[0],
                          "reference": theory.init_label(act.kind, options),
                          "scaled": (f" over the x{factor:g} before {chain.activation}"
                                     if factor != 1 else ""),
                          "gain": theory.activation_gain(act.kind, options) / factor,
                          "way": "vanish" if vanish else "explode", "signal": signal,
                          "fwd": chain.forward_rms_ratio, "ratio": ratio},
                  chain_evidence(chain, {"grad_ratio": ratio,
                                         "forward_rms_ratio": chain.forward_rms_ratio,
                                         "signal_ratio": signal,
                                         "reference_init": {"grad_ratio": ideal_ratio}}),
                  severity="error" if error else None)


def is_output_layer(graph: ModelGraph, layer: Layer) -> bool:
    """An affine layer with no affine layer after it (the model's head)."""
    return layer.name not in graph.upstream_of("@affine")


def _feeds_merge(graph: ModelGraph, layer: Layer) -> bool:
    """Whether the layer's output reaches a merge directly or through multiplications by a
    constant or a parameter (Fixup's scalar multiplier, SkipInit's alpha) and dropout."""
    for cur in graph.downstream(layer):
        if cur.is_("@merge"):
            return True
        if not (cur.is_("@dropout") or (cur.kind in ("Mul", "Div") and cur.tensor_inputs == 1)):
            return False
    return False


@check("BNL303")
def symmetric_weights(ctx: Context, rule: Rule) -> Iterator[Hit]:
    if not ctx.weights_readable:
        return
    for layer in first_calls(ctx.graph, "@affine"):
        weight = getattr(layer.obj, "weight", None)
        if weight is None or weight.dim() < 2 or weight.shape[0] < 2 \
                or is_output_layer(ctx.graph, layer):
            continue
        rows = weight.detach().reshape(weight.shape[0], -1)
        if not (bool((rows[1] == rows[0]).all()) and bool((rows == rows[0]).all())):
            continue  # (the second row first: most weights differ there, at a row's cost)
        zero = not bool(rows.any())
        if zero and _feeds_merge(ctx.graph, layer):
            continue  # a zero-initialised residual branch end (Fixup) learns from the skip
        what = "all its weights are 0" if zero else \
            f"all its {weight.shape[0]} rows of weights are identical"
        yield Hit(layer, {"layer": layer, "what": what, "units": weight.shape[0]},
                  {"zero": zero, "units": weight.shape[0]})


def _non_finite(module: nn.Module) -> dict[str, int]:
    """The module's own floating parameters and buffers holding NaN/Inf: name -> how many."""
    tensors = (*module.named_parameters(recurse=False), *module.named_buffers(recurse=False))
    return {n: int((~torch.isfinite(t)).sum()) for n, t in tensors
            if t.is_floating_point() and not all_finite(t)}


def _owner_layer(name: str, module: nn.Module, tensors: list[str], graph: ModelGraph) -> Layer:
    """The finding's layer for a module that is not a layer of the graph (the model itself, or
    a custom module fx traced through): named by the module (the model's own tensor, for the
    model), located at the forward line that reads one of its tensors, else where the module
    was built (else, for the model, at its own line)."""
    qualified = [f"{name}.{t}" if name else t for t in tensors]
    read = next((graph.find(q) for q in qualified if graph.find(q) is not None), None)
    key = name or qualified[0]
    return Layer(key, "attr", type(module).__name__, module=key,
                 site=read.site if read is not None else sites.site_of(module), key=key)


@check("BNL304")
def non_finite_weights(ctx: Context, rule: Rule) -> Iterator[Hit]:
    """Every parameter and buffer of the model: those of its layers, and those the model or a
    custom module owns itself (a learned temperature, a scale, a positional embedding)."""
    if not ctx.weights_readable \
            or all(all_finite(t) for t in ctx.tensors if t.is_floating_point()):
        return  # (the search by module, below, only when some tensor is not finite)
    for name, module in ctx.model.named_modules():
        bad = _non_finite(module)
        if not bad:
            continue
        layer = ctx.graph.find(name)
        if layer is not None and layer.obj is module:
            owner, shown = layer.what, list(bad)
        else:
            shown = [f"{name}.{t}" if name else t for t in bad]
            owner = f"{name or 'the model'} ({type(module).__name__})"
            layer = _owner_layer(name, module, list(bad), ctx.graph)
        yield Hit(layer, {"layer": layer, "owner": owner, "tensors": ", ".join(shown),
                          "count": sum(bad.values())},
                  {"non_finite": dict(zip(shown, bad.values()))})


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
    elif obj.eps > ctx.threshold(rule, "eps_published") and var > 0 \
            and math.sqrt(var / (var + obj.eps)) < ctx.threshold(rule, "eps_shrink"):
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
    if not ctx.weights_readable:
        return
    branch_ends = {b.end.module for b in ctx.branches if b.end is not None}
    for bn in first_calls(ctx.graph, "@batchnorm"):
        problems, error = _batchnorm_problems(ctx, rule, bn, branch_ends)
        if problems:
            yield Hit(bn, {"bn": bn, "problems": "; ".join(problems)},
                      {"problems": problems}, severity="error" if error else None)


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters(recurse=False))


_POWER_STEPS = 30


def spectral_edge_ratio(weight: torch.Tensor) -> float:
    """The weight matrix's (out x fan-in) largest singular value over the edge of an i.i.d.
    random matrix's spectrum with the same RMS s, s (sqrt(out) + sqrt(fan-in)) (Bai-Yin): about
    1 or below at a random init, well above where training grew a direction (arXiv:1810.01075)."""
    w = weight.detach().reshape(weight.shape[0], -1).float()
    rms = float(w.pow(2).mean().sqrt())
    if rms == 0:
        return math.inf
    edge = rms * (math.sqrt(w.shape[0]) + math.sqrt(w.shape[1]))
    # power iteration on W^T W (a few matrix-vector products, not an SVD): it approaches the
    # top singular value from below, fast when training grew one far above the rest
    v = torch.randn(w.shape[1], generator=torch.Generator().manual_seed(0)).to(w.device)
    for _ in range(_POWER_STEPS):
        v = w.T @ (w @ v)
        v = v / v.norm().clamp_min(1e-30)
    return float((w @ v).norm()) / edge


@check("BNL306")
def frozen_at_random_init(ctx: Context, rule: Rule) -> Iterator[Hit]:
    if not ctx.weights_readable:
        return
    params = list(ctx.model.parameters())
    whole = bool(params) and not any(p.requires_grad for p in params)
    feeding = ctx.graph.upstream(lambda after: after.is_("@affine") and after.obj is not None
                                 and _trainable(after.obj))
    bound = ctx.threshold(rule, "random_edge")
    frozen = []
    for layer in first_calls(ctx.graph, "@affine"):
        weight = getattr(layer.obj, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() < 2 or _trainable(layer.obj) \
                or not all_finite(weight) \
                or not (whole or layer.name in feeding):
            continue
        ratio = spectral_edge_ratio(weight)
        if ratio > bound:
            return  # a direction grown by training: these may be trained weights, frozen
        frozen.append((layer, ratio))
    if not frozen or (ctx.source and checkpoints.loading_call(ctx.source)):
        return  # a file that loads weights may freeze pretrained layers on purpose
    ratio = max(r for _, r in frozen)
    after = ("no parameter of the model is trainable, so nothing it computes can learn"
             if whole else "trainable layers after them learn on the random features they "
             "pass on, and the frozen layers never adapt to the task")
    yield Hit(frozen[0][0],
              {"first": frozen[0][0].label, "count": len(frozen), "ratio": ratio,
               "after": after},
              {"frozen": [x.module or x.name for x, _ in frozen], "whole_model": whole,
               "spectral_edge_ratio": {x.module or x.name: r for x, r in frozen}})
