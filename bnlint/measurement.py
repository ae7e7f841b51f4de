"""What the probe planned and measured, as plain data (no torch): the plan, the numbers of each
training step, each layer's statistics at initialisation and after the last step, the
learning-rate ceiling, where values first stopped being finite and where the clock cut the
run. The probe (``bnlint/probing``) fills it; the measured rules (``bnlint/rules/measured.py``)
judge it; the output layer shows it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class ProbeStep:
    """One forward/backward of the probe: step 0 is the initialisation, step k follows k
    optimizer steps. ``grad_ratio`` is ||grad W_first|| / ||grad W_last|| over the affine
    layers; ``correlation`` the mean cosine similarity between samples over the tapped layers;
    ``grad_norm`` the norm of the gradient over every trainable parameter (None: none has
    one); ``first_grad`` ||grad W_first||."""
    step: int
    loss: float
    grad_ratio: float | None
    dead_fraction: float | None
    correlation: float | None
    grad_norm: float | None = None
    first_grad: float | None = None


@dataclass(frozen=True)
class LayerStats:
    """One tapped layer: its number of ``units`` (channels, dim 1 of its output), its
    statistics at initialisation and after the last step (``mean``, ``std``; ``dead`` for
    ReLUs, the share of units that output 0 for every sample; ``cosine`` for affine and norm
    layers; ``act_grad`` the RMS gradient of its output; ``weight_grad`` the norm of its
    weight gradient, ``weight_norm`` the norm of that weight), and the gradient norm bnlint
    predicted for it statically, relative to the output layer."""
    key: str
    module: str | None
    kind: str
    units: int
    init: Mapping[str, float]
    final: Mapping[str, float]
    predicted_grad: float | None = None

    @property
    def label(self) -> str:
        """How messages name the layer: its module path, or its key for a functional op."""
        return self.module or self.key


@dataclass(frozen=True)
class LrCeiling:
    """The stable-step bound ``factor / lambda_max`` of the optimizer the probe ran
    (``formula`` says which; bnlint/probing/stability.py derives each): for SGD-like steps from
    the top Hessian eigenvalue at initialisation (``step`` 0), for adaptive ones from the top
    eigenvalue of the preconditioned Hessian P^-1 H after ``step`` steps (``preconditioned``).
    ``lambda_max`` is Lanczos's top Ritz value and ``residual`` its ||Hx - lambda x||: the top
    Ritz value never exceeds the top eigenvalue, so :attr:`bound` is the ceiling's upper end;
    unconverged, the eigenvalue it approaches lies within ``residual`` of it (:meth:`span`)."""
    lambda_max: float
    factor: float
    formula: str
    preconditioned: bool
    step: int
    iterations: int
    converged: bool
    configured_lr: float
    residual: float = 0.0

    @property
    def bound(self) -> float:
        """The largest stable lr."""
        return self.factor / self.lambda_max

    @property
    def eigenvalue(self) -> str:
        """What ``lambda_max`` is of, and when."""
        if self.preconditioned:
            return f"lambda_P (the top eigenvalue of P^-1 H) after {self.step} steps"
        return "lambda_max at initialisation" if self.step == 0 else \
            f"lambda_max after {self.step} steps"

    def span(self) -> tuple[float, float]:
        """The ceiling as a range: from lambda_max + residual up to :attr:`bound`."""
        return self.bound * self.lambda_max / (self.lambda_max + self.residual), self.bound


@dataclass(frozen=True)
class NonFinite:
    """Where NaN/Inf first appeared: the layer's key, the pass (forward, backward or weight
    gradients), its module and source line, and the step."""
    key: str | None
    where: str
    module: str | None
    line: int | None
    step: int


# The parts of a probe run after the measurement at initialisation, which a budget cut can leave
# short; measured rules name the ones they read (``probe_reads`` in the rule YAML).
TRAJECTORY, LR_CEILING = "trajectory", "lr_ceiling"
PROBE_PARTS = (TRAJECTORY, LR_CEILING)


@dataclass(frozen=True)
class ProbePlan:
    """What the probe planned before it ran, from the model's cost counted on the meta device
    (no clock): ``batch`` samples (of ``requested_batch``), inferred image inputs at
    ``resolution`` (None: the inputs as given), ``steps`` training steps and at most ``hvps``
    Hessian-vector products. ``flops_per_sample`` is one forward+backward, ``ops`` the torch
    ops it dispatches, ``activation_bytes`` its forward's new tensors at this batch; ``flops``
    the plan's arithmetic, ``cost`` that plus each op's overhead, both against
    ``budget_flops`` (``budget`` seconds at ``flop_rate``). ``reasons`` says what was lowered
    and why."""
    batch: int
    requested_batch: int
    resolution: tuple[int, ...] | None
    steps: int
    hvps: int
    flops_per_sample: float
    ops: int
    activation_bytes: float
    flops: float
    cost: float
    budget_flops: float
    budget: float
    flop_rate: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cut:
    """The clock stopped the plan short (a machine much slower than the plan's rate): the
    ``budget`` in seconds, the ``steps`` and ``hvps`` done, the ``short`` parts
    (:data:`PROBE_PARTS`) and the rules whose findings read them (``weaker``, filled in by the
    engine, which knows the rules)."""
    budget: float
    steps: int
    hvps: int
    short: tuple[str, ...]
    weaker: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProbeResult:
    """A probe run. ``grad_ratio``, ``act_grad_ratio`` and ``dead_fraction`` are at
    initialisation; ``first_module``/``last_module`` the affine layers the ratio spans;
    ``ranks`` the processes that shared it (the probe across ranks, ``--nproc``)."""
    device: str
    batch: int
    steps: int
    seconds: float
    grad_ratio: float | None
    act_grad_ratio: float | None
    dead_fraction: float | None
    nan: bool
    first_nonfinite: NonFinite | None
    layers: tuple[LayerStats, ...]
    history: tuple[ProbeStep, ...]
    lr_ceiling: LrCeiling | None
    loss: str                       # what the loss was and where its targets came from
    optimizer: Mapping[str, Any]    # name, lr, momentum, args
    first_module: str | None
    last_module: str | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    plan: ProbePlan | None = None
    cut: Cut | None = None
    ranks: int = 1

    def layer(self, module: str) -> LayerStats | None:
        """The tapped layer with this module name or key."""
        return next((x for x in self.layers if module in (x.module, x.key)), None)

    def measured_ratio(self, first: str, last: str) -> float | None:
        """||grad W_first|| / ||grad W_last|| at initialisation between two modules."""
        a, b = self.layer(first), self.layer(last)
        if not a or not b or not a.init.get("weight_grad") or not b.init.get("weight_grad"):
            return None
        return a.init["weight_grad"] / b.init["weight_grad"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeResult:
        data = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        nonfinite, ceiling = data.get("first_nonfinite"), data.get("lr_ceiling")
        plan, cut = data.get("plan"), data.get("cut")
        return cls(**{**data,
                      "first_nonfinite": NonFinite(**nonfinite) if nonfinite else None,
                      "lr_ceiling": LrCeiling(**ceiling) if ceiling else None,
                      "plan": ProbePlan(**{**plan, "reasons": tuple(plan["reasons"]),
                                           "resolution": tuple(plan["resolution"])
                                           if plan["resolution"] else None}) if plan else None,
                      "cut": Cut(**{k: tuple(v) if isinstance(v, list) else v
                                    for k, v in cut.items()}) if cut else None,
                      "layers": tuple(LayerStats(**x) for x in data["layers"]),
                      "history": tuple(ProbeStep(**h) for h in data["history"]),
                      "notes": tuple(data.get("notes", ()))})
