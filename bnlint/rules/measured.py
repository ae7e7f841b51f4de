"""Measured family (9xx): what the probe saw in a short forward/backward and training run."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

from ..measurement import ProbeStep
from ..model.ops import GROUPS
from ..probing.run import OWN_LOSS
from . import zeros
from .base import Context, Hit, check
from .catalog import Rule
from .targets import regression_targets, targets


def _history(ctx: Context, name: str) -> tuple[float | None, float | None]:
    values = [getattr(h, name) for h in ctx.probe.history if getattr(h, name) is not None]
    return (values[0], values[-1]) if values else (None, None)


def explosion_course(history: Sequence[ProbeStep], threshold: float) -> str:
    """How the first/last gradient ratio behaved over the probe's steps against ``threshold``:
    'none' (never above), 'temporal' (above at first, below at the end), 'persistent' (above
    at both ends), 'late' (above only after the start) or 'unknown' (above at initialisation,
    with no measurement after a training step to tell whether it lasts)."""
    ratios = [h.grad_ratio for h in history if h.grad_ratio is not None]
    if not ratios:
        return "none"
    above = [r > threshold for r in ratios]
    if above[0] and len(ratios) == 1:
        return "unknown"
    if above[0]:
        return "persistent" if above[-1] else "temporal"
    return "late" if any(above) else "none"


def explosion_threshold(rules: dict[str, Rule], config) -> float:
    """The first/last gradient ratio that counts as an explosion: BNL901's ``ratio_warning``
    (AUTOTRAINER's 70), with the config's override."""
    return rules["BNL901"].threshold("ratio_warning", config.thresholds)


def _lr_configured(ctx: Context) -> bool:
    """Whether the config names the lr the probe trained at (else it ran its default, which
    the user may not train with)."""
    opt = ctx.config.optimizer
    return opt is not None and opt.lr is not None


def _shown(value: float | None, spec: str, unit: str = "") -> str:
    """A measured number for a message, or "n/a" where the probe has none."""
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _at(step: ProbeStep, steps: int) -> str:
    return "at initialisation" if step.step == 0 else f"after {step.step} training steps" \
        if step.step == steps else f"at training step {step.step}"


# Norms that remove a per-channel constant (BatchNorm over the batch, InstanceNorm over each
# sample): the layer before them is scale-invariant whatever its bias. Others (LayerNorm,
# GroupNorm, RMSNorm) mix channels, so only a layer without a bias is.
_BIAS_FREE_NORMS = GROUPS["batchnorm"] | {"InstanceNorm", "InstanceNorm1d", "InstanceNorm2d",
                                          "InstanceNorm3d"}
_SCALE_INVARIANT_NORMS = _BIAS_FREE_NORMS | {"LayerNorm", "GroupNorm", "RMSNorm"}


def normalised_by(ctx: Context, name: str | None) -> str | None:
    """The norm layer that alone reads affine layer ``name``'s output (through ops that only
    move values), when the loss does not change as that layer's weight is scaled: its weight
    gradient is then orthogonal to the weight and scales as 1/|w| (van Laarhoven,
    arXiv:1706.05350), else None."""
    layer = ctx.graph.find(name)
    if layer is None:
        return None
    readers = ctx.graph.next(layer)
    if len(readers) != 1 or readers[0].kind not in _SCALE_INVARIANT_NORMS:
        return None
    norm = readers[0]
    if norm.kind in _BIAS_FREE_NORMS:
        return norm.what
    module = layer.obj
    if module is None and (owner := ctx.graph.affine_owner(layer)):
        module = ctx.model.get_submodule(owner)
    return norm.what if module is not None and getattr(module, "bias", None) is None else None


@check("BNL901")
def measured_explosion(ctx: Context, rule: Rule) -> Iterator[Hit]:
    """At initialisation (the temporal explosion of arXiv:2304.11692), or one that grew during
    the probe's steps and was still there at the last. A first layer whose output a norm
    layer reads is judged after the steps only: its large gradient at initialisation grows
    its weight's norm and so shrinks its own effective step (arXiv:1706.05350,
    arXiv:1812.03981)."""
    p = ctx.probe
    warning = ctx.threshold(rule, "ratio_warning")
    measured = [h for h in p.history if h.grad_ratio is not None] if p else []
    if not measured:
        return
    start, end = measured[0], measured[-1]
    norm = normalised_by(ctx, p.first_module) if start.step == 0 else None
    if start.step == 0 and start.grad_ratio > warning and norm is None:
        worst, when = start, "at initialisation"
    elif end.step > 0 and end.grad_ratio > warning:  # it was still there after the steps
        worst = max((h for h in measured if h.step > 0 or norm is None),
                    key=lambda h: h.grad_ratio)
        when = f"{_at(worst, p.steps)} (it was {start.grad_ratio:.3g}x at initialisation)"
    else:
        if end is start and start.grad_ratio > warning:  # norm-fed, and no step measured
            ctx.notes.append(
                f"BNL901 not judged: the first/last gradient ratio was {start.grad_ratio:.3g}x "
                f"at initialisation, but {p.first_module}'s output is normalised by {norm}, so "
                "its gradient shrinks as its weight grows in training (arXiv:1706.05350); "
                "whether the ratio stays above "
                f"{warning:g} shows after a training step, and the probe measured none")
        return
    corr0, corr1 = _history(ctx, "correlation")
    severity = "error" if worst.grad_ratio >= ctx.threshold(rule, "ratio_error") else None
    explosion = explosion_course(p.history, warning)
    final_ratio = end.grad_ratio if end.step > 0 else None
    if p.steps and final_ratio is not None:
        verb = {"temporal": "it had fallen to", "persistent": "it was still"}.get(explosion,
                                                                                "it was")
        course = (f"after {p.steps} training step{'s' if p.steps != 1 else ''} {verb} "
                  f"{final_ratio:.3g}x while the mean sample correlation went "
                  f"{_shown(corr0, '.2f')} -> {_shown(corr1, '.2f')}")
    elif p.steps:
        course = f"after {p.steps} training steps the ratio could not be measured"
    else:
        course = "the probe ran no training step, so whether it lasts was not measured"
    yield Hit(ctx.graph.find(p.first_module),
              {"ratio": worst.grad_ratio, "first": p.first_module, "last": p.last_module,
               "device": p.device, "course": course, "when": when},
              {"measured": {"grad_ratio": p.grad_ratio, "peak_grad_ratio": worst.grad_ratio,
                            "peak_step": worst.step, "final_grad_ratio": final_ratio,
                            "correlation": [corr0, corr1]},
               "first_module": p.first_module, "last_module": p.last_module,
               "explosion": explosion}, severity=severity)


@check("BNL902")
def measured_vanishing(ctx: Context, rule: Rule) -> Iterator[Hit]:
    """Judged at the last step the probe measured: a first layer that gets no gradient at
    initialisation but does after a step (a zero-initialised head, Fixup) is not vanishing."""
    p = ctx.probe
    if p is None or p.first_module is None:
        return
    measured = [h for h in p.history if h.grad_ratio is not None and h.first_grad is not None]
    if not measured:
        return
    below, grad_below = ctx.threshold(rule, "ratio_below"), ctx.threshold(rule, "first_grad_below")

    def vanishing(h: ProbeStep) -> bool:
        return h.grad_ratio < below and h.first_grad < grad_below

    start, end = measured[0], measured[-1]
    if not vanishing(end):
        return
    if end.step == 0 and end.first_grad == 0 and _zero_weight(ctx, p.last_module):
        ctx.notes.append(
            f"BNL902 not judged: the output layer {p.last_module} is initialised to zero, so "
            "every earlier layer's gradient is exactly 0 at initialisation (W^T g = 0) whatever "
            "the depth; whether it vanishes shows after a training step, and the probe measured "
            "none")
        return
    if end is start:
        when = _at(end, p.steps) + ("" if p.steps == 0 else
                                    ", the last step the probe measured")
    elif vanishing(start):
        when = f"at initialisation and still {_at(end, p.steps)}"
    else:
        when = f"{_at(end, p.steps)} (at initialisation it was {start.grad_ratio:.2g}x)"
    yield Hit(ctx.graph.find(p.first_module),
              {"ratio": end.grad_ratio, "first": p.first_module, "last": p.last_module,
               "grad": end.first_grad, "device": p.device, "when": when},
              {"measured": {"grad_ratio": end.grad_ratio, "first_weight_grad": end.first_grad,
                            "step": end.step, "initial_grad_ratio": start.grad_ratio},
               "first_module": p.first_module, "last_module": p.last_module})


def _named(layer) -> str:
    """A layer by its module path, or by its key for a functional op (``stem:conv2d``)."""
    return layer.module or layer.key


def _zero_weight(ctx: Context, module: str) -> bool:
    """Whether ``module``'s weight holds values, all of them zero (a zero-initialised head:
    torchvision's ViT, Fixup's classifier, arXiv:1901.09321)."""
    layer = ctx.graph.find(module)
    return layer is not None and zeros.zero_tensor(getattr(layer.obj, "weight", None))


def _note(ctx: Context, layers: list[str], text: str) -> None:
    """Adds ``text`` to the notes when ``layers`` is not empty, naming the first three."""
    if layers:
        shown = ", ".join(layers[:3]) + (f" and {len(layers) - 3} more" if len(layers) > 3
                                         else "")
        ctx.notes.append(text.format(n=len(layers), shown=shown))


def chance_of_dead(dead: int, units: int) -> float:
    """P(X >= ``dead``) for X ~ Binomial(``units``, 1/2): the most probable a healthy layer
    shows ``dead`` or more dead units by chance. A unit whose weights and bias are drawn from a
    sign-symmetric law is dead (w.x + b <= 0 on every input) as often as it is never negative
    (the draw -w, -b), two disjoint events, so given its inputs it is dead with probability at
    most 1/2, and its layer's rows are drawn independently."""
    return sum(math.comb(units, k) for k in range(dead, units + 1)) / 2 ** units


@check("BNL903")
def measured_dead_relus(ctx: Context, rule: Rule) -> Iterator[Hit]:
    """Judged at initialisation and after the last step, except that a layer whose input is
    exactly zero at initialisation because a zero-initialised branch end feeds it (an SE gate
    after an NF-Net's zero-gain conv, arXiv:2102.06171) is judged after the steps only. A
    dead share, at initialisation or after the steps, counts only when chance would rarely
    give that many dead units (:func:`chance_of_dead` below ``dead_significance`` shared among
    the model's ReLU layers): a squeeze-excitation gate of 8 units is 6/8 dead by chance 14%
    of the time. Units the steps kill are judged by their rise (:func:`_dying_during_probe`)."""
    p = ctx.probe
    if p is None:
        return
    limit = ctx.threshold(rule, "dead_fraction")
    relus = [x for x in p.layers if "dead" in x.init]
    level = ctx.threshold(rule, "dead_significance") / max(len(relus), 1)  # Bonferroni
    flagged = {x.key: ctx.graph.find(x.key) for x in relus
               if max(x.init["dead"], x.final.get("dead", 0.0)) >= limit}
    fed = zeros.starved(ctx.graph, [layer.name for layer in flagged.values() if layer])
    bad, excused, few = [], [], []
    for x in relus:
        layer = flagged.get(x.key)
        source = fed.get(layer.name) if layer is not None else None
        judged = [x.final.get("dead", 0.0)] if p.steps else []
        if source is None:
            judged.append(x.init["dead"])
        elif x.init["dead"] >= limit:
            excused.append(f"{x.label} (fed by {_named(ctx.graph.layer(source))})")
        chance = {d: chance_of_dead(round(d * x.units), x.units) for d in judged if d >= limit}
        heavy = [d for d, c in chance.items() if c <= level]
        if chance and not heavy:
            d = max(chance)
            few.append(f"{x.label} ({round(d * x.units)} of {x.units} units, "
                       f"chance {chance[d]:.2g})")
        if heavy:
            bad.append((max(heavy), x, source is None and x.init["dead"] in heavy))
    _note(ctx, excused, "BNL903 not judged at initialisation on {n} ReLU layer(s), {shown}: "
          "their input is exactly zero there because a zero-initialised layer that ends a "
          "residual branch feeds them, not because they died"
          + ("; judged after the probe's steps" if p.steps
             else ", and the probe ran no training step"))
    _note(ctx, few, f"BNL903 does not count the dead share of {{n}} ReLU layer(s) with "
          f"{limit:.0%} or more of their units dead, {{shown}}: too few units for that count "
          "to exceed chance (a healthy unit is dead with probability up to 1/2; a layer counts "
          f"when the chance of as many dead is at most {level:.2g}, "
          f"{ctx.threshold(rule, 'dead_significance'):g} shared among {len(relus)} ReLU "
          "layer(s)); units that die during the probe's steps are judged by their rise")
    if not bad:
        yield from _dying_during_probe(ctx, rule)
        return
    worst_fraction, worst, at_init = max(bad, key=lambda item: item[0])
    when = "at initialisation" if at_init else f"after {p.steps} training steps"
    configured = _lr_configured(ctx)
    yield Hit(ctx.graph.find(worst.key),
              {"fraction": worst_fraction, "layer": worst.label, "when": when,
               "count": len(bad), "device": p.device, "judged": f"at or above {limit:.0%}",
               "cause": "" if at_init else _died_in_steps(ctx, configured)},
              {"measured": {"dead_fraction": worst_fraction},
               "layers": {x.label: d for d, x, _ in bad}},
              severity=None if at_init or configured else "info")


def _died_in_steps(ctx: Context, configured: bool) -> str:
    """Why units the probe's steps killed are the lr's: at the configured lr a warning, at the
    probe's default (which the user may not train with, as BNL905) an info."""
    p = ctx.probe
    return (" Units that die while the probe trains point to steps too large for the layers "
            f"feeding them (the probe ran {p.optimizer['name']} at lr {p.optimizer['lr']:g}"
            + (")." if configured else ", its default: no optimizer in the config)."))


def _dying_during_probe(ctx: Context, rule: Rule) -> Iterator[Hit]:
    """BNL903's trajectory reading: ReLU layers whose dead fraction rose by ``dead_rise`` or
    more from initialisation to the probe's last step, units the training steps killed. Info
    only when the probe ran its default lr, which the user may not train with (as BNL905)."""
    p, bound = ctx.probe, ctx.threshold(rule, "dead_rise")
    configured = _lr_configured(ctx)
    rising = [(x.final["dead"] - x.init["dead"], x) for x in p.layers
              if "dead" in x.init and "dead" in x.final]
    rising = [(up, x) for up, x in rising if up >= bound]
    if not rising or not p.steps:
        return
    up, worst = max(rising, key=lambda item: item[0])
    yield Hit(ctx.graph.find(worst.key),
              {"fraction": worst.final["dead"], "layer": worst.label,
               "when": f"after {p.steps} training steps, up from {worst.init['dead']:.0%} at "
                       "initialisation",
               "count": len(rising), "device": p.device,
               "judged": f"whose dead share rose by {bound * 100:g} points or more during the "
                         "probe",
               "cause": _died_in_steps(ctx, configured)},
              {"measured": {"dead_fraction": worst.final["dead"],
                            "initial_dead_fraction": worst.init["dead"], "rise": up,
                            "steps": p.steps},
               "layers": {x.label: r for r, x in rising}, "configured": configured},
              severity=None if configured else "info")


def _default_lr_over_ceiling(ctx: Context) -> str | None:
    """Why a divergence in the probe's training steps is its own lr's, or None: no optimizer
    in the config, so the probe ran its default lr, and that lr is over the stable-step bound
    it measured at initialisation (BNL905): steps above it overshoot along the sharpest
    direction and the loss grows (arXiv:2103.00065), so the divergence is the lr's, which the
    user may not train with. Info then, as BNL905 and BNL903's trajectory reading are."""
    p = ctx.probe
    if _lr_configured(ctx) or p.lr_ceiling is None:
        return None
    lr, bound = p.optimizer["lr"], p.lr_ceiling.bound
    if lr <= bound:
        return None
    return (f" at the probe's default lr {lr:g} (no optimizer in the config), {lr / bound:.3g}x "
            f"the stable-step bound {bound:.3g} of {p.optimizer['name']} it measured at "
            "initialisation, so it says nothing about the lr you train at: give --optimizer "
            "with it")


@check("BNL904")
def measured_nonfinite(ctx: Context, rule: Rule) -> Iterator[Hit]:
    p = ctx.probe
    if p is None:
        return
    losses = [h.loss for h in p.history]
    if p.first_nonfinite:
        bad = p.first_nonfinite
        what = {"forward": f"NaN/Inf (or values near float32's limit) first appear in the "
                           f"output of {bad.key}",
                "backward": f"the backward pass first overflows in the gradient of "
                            f"{bad.key}'s output"}.get(bad.where,
                                                       "the weight gradients are not finite")
        lr_cause = _default_lr_over_ceiling(ctx) if bad.step else None
        yield Hit(ctx.graph.find(bad.key),
                  {"what": what, "step": bad.step, "device": p.device,
                   "outcome": "training would produce NaN" + (lr_cause or "")},
                  {"measured": {"nan": True, "step": bad.step, "pass": bad.where},
                   "module": bad.module, "configured": lr_cause is None},
                  severity="info" if lr_cause else None)
        return
    # the loss's scale at the start: the initial loss, or the regression targets' mean square
    # when larger (an MSE on targets in the thousands starts near 1e6 and is not diverging)
    t = targets(ctx)
    scale = losses[0]
    if regression_targets(t):
        square = float((t.tensor.double() ** 2).mean()) if t.tensor is not None else t.std ** 2
        scale = max(scale, square)
    growth = ctx.threshold(rule, "loss_growth")
    if not (math.isfinite(scale) and scale > 0):
        return
    step = next((i for i, loss in enumerate(losses) if loss >= growth * scale), None)
    if step is not None:
        lr_cause = _default_lr_over_ceiling(ctx)
        yield Hit(ctx.graph.find(p.first_module),
                  {"what": f"the loss grew from {losses[0]:.3g} to {losses[step]:.3g}, "
                           f"{losses[step] / scale:.3g}x the scale it started at "
                           f"(>= {growth:g}x)",
                   "step": step, "device": p.device,
                   "outcome": "the run is diverging" + (lr_cause or "")},
                  {"measured": {"loss": losses[step], "initial_loss": losses[0],
                                "scale": scale, "step": step}, "configured": lr_cause is None},
                  severity="info" if lr_cause else None)


@check("BNL906")
def nothing_learns(ctx: Context, rule: Rule) -> Iterator[Hit]:
    """Every parameter's gradient exactly 0 at every measurement, and the loss unmoved."""
    p = ctx.probe
    if p is None or p.steps < 1 or p.nan:
        return
    norms = [h.grad_norm for h in p.history]
    losses = [h.loss for h in p.history]
    if any(n is None or n != 0 for n in norms):
        return
    if max(losses) - min(losses) > ctx.threshold(rule, "loss_change") * max(abs(losses[0]),
                                                                            1e-30):
        return
    yield Hit(ctx.graph.find(p.last_module) or ctx.graph.find(p.first_module),
              {"count": len(p.history), "loss": losses[0], "device": p.device},
              {"measured": {"grad_norm": norms, "loss": [losses[0], losses[-1]]}})


@check("BNL905")
def lr_above_ceiling(ctx: Context, rule: Rule) -> Iterator[Hit]:
    """The configured lr, or the probe's default one (it ran SGD at it), above the ceiling:
    info at most for the default, which the user may not train with."""
    p, opt = ctx.probe, ctx.config.optimizer
    if p is None or p.lr_ceiling is None:
        return
    configured = _lr_configured(ctx)
    lr = opt.lr if configured else p.optimizer["lr"]
    ceiling = p.lr_ceiling
    if lr <= ceiling.bound:
        return
    losses = [h.loss for h in p.history]
    rose = p.nan or (len(losses) > 1 and losses[-1] > losses[0])
    factor = lr / ceiling.bound
    if not p.steps:
        outcome = "and the probe ran no training step to show what it does"
    elif rose:
        outcome = "and in the probe's training steps the loss rose"
    else:
        outcome = (f"though the probe's {p.steps} training steps at lr {p.optimizer['lr']:g} "
                   "did not raise the loss")
    if not rose and ctx.graph.layers("@batchnorm"):
        outcome += " (BatchNorm-fed weights are scale-invariant and can self-stabilise by growing)"
    which = f"The configured lr {lr:g}" if configured else \
        f"The probe's default lr {lr:g} (no optimizer in the config)"
    estimate = "" if ceiling.converged else (
        f"; Lanczos had not converged after {ceiling.iterations} Hessian-vector products, and "
        f"its value bounds the eigenvalue from below, so the true bound is at most this")
    # adaptive optimizers settle at their bound from above (arXiv:2207.14484): how far over it
    # they start says nothing by itself
    warn = configured and (rose or (factor >= ctx.threshold(rule, "ratio_warning")
                                    and not ceiling.preconditioned))
    yield Hit(ctx.graph.find(p.first_module),
              {"which": which, "lr": lr, "bound": ceiling.bound, "lam": ceiling.lambda_max,
               "outcome": outcome, "factor": factor, "estimate": estimate,
               "optimizer": p.optimizer["name"], "formula": ceiling.formula,
               "eigenvalue": ceiling.eigenvalue},
              {"measured": {"lambda_max": ceiling.lambda_max, "lr_ceiling": ceiling.bound,
                            "preconditioned": ceiling.preconditioned, "step": ceiling.step,
                            "loss": [losses[0], losses[-1]]},
               "formula": ceiling.formula, "lr": lr, "configured": configured,
               "converged": ceiling.converged},
              severity=None if warn else "info")


@check("BNL907")
def loss_rises_under_gradient_descent(ctx: Context, rule: Rule) -> Iterator[Hit]:
    """Plain gradient descent at the configured lr, on the model's own loss and the given
    targets, ended the probe's steps with the loss far above where it started."""
    p, opt = ctx.probe, ctx.config.optimizer
    if p is None or p.steps < 1 or p.nan or opt is None or opt.lr is None \
            or not p.loss.startswith(OWN_LOSS):
        return
    if p.optimizer["name"] != "sgd" or p.optimizer.get("momentum") \
            or p.optimizer["args"].get("weight_decay"):
        return
    losses = [h.loss for h in p.history]
    if not (losses[0] > 0 and math.isfinite(losses[-1])):
        return
    factor = losses[-1] / losses[0]
    if factor < ctx.threshold(rule, "loss_rise"):
        return
    yield Hit(ctx.graph.find(p.first_module),
              {"device": p.device, "steps": len(losses) - 1, "lr": opt.lr, "loss": p.loss,
               "first": losses[0], "last": losses[-1], "factor": factor},
              {"measured": {"loss": losses, "factor": factor}, "lr": opt.lr})
