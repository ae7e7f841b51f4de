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
    at both ends) or 'late' (above only after the start)."""
    ratios = [h.grad_ratio for h in history if h.grad_ratio is not None]
    if not ratios:
        return "none"
    above = [r > threshold for r in ratios]
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
    course = {"temporal": "it had fallen to", "persistent": "it was still"}.get(explosion,
                                                                              "it was")
    yield Hit(ctx.graph.find(p.first_module),
              {"ratio": p.grad_ratio, "first": p.first_module, "last": p.last_module,
               "device": p.device, "steps": p.steps, "final": _shown(final_ratio, ".3g", "x"),
               "course": course, "corr0": _shown(corr0, ".2f"), "corr1": _shown(corr1, ".2f")},
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
    p, opt = ctx.probe, ctx.config.optimizer
    if p is None or p.lr_ceiling is None or opt is None or opt.lr is None:
        return
    bound = p.lr_ceiling.bound
    if opt.lr <= bound:
        return
    losses = [h.loss for h in p.history]
    rose = p.nan or (len(losses) > 1 and losses[-1] > losses[0])
    factor = opt.lr / bound
    outcome = ("and in the probe's training steps the loss rose" if rose else
               f"though the probe's {p.steps} training steps at this lr did not raise the loss")
    if not rose and ctx.graph.layers("@batchnorm"):
        outcome += " (BatchNorm-fed weights are scale-invariant and can self-stabilise by growing)"
    c = p.lr_ceiling
    yield Hit(ctx.graph.find(p.first_module),
              {"lr": opt.lr, "bound": bound, "lam": c.lambda_max, "outcome": outcome,
               "factor": factor, "optimizer": p.optimizer["name"], "formula": c.formula,
               "eigenvalue": c.eigenvalue},
              {"measured": {"lambda_max": c.lambda_max, "lr_ceiling": bound,
                            "preconditioned": c.preconditioned, "step": c.step,
                            "loss": [losses[0], losses[-1]]},
               "formula": c.formula, "configured_lr": opt.lr},
              severity=None if rose or factor >= ctx.threshold(rule, "ratio_warning") else "info")
