"""Measured family (9xx): what the probe saw in a short forward/backward and training run."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..measurement import ProbeStep
from .base import Context, Hit, check
from .catalog import Rule


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


def _shown(value: float | None, spec: str, unit: str = "") -> str:
    """A measured number for a message, or "n/a" where the probe has none."""
    return "n/a" if value is None else f"{value:{spec}}{unit}"


@check("BNL901")
def measured_explosion(ctx: Context, rule: Rule) -> Iterator[Hit]:
    p = ctx.probe
    if p is None or p.grad_ratio is None or p.grad_ratio <= ctx.threshold(rule, "ratio_warning"):
        return
    final_ratio = p.history[-1].grad_ratio
    corr0, corr1 = _history(ctx, "correlation")
    severity = "error" if p.grad_ratio >= ctx.threshold(rule, "ratio_error") else None
    explosion = explosion_course(p.history, ctx.threshold(rule, "ratio_warning"))
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
              {"ratio": p.grad_ratio, "first": p.first_module, "last": p.last_module,
               "device": p.device, "course": course},
              {"measured": {"grad_ratio": p.grad_ratio, "final_grad_ratio": final_ratio,
                            "correlation": [corr0, corr1]},
               "first_module": p.first_module, "last_module": p.last_module,
               "explosion": explosion}, severity=severity)


@check("BNL902")
def measured_vanishing(ctx: Context, rule: Rule) -> Iterator[Hit]:
    p = ctx.probe
    if p is None or p.grad_ratio is None or p.first_module is None:
        return
    first = p.layer(p.first_module).init.get("weight_grad")
    if p.grad_ratio < ctx.threshold(rule, "ratio_below") and first is not None \
            and first < ctx.threshold(rule, "first_grad_below"):
        yield Hit(ctx.graph.find(p.first_module),
                  {"ratio": p.grad_ratio, "first": p.first_module, "last": p.last_module,
                   "grad": first, "device": p.device},
                  {"measured": {"grad_ratio": p.grad_ratio, "first_weight_grad": first},
                   "first_module": p.first_module, "last_module": p.last_module})


@check("BNL903")
def measured_dead_relus(ctx: Context, rule: Rule) -> Iterator[Hit]:
    p = ctx.probe
    if p is None:
        return
    limit = ctx.threshold(rule, "dead_fraction")
    dead = [(max(x.init.get("dead", 0.0), x.final.get("dead", 0.0)), x) for x in p.layers
            if "dead" in x.init]
    bad = [(d, x) for d, x in dead if d >= limit]
    if not bad:
        return
    worst_fraction, worst = max(bad, key=lambda item: item[0])
    when = "at initialisation" if worst.init["dead"] >= limit else \
        f"after {p.steps} training steps"
    yield Hit(ctx.graph.find(worst.key),
              {"fraction": worst_fraction, "layer": worst.module or worst.key, "when": when,
               "count": len(bad), "device": p.device},
              {"measured": {"dead_fraction": worst_fraction},
               "layers": {x.module or x.key: d for d, x in bad}})


@check("BNL904")
def measured_nonfinite(ctx: Context, rule: Rule) -> Iterator[Hit]:
    p = ctx.probe
    if p is None:
        return
    losses = [h.loss for h in p.history]
    huge = ctx.threshold(rule, "loss_above")
    if p.first_nonfinite:
        bad = p.first_nonfinite
        what = {"forward": f"NaN/Inf (or values near float32's limit) first appear in the "
                           f"output of {bad.key}",
                "backward": f"the backward pass first overflows in the gradient of "
                            f"{bad.key}'s output"}.get(bad.where,
                                                       "the weight gradients are not finite")
        yield Hit(ctx.graph.find(bad.key),
                  {"what": what, "step": bad.step, "device": p.device},
                  {"measured": {"nan": True, "step": bad.step, "pass": bad.where},
                   "module": bad.module})
    elif any(loss >= huge for loss in losses):
        step = next(i for i, loss in enumerate(losses) if loss >= huge)
        yield Hit(ctx.graph.find(p.first_module),
                  {"what": f"the loss reached {losses[step]:.3g} (>= {huge:g})", "step": step,
                   "device": p.device},
                  {"measured": {"loss": losses[step], "step": step}})


@check("BNL905")
def lr_above_ceiling(ctx: Context, rule: Rule) -> Iterator[Hit]:
    """The configured lr, or the probe's default one (it ran SGD at it), above the ceiling:
    info at most for the default, which the user may not train with."""
    p, opt = ctx.probe, ctx.config.optimizer
    if p is None or p.lr_ceiling is None:
        return
    configured = opt is not None and opt.lr is not None
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
        f"its value bounds lambda_max from below, so the true bound is at most this")
    warn = configured and (rose or factor >= ctx.threshold(rule, "ratio_warning"))
    yield Hit(ctx.graph.find(p.first_module),
              {"which": which, "lr": lr, "bound": ceiling.bound, "lam": ceiling.lambda_max,
               "outcome": outcome, "factor": factor, "estimate": estimate},
              {"measured": {"lambda_max": ceiling.lambda_max, "lr_ceiling": ceiling.bound,
                            "loss": [losses[0], losses[-1]]},
               "lr": lr, "configured": configured, "converged": ceiling.converged},
              severity=None if warn else "info")
