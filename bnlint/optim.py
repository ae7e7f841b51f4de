"""LALC-style layer-wise learning-rate clipping, and a LARS baseline.

``LALC`` is *our reading* of Paik & Choi's LALC (Layer-wise Asymmetric Learning-rate
Clipping, arXiv:2304.11692). The paper's exact update rule was not available to us, so this
is "LALC-style": SGD with momentum whose step for each layer is the global-lr step, shrunk
when it would move the layer by more than ``bound`` relative to its weights:

    d_l    = momentum buffer of layer l (gradient + weight decay, heavy-ball)
    lr_l   = min(lr, bound * ||W_l|| / ||d_l||)
    W_l   <- W_l - lr_l * d_l        so  ||dW_l|| / ||W_l|| <= bound

A "layer" is one parameter tensor (a weight, a bias and a BatchNorm gamma are three layers).
The clip is asymmetric: unlike LARS it never raises a layer's rate above ``lr``. Tensors
with ||W_l|| == 0 (zero-initialised biases, BN beta, zero-init BN gamma) are left unclipped,
as LARS uses a trust ratio of 1 there; otherwise they could never leave zero. After that one
step such a tensor can grow by at most a factor (1 + bound) per step; to exempt it, put it
in a parameter group with ``bound=None``. The momentum buffer is not clipped, only the step.

``LARS`` (You, Gitman & Ginsburg, arXiv:1708.03888) is here as a benchmark baseline.
"""

import torch


class LALC(torch.optim.Optimizer):
    """SGD with momentum, each tensor's step clipped to ``||dW|| <= bound * ||W||``.

    ``bound`` may be set per parameter group; ``bound=None`` turns clipping off for that
    group. After each ``step()``: ``last_clip_fraction`` is the fraction of parameter tensors
    (with a gradient) whose step was clipped; ``clipped_total`` and ``layer_steps_total``
    count clipped and all tensor-steps since construction. The clip is decided on the device
    (no host sync per tensor); the counters synchronise only when read.

    Default ``bound=0.01``, chosen from sweeps of the bound on the deep BN-ReLU nets of
    ``bench/studies/lalc.py`` (the sweeps themselves are not recorded). The recorded table, at 0.01
    (bench/RESULTS.md), shows it training both nets at lr 1-3, where SGD and SGD with warm-up
    stall (though LARS does better there), and within seed noise of SGD at lr 0.03.
    """

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, bound=0.01):
        if lr <= 0 or momentum < 0 or weight_decay < 0 or (bound is not None and bound <= 0):
            raise ValueError("need lr > 0, momentum >= 0, weight_decay >= 0, bound > 0 or None")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, bound=bound)
        super().__init__(params, defaults)
        self._last_clipped = self._clipped_total = 0
        self._last_stepped = self.layer_steps_total = 0

    @property
    def last_clip_fraction(self):
        return int(self._last_clipped) / self._last_stepped if self._last_stepped else 0.0

    @property
    def clipped_total(self):
        return int(self._clipped_total)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        clip_flags, stepped = [], 0
        for group in self.param_groups:
            lr, bound = group["lr"], group["bound"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                if group["momentum"]:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = d.clone()
                    else:
                        state["momentum_buffer"].mul_(group["momentum"]).add_(d)
                    d = state["momentum_buffer"]
                if bound is None:
                    p.add_(d, alpha=-lr)
                else:
                    w_norm, d_norm = p.norm(), d.norm()
                    clip = (w_norm > 0) & (lr * d_norm > bound * w_norm)
                    p.addcmul_(d, torch.where(clip, bound * w_norm / d_norm, lr), value=-1)
                    clip_flags.append(clip)
                stepped += 1
        clipped = 0
        if clip_flags:
            device = clip_flags[0].device
            clipped = torch.stack([flag.to(device) for flag in clip_flags]).sum()
        self._last_clipped, self._last_stepped = clipped, stepped
        self._clipped_total = clipped + self._clipped_total
        self.layer_steps_total += stepped
        return loss


class LARS(torch.optim.Optimizer):
    """LARS: momentum SGD with per-tensor rate ``lr * eta * ||W|| / ||g + wd W||``.

    The trust ratio is 1 where either norm is zero.
    """

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, eta=0.001):
        if lr <= 0 or momentum < 0 or weight_decay < 0 or eta <= 0:
            raise ValueError("need lr > 0, momentum >= 0, weight_decay >= 0, eta > 0")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                w_norm, d_norm = p.norm(), d.norm()
                both = (w_norm > 0) & (d_norm > 0)
                trust = torch.where(both, group["eta"] * w_norm / d_norm, 1.0)
                state = self.state[p]
                buf = state.setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(group["momentum"]).addcmul_(d, group["lr"] * trust)
                p.sub_(buf)
        return loss
