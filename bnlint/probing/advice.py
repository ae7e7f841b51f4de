"""Learning-rate settings suggested from the probe's measurement, each with its source and,
where there is something to paste, a snippet.

- ``lr_ceiling``: the optimizer's stable-step bound (bnlint/probing/stability.py), with what
  the probe's own training steps showed at its lr (BatchNorm-fed weights are scale-invariant,
  so a bound at init can be far below an lr that trains fine).
- ``warmup``: when the probe saw a temporal gradient explosion, the steps it took to subside at
  the probe's lr; with a larger configured lr, a LinearLR warm-up from the probe's lr to it.
  Not when a norm layer reads the first layer: its gradient falls as its own weight grows
  (BNL901's why), which no warm-up is needed for.
- ``optimizer``: LALC-style layer-wise clipping when gradients explode with depth.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection
from typing import Any

from ..config import Config
from ..findings import Finding
from ..measurement import ProbeResult
from ..optim import LALC

LALC_BOUND = inspect.signature(LALC).parameters["bound"].default  # see LALC's docstring


def _settled(probe: ProbeResult, threshold: float) -> tuple[float, int] | None:
    """For a temporal explosion (the first measured first/last gradient ratio above
    ``threshold``, the last one at or under it): that first ratio and the first step at which
    the ratio is back under it."""
    measured = [h for h in probe.history if h.grad_ratio is not None]
    if not measured or measured[0].grad_ratio <= threshold \
            or measured[-1].grad_ratio > threshold:
        return None
    step = next((h.step for h in measured[1:] if h.grad_ratio <= threshold), None)
    return (measured[0].grad_ratio, step) if step is not None else None


def suggestions(probe: ProbeResult | None, findings: list[Finding], config: Config,
                threshold: float, explosion_codes: Collection[str] = (),
                first_normalised: bool = False) -> dict[str, Any]:
    """What to set, from the measurement: empty when the probe did not run. ``threshold``:
    the gradient ratio that counts as an explosion (BNL901's, see
    :func:`bnlint.rules.measured.explosion_threshold`); ``explosion_codes``: the rules whose
    findings say gradients explode with depth (``symptom: exploding-gradients``);
    ``first_normalised``: a norm layer reads the probe's first layer
    (:func:`bnlint.rules.measured.normalised_by`)."""
    if probe is None:
        return {}
    out: dict[str, Any] = {}
    probe_lr = probe.optimizer["lr"]
    lr = config.optimizer.lr if config.optimizer and config.optimizer.lr else probe_lr
    losses = [h.loss for h in probe.history]
    stable = not probe.nan and losses[-1] <= losses[0]
    if probe.lr_ceiling:
        ceiling = probe.lr_ceiling.bound
        seen = (f"the probe's {probe.steps} steps at lr {probe_lr:g} "
                + ("did not diverge" if stable else "did not lower the loss")) \
            if probe.steps else "the probe ran no training step"
        out["lr_ceiling"] = {
            "value": ceiling, "lr": lr, "probe_lr_stable": stable,
            "configured": bool(config.optimizer and config.optimizer.lr),
            "source": f"{probe.lr_ceiling.formula}, {probe.lr_ceiling.eigenvalue} = "
                      f"{probe.lr_ceiling.lambda_max:.3g}; {seen}"}
    settled = None if first_normalised else _settled(probe, threshold)
    if settled is not None:
        start, steps = settled
        warmup: dict[str, Any] = {
            "steps": steps,
            "source": f"the first/last gradient ratio fell from {start:.3g} to under "
                      f"{threshold:g} within {steps} step{'s' if steps != 1 else ''} at lr "
                      f"{probe_lr:g}"}
        if lr > probe_lr and stable:
            warmup["snippet"] = (
                "scheduler = torch.optim.lr_scheduler.LinearLR(\n"
                f"    optimizer, start_factor={probe_lr / lr:.3g}, total_iters={steps})"
                "  # scheduler.step() after each optimizer.step()")
        out["warmup"] = warmup
    if any(f.code in explosion_codes for f in findings):
        momentum = probe.optimizer.get("momentum") or 0.0
        out["optimizer"] = {
            "name": "LALC", "bound": LALC_BOUND,
            "source": "layer-wise clipping of the relative update, our reading of Paik & Choi "
                      "(arXiv:2304.11692); bench/studies/lalc.py compares it with SGD, warm-up "
                      "and LARS",
            "snippet": ("from bnlint.optim import LALC\n"
                        f"optimizer = LALC(model.parameters(), lr={lr:g}, "
                        f"momentum={momentum:g}, bound={LALC_BOUND:g})")}
    return out
