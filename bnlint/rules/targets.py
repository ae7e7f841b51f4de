"""Targets and dying-ReLU family (4xx) finders."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from ..discover.targets import Targets
from ..model.graph import Layer, ModelGraph
from ..model.stats import all_finite
from ..probing.stability import PLAIN
from .base import Context, Hit, check, heads_after_affine
from .catalog import Rule


def targets(ctx: Context) -> Targets | None:
    """The example targets, or just their spread when the config gives target-std."""
    if ctx.targets is None and ctx.config.target_std is not None:
        return Targets(None, ctx.config.target_std, "config target-std")
    return ctx.targets


def regression_targets(t: Targets | None) -> bool:
    """Whether the targets show a regression task: a spread from the config, or real values
    that are not all whole numbers (class labels)."""
    if t is None:
        return False
    return t.tensor is None or (t.tensor.is_floating_point()
                                and not bool((t.tensor == t.tensor.round()).all()))


@check("BNL401")
def relu_on_output(ctx: Context, rule: Rule) -> Iterator[Hit]:
    t = targets(ctx)
    regression = regression_targets(t)
    below = (float((t.tensor <= 0).float().mean()) if regression and t.tensor is not None
             else None)
    error = below is not None and below >= ctx.threshold(rule, "nonpositive_share")
    for act, layer in heads_after_affine(ctx.graph, "@relu"):
        note = ""
        if regression:
            note = (f" The targets ({t.source}, std {t.std:.3g}) are real-valued: this is a "
                    "regression head, and an output that dies cannot recover.")
        if error:
            note += (f" {below:.0%} of them are <= 0, which a ReLU output can never "
                     "predict.")
        yield Hit(act, {"act": act, "layer": layer, "regression": note},
                  {"output_layer": layer.label, "regression": regression,
                   "nonpositive_targets": below}, severity="error" if error else None)


def _output_layer(graph: ModelGraph) -> Layer | None:
    return next((x for x in reversed(graph.order) if x.is_("@affine")), None)


# Optimizers whose step per coordinate is at most about lr whatever the gradient's size: Adam's
# family (Kingma & Ba, arXiv:1412.6980, §2.1: |step| <~ lr; Adamax's §7.1: |step| <= lr) and
# Adagrad (lr g / sqrt(sum of g^2) <= lr). Left out: RMSprop, whose first steps are up to
# lr / sqrt(1 - alpha) (no bias correction), RAdam, whose first steps are lr times the momentum
# of the raw gradient, and Adadelta, whose step is not lr-sized.
LR_SIZED_STEPS = ("adam", "adamw", "adamax", "nadam", "adagrad")
# Activations whose outputs lie in [-1, 1].
UNIT_BOUNDED = ("Tanh", "Sigmoid", "Softsign", "Hardsigmoid", "Sin", "Cos")


def _bounded_features(graph: ModelGraph, layer: Layer) -> Layer | None:
    """The activation bounded by 1 whose output ``layer`` reads (through dropout), if any."""
    feeding = graph.prev(layer)
    while len(feeding) == 1 and feeding[0].is_("@dropout"):
        feeding = graph.prev(feeding[0])
    return feeding[0] if len(feeding) == 1 and feeding[0].kind in UNIT_BOUNDED else None


def _steps_to_reach(t: Targets, layer: Layer, lr: float) -> dict | None:
    """How many lr-sized steps the output layer ``layer``, reading features in [-1, 1], needs
    at least before its output can be as large as the targets' RMS: |output_j| <= ||W_j||_1 +
    |b_j| (its reach), and each step adds at most lr per weight and bias to that sum. None when
    the layer has no readable weight."""
    weight, bias = getattr(layer.obj, "weight", None), getattr(layer.obj, "bias", None)
    if not isinstance(weight, torch.Tensor) or weight.is_meta or weight.dim() < 2 \
            or not all_finite(weight):
        return None
    rows = weight.detach().double().reshape(weight.shape[0], -1)
    reach = rows.abs().sum(1)
    if isinstance(bias, torch.Tensor) and not bias.is_meta:
        reach = reach + bias.detach().double().abs()
    coords = rows.shape[1] + int(isinstance(bias, torch.Tensor))
    if t.tensor is None:
        rms = torch.tensor([t.std], dtype=torch.float64)
    else:
        y = t.tensor.detach().double()
        y = y.reshape(len(y), -1) if y.dim() else y.reshape(1, 1)
        rms = y.pow(2).mean(0).sqrt()
    if rms.numel() != reach.numel():  # a shape bnlint cannot pair: the largest against the lot
        rms, reach = rms.max().reshape(1), reach.max().reshape(1)
    steps = (rms - reach) / (lr * coords)
    j = int(steps.argmax())
    return {"steps": float(steps[j]), "rms": float(rms.max()), "reach": float(reach[j]),
            "coords": coords, "per_step": lr * coords}


@check("BNL402")
def target_scale(ctx: Context, rule: Rule) -> Iterator[Hit]:
    t = targets(ctx)
    layer = _output_layer(ctx.graph)
    if not regression_targets(t) or layer is None or not ctx.graph.layers("@activation"):
        return  # a linear model: the scale only conditions its loss (the lr rules judge that)
    relu = bool(ctx.graph.layers("@relu"))
    low, high = ctx.threshold(rule, "std_min"), ctx.threshold(rule, "std_max")
    opt = ctx.config.optimizer
    name = opt.name if opt is not None else None
    problems, effect, severity = [], "", None
    outside = f"the targets' std is {t.std:.3g} ({t.source}), outside [{low:g}, {high:g}]"
    if t.std < low and relu:
        problems.append(outside)
        effect = (" Small target variance makes ReLUs die more easily (Arnekvist et al., "
                  "arXiv:2005.06195).")
    elif t.std > high and (name is None or name in PLAIN):
        problems.append(outside)
        effect = (" The network starts with outputs of about unit scale, so the squared error "
                  "and its gradient grow with the targets' variance and std, and under "
                  f"{name or 'SGD (no optimizer in the config)'} the step grows with the "
                  "gradient: a learning rate that suits the hidden layers is too large at the "
                  "output.")
    elif name in LR_SIZED_STEPS and opt.lr:
        feature = _bounded_features(ctx.graph, layer)
        heads = {x.name for x in ctx.graph.heads()}
        far = (_steps_to_reach(t, layer, opt.lr)
               if feature is not None and layer.name in heads else None)
        if far is not None and far["rms"] > high and far["steps"] > 0:
            problems.append(f"the targets' RMS is {far['rms']:.3g} ({t.source}), and "
                            f"{layer.label} reads the outputs of {feature.what}, in [-1, 1], so "
                            f"its output can reach at most sum |w| + |b| = {far['reach']:.3g} "
                            "now")
            effect = (f" {name} moves each weight by at most about lr per step whatever the "
                      "gradient's size (Kingma & Ba, arXiv:1412.6980, §2.1; the SGD reading, "
                      "a step that grows with the error, does not hold), so that bound grows "
                      "by at most "
                      f"{opt.lr:g} x {far['coords']} = {far['per_step']:.3g} per step: the "
                      f"output needs at least {far['steps']:.3g} steps to reach the targets' "
                      "scale (bnlint is not told how long you train).")
            severity = "info"
    if t.tensor is not None and t.tensor.dim() == 2 and t.tensor.shape[1] > 1:
        scales = t.tensor.float().std(dim=0)
        spread = float(scales.max() / scales.min().clamp_min(1e-30))
        if spread > ctx.threshold(rule, "scale_ratio"):
            problems.append(f"its {t.tensor.shape[1]} outputs' stds differ {spread:.3g}x "
                            f"({float(scales.min()):.3g} to {float(scales.max()):.3g}), so "
                            "the largest dominate the loss")
            severity = None
    if not problems:
        return
    momentum = opt is not None and (opt.momentum or 0) > 0 and t.std < low
    stronger = (f" With momentum ({opt.momentum:g} in the config) it is worse: momentum drives "
                "parameters into the dying regions, and a 4x32 ReLU MLP trained with SGD and "
                "momentum on targets of std 7e-4 ended with a relative MSE of 2 to 2.6, against "
                "about 0 at std 0.7 (bnlint's measurements, docs/SCIENCE.md §3 and "
                "bench/calibration/papers.py)."
                if momentum else "")
    snippet = ("mean, std = y.mean(0), y.std(0)  # per output, over the training set's "
               "targets; train on (y - mean) / std, predict with model(x) * std + mean")
    yield Hit(layer, {"layer": layer, "problems": "; ".join(problems), "effect": effect,
                      "momentum": stronger, "snippet": snippet,
                      "network": "a ReLU network" if relu else "the model"},
              {"targets_std": t.std, "source": t.source, "momentum": momentum,
               "problems": problems, "optimizer": name}, severity=severity)


def distinct_examples(inputs: tuple) -> int:
    """How many different examples the first input holds (copies of one image are one)."""
    x = inputs[0] if inputs else None
    if not isinstance(x, torch.Tensor) or not x.dim() or not x.shape[0]:
        return 0
    return int(torch.unique(x.detach().reshape(x.shape[0], -1).float(), dim=0).shape[0])


POOLING = ("AdaptiveAvgPool*", "AdaptiveMaxPool*", "Mean")


def _after_pooling(graph: ModelGraph) -> set[str]:
    """Layers downstream of a pooling that shrinks each sample (a squeeze-excitation branch, a
    classifier head). Pooled random inputs barely differ between samples, so a unit there is
    off for all of them or none: 'dead for every example' says nothing about real data."""
    found: set[str] = set()
    for layer in graph.order:
        shrinks = any(layer.is_(spec) for spec in POOLING) and any(
            src.shape and layer.shape and math.prod(layer.shape[1:]) < math.prod(src.shape[1:])
            for src in graph.prev(layer))
        if shrinks or any(src.name in found for src in graph.prev(layer)):
            found.add(layer.name)
    return found


@check("BNL403")
def dead_relus(ctx: Context, rule: Rule) -> Iterator[Hit]:
    if not ctx.weights_readable:
        return
    batch = distinct_examples(ctx.inputs)
    needed = ctx.threshold(rule, "min_batch" if ctx.synthetic_inputs else "min_batch_data")
    if batch < needed:
        if ctx.graph.layers("@relu"):
            ctx.notes.append(
                f"BNL403 not judged: the example batch has {batch} distinct example(s), and "
                f"dead units need at least {needed:g} (a unit that fires on 1 input in 10 "
                f"looks dead on {batch} with probability {0.9 ** batch:.0%}); give "
                "example_inputs() a larger batch")
        return
    measured = {x.name: x.dead for x in ctx.graph.layers("@relu") if x.dead is not None}
    pooled = _after_pooling(ctx.graph) if ctx.synthetic_inputs else set()
    layers = [x for x in ctx.graph.layers("@relu") if x.name in measured and x.name not in pooled]
    units = {x.name: x.shape[1] if x.shape and len(x.shape) > 1 else 1 for x in layers}
    total = sum(units.values())
    if not total:
        return
    dead = sum(float(measured[x.name]) * units[x.name] for x in layers) / total
    if dead < ctx.threshold(rule, "dead_fraction"):
        return
    pred = ctx.prediction.dead
    predicted = sum(pred.get(x.name, 0.0) * units[x.name] for x in layers) / total
    if not math.isfinite(predicted):
        predicted = None
    worst = max(layers, key=lambda x: float(measured[x.name]))
    error = dead >= ctx.threshold(rule, "dead_fraction_error")
    said = ("bnlint's prediction from the init was " + f"{predicted:.0%}" if predicted is not None
            else "bnlint could not predict it from the init")
    yield Hit(worst, {"dead": dead, "layers": len(layers), "batch": batch,
                      "worst": worst.label, "worst_dead": float(measured[worst.name]),
                      "prediction": said, "chance": 0.5 ** batch},
              {"predicted": {"dead_fraction": predicted},
               "example_batch": {"dead_fraction": dead, "batch": batch,
                                 "layers": {x.label: float(measured[x.name]) for x in layers}},
               "relu_units": {x.name: units[x.name] for x in layers}},
              severity="error" if error else None)
