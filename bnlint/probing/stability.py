"""The largest stable learning rate of each optimizer: lr < factor / lambda, where lambda is the
top eigenvalue of the Hessian H (SGD-like steps) or of the preconditioned Hessian P^-1 H
(adaptive steps, with P read from the optimizer's state).

Each factor is the linear stability limit of the optimizer's update on a quadratic of curvature
lambda with the preconditioner held fixed (asymptotic bias corrections of 1), derived here and
checked against torch's own optimizers on a quadratic in tests/test_optim.py:

- gradient descent: 2; heavy-ball momentum m with dampening d (torch SGD): 2(1+m)/(1-d);
  Nesterov momentum (torch SGD, nesterov=True): 2(1+m)/(1+2m), the root z = -1 of the
  iteration's characteristic polynomial z^2 - (1+m-h(1+m)) z + m(1-h), h = lr lambda;
- Adam, AdamW, Adamax (P = sqrt(v_hat) + eps, Adamax's infinity norm): the moving average
  m <- beta1 m + (1-beta1) g is heavy ball at step lr(1-beta1), so (2+2 beta1)/(1-beta1): 38
  at beta1 = 0.9, where Cohen et al. (arXiv:2207.14484) find Adam training at the edge of
  stability of the preconditioned sharpness;
- NAdam (torch's momentum schedule mu_t): step (1-mu) g + mu m, so 2(1+beta1)/(1+beta1-2 mu
  beta1); RAdam: Adam's factor over its rectification r_t, or, while it is not rectified, the
  moving average without a preconditioner;
- RMSprop (P = sqrt(v) + eps, centred: sqrt(v - mean^2) + eps) with momentum m: 2(1+m);
  Adagrad (P = sqrt(sum g^2) + eps): 2(1 + (t-1) lr_decay); Adadelta (P^-1 =
  sqrt(acc_delta + eps) / sqrt(v + eps)): 2.

Rprop and Adafactor take steps not proportional to the gradient, and LALC and LARS clip or
rescale each tensor's step, so no such bound holds for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

# Optimizers whose step is the (momentum) gradient times lr: bound from H at initialisation.
PLAIN = ("sgd", "asgd")
# Optimizers whose step is preconditioned from their state: bound from P^-1 H after the steps.
ADAPTIVE = ("adam", "adamw", "adamax", "nadam", "radam", "rmsprop", "adagrad", "adadelta")
UNBOUNDED = {"rprop": "takes sign steps", "adafactor": "scales its steps to the weights' RMS",
             "lalc": "clips each tensor's step", "lars": "rescales each tensor's step"}


@dataclass(frozen=True)
class Bound:
    """lr < factor / lambda. ``formula`` says which; ``scales`` (adaptive only) is P^-1/2 per
    parameter, for :func:`bnlint.probing.hessian.top_eigenvalue`."""
    factor: float
    formula: str
    scales: list[torch.Tensor] | None = None


def heavy_ball(momentum: float, dampening: float = 0.0, nesterov: bool = False) -> float:
    if nesterov:
        return 2 * (1 + momentum) / (1 + 2 * momentum)
    return 2 * (1 + momentum) / (1 - dampening)


def moving_average(beta1: float) -> float:
    """Adam's factor: the heavy ball at step lr(1 - beta1) and momentum beta1."""
    return (2 + 2 * beta1) / (1 - beta1)


def plain(name: str, momentum: float, args: dict[str, Any]) -> Bound:
    """The bound of an SGD-like optimizer, against the top eigenvalue of H."""
    if name == "asgd":
        return Bound(2.0, "2/lambda_max (ASGD's step is at most lr times the gradient)")
    nesterov, dampening = bool(args.get("nesterov")), float(args.get("dampening", 0.0))
    if not momentum:
        return Bound(2.0, "2/lambda_max")
    if nesterov:
        return Bound(heavy_ball(momentum, nesterov=True),
                     f"2(1+m)/((1+2m) lambda_max), Nesterov momentum m = {momentum:g}")
    damped = f", dampening {dampening:g}" if dampening else ""
    return Bound(heavy_ball(momentum, dampening),
                 f"2(1+m)/((1-d) lambda_max), heavy-ball momentum m = {momentum:g}{damped}")


def _radam_rectification(beta2: float, step: int) -> float | None:
    """RAdam's r_t (Liu et al., arXiv:1908.03265), or None while it is not rectified."""
    rho_inf = 2 / (1 - beta2) - 1
    rho = rho_inf - 2 * step * beta2 ** step / (1 - beta2 ** step)
    if rho <= 5:
        return None
    return math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))


def adaptive(name: str, optimizer: torch.optim.Optimizer,
             params: list[torch.Tensor]) -> Bound | None:
    """The bound of an adaptive optimizer from its state after the steps it took, with the
    preconditioner's P^-1/2 for each of ``params`` (0 where it has no state); None before its
    first step."""
    group = optimizer.param_groups[0]
    scales: list[torch.Tensor] = []
    step = 0
    for p in params:
        state = optimizer.state.get(p, {})
        if not state:
            scales.append(torch.zeros_like(p))
            continue
        step = max(step, int(float(state["step"])))
        scales.append(_inverse_sqrt_preconditioner(name, group, state).to(p.dtype))
    if step == 0:
        return None
    beta1 = group.get("betas", (0.0,))[0]
    if name in ("adam", "adamw", "adamax"):
        return Bound(moving_average(beta1), f"(2+2 beta1)/((1-beta1) lambda_P), beta1 = "
                     f"{beta1:g} (Cohen et al., arXiv:2207.14484)", scales)
    if name == "nadam":
        mu = beta1 * (1 - 0.5 * 0.96 ** ((step + 1) * group["momentum_decay"]))
        return Bound(2 * (1 + beta1) / (1 + beta1 - 2 * mu * beta1),
                     f"2(1+beta1)/((1+beta1-2 mu beta1) lambda_P), beta1 = {beta1:g}, NAdam's "
                     f"mu = {mu:.3g} at step {step + 1}", scales)
    if name == "radam":
        rect = _radam_rectification(group["betas"][1], step + 1)
        if rect is None:
            return Bound(moving_average(beta1), f"(2+2 beta1)/((1-beta1) lambda_max), beta1 = "
                         f"{beta1:g}: RAdam is not yet rectified at step {step + 1}")
        return Bound(moving_average(beta1) / rect,
                     f"(2+2 beta1)/((1-beta1) r lambda_P), beta1 = {beta1:g}, RAdam's "
                     f"rectification r = {rect:.3g} at step {step + 1}", scales)
    if name == "rmsprop":
        m = group["momentum"]
        return Bound(heavy_ball(m), f"2(1+m)/lambda_P, momentum m = {m:g}" if m
                     else "2/lambda_P", scales)
    if name == "adagrad":
        decay = 1 + step * group["lr_decay"]
        return Bound(2 * decay, "2(1+(t-1) lr_decay)/lambda_P" if group["lr_decay"]
                     else "2/lambda_P", scales)
    return Bound(2.0, "2/lambda_P", scales)  # adadelta


def _inverse_sqrt_preconditioner(name: str, group: dict, state: dict) -> torch.Tensor:
    """P^-1/2 for one parameter, from its optimizer state."""
    eps = group.get("eps", 0.0)
    if name in ("adam", "adamw", "nadam", "radam"):
        v = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
        v_hat = v / (1 - group["betas"][1] ** float(state["step"]))
        return (v_hat.sqrt() + eps).rsqrt()
    if name == "adamax":
        return state["exp_inf"].rsqrt()  # torch adds eps inside the running maximum
    if name == "rmsprop":
        v = state["square_avg"]
        if group["centered"]:
            v = v - state["grad_avg"] ** 2
        return (v.clamp_min(0).sqrt() + eps).rsqrt()
    if name == "adagrad":
        return (state["sum"].sqrt() + eps).rsqrt()
    # adadelta: delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
    return ((state["acc_delta"] + eps).sqrt() / (state["square_avg"] + eps).sqrt()).sqrt()
