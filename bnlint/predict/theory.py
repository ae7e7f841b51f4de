"""Closed-form predictions of signal and gradient flow at initialisation, one function per formula.

Two levels. *Op-level* moment rules (:func:`affine_moments`, :func:`batchnorm_moments`,
:func:`activation_moments`, :func:`merge_moments`, :func:`pool_moments`) map the second moments
of a layer's input to those of its output, and give the factor by which the mean squared
gradient grows going back through it; :func:`loss_gradient` is where the gradient starts;
:mod:`bnlint.flow` chains them over a ModelGraph.
*Block-level* formulas (:func:`bn_relu_gain`, :func:`bn_activation_gain`,
:func:`leaky_relu_gain`, :func:`bn_linear_growth`, :func:`residual_stack_ratio`,
:func:`dead_fraction`) are what those rules add up to for the standard blocks, and what messages
quote. *Init references* (:func:`activation_gain`, :func:`stack_gains`) hold for any pointwise
activation: its moments come from Gauss-Hermite quadrature, not a per-activation formula.

Conventions: a tensor is described by its :class:`Moments`, a gradient by its mean square g2.
Pre-activations are taken as Gaussian (mean field): within a unit N(mu, var), with the units'
means mu Gaussian across units. Sources are tagged as in docs/SCIENCE.md: [paper], [measured]
(setup given), [inferred].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

_NODES, _WEIGHTS = hermegauss(64)
_WEIGHTS = _WEIGHTS / math.sqrt(2 * math.pi)  # E[f(u)], u ~ N(0, 1) = sum(w * f(nodes))

# [measured] bench/calibration/gradient_flow.py --calibrate: interior per-block gain of ||grad W||
# in a Linear -> BN1d -> ReLU MLP (width 256, depth 40, cross-entropy, 3 seeds) by batch size. It is
# within 1% of docs/SCIENCE.md §1 at batch 8, 32 and 64 (1.32 / 1.23 / 1.22) but not at batch 16,
# 1.261 against 1.28 (-1.5%), where bench/calibration/papers.py's 10-seed reproduction of
# docs/SCIENCE.md's own setup also gives 1.259 (seeds 1.233-1.278; bench/RESULTS.md). It falls a
# little below the mean-field sqrt(pi / (pi - 1)) = 1.211 at large batch in deep layers.
MLP_BN_RELU_GAIN_BY_BATCH = ((8, 1.333), (16, 1.261), (32, 1.232), (64, 1.220), (128, 1.208),
                             (256, 1.206), (512, 1.201), (1024, 1.197))
# [measured] bench/calibration/gradient_flow.py --calibrate (bench/RESULTS.md): interior per-block
# gain of conv3x3 -> BN2d -> ReLU stacks, median over widths 16-64, maps 8-32 px, batches 8-32,
# seeds.
CONV_BN_RELU_GAIN = 1.198
# [measured] bench/calibration/papers.py (bench/RESULTS.md, "Meterez depth table"; the setup of
# Meterez et al., arXiv:2310.02012): log ||grad W_1||_F of a BN-linear MLP (width = batch = 100) by
# depth, Xavier-normal weights minus orthogonal weights, means of 10 seeds (Xavier 0.37 / 0.52 /
# 0.94 / 8.91, orthogonal 0.03 / 0.02 / 0.02 / 0.00). The 10-seed means rather than docs/SCIENCE.md
# §2's 3-seed values (a gap of 10.43 at depth 1000): those lie inside the 10 seeds' ranges (Xavier
# at depth 1000: 7.77-10.51), so they are few-seed draws and the mean is the better estimate.
BN_LINEAR_GAUSSIAN_LOG_GROWTH = ((5, 0.34), (50, 0.50), (200, 0.92), (1000, 8.91))
# [measured] bench/calibration/gradient_flow.py --calibrate: behind a global average pool the
# gradient is the same at every position of a sample. Each activation keeps SPATIAL_KEEP of that
# part, and spatially correlated inputs make it count (1 + SPATIAL_EXCESS) times in a conv's weight
# gradient (squared) instead of once.
SPATIAL_KEEP = 0.45
SPATIAL_EXCESS = 4.5
SHAPING_ALPHA = 0.4  # [paper, code read] arXiv:2310.02012: layer l computes act(l^-alpha BN(Wx))


def _phi(x):
    return np.exp(-0.5 * np.asarray(x, float) ** 2) / math.sqrt(2 * math.pi)


_erf = np.vectorize(math.erf, otypes=[float])


def _cdf(x):
    return 0.5 * (1.0 + _erf(np.asarray(x, float) / math.sqrt(2)))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.logaddexp(0.0, x)


# Smooth (or nearly) activations: (phi, phi') as numpy functions of (x, options).
_SMOOTH: dict[str, tuple[Callable, Callable]] = {
    "Tanh": (lambda x, o: np.tanh(x), lambda x, o: 1 - np.tanh(x) ** 2),
    "Sigmoid": (lambda x, o: _sigmoid(x), lambda x, o: _sigmoid(x) * (1 - _sigmoid(x))),
    "Sin": (lambda x, o: np.sin(x), lambda x, o: np.cos(x)),
    "Cos": (lambda x, o: np.cos(x), lambda x, o: -np.sin(x)),
    "GELU": (lambda x, o: x * _cdf(x), lambda x, o: _cdf(x) + x * _phi(x)),
    "SiLU": (lambda x, o: x * _sigmoid(x),
             lambda x, o: _sigmoid(x) * (1 + x * (1 - _sigmoid(x)))),
    "ELU": (lambda x, o: np.where(x > 0, x, o.get("alpha", 1.0) * np.expm1(np.minimum(x, 0))),
            lambda x, o: np.where(x > 0, 1.0, o.get("alpha", 1.0) * np.exp(np.minimum(x, 0)))),
    "CELU": (lambda x, o: np.where(x > 0, x, o.get("alpha", 1.0)
                                   * np.expm1(np.minimum(x, 0) / o.get("alpha", 1.0))),
             lambda x, o: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0) / o.get("alpha", 1.0)))),
    "SELU": (lambda x, o: 1.0507 * np.where(x > 0, x, 1.67326 * np.expm1(np.minimum(x, 0))),
             lambda x, o: 1.0507 * np.where(x > 0, 1.0, 1.67326 * np.exp(np.minimum(x, 0)))),
    "Softplus": (lambda x, o: _softplus(x), lambda x, o: _sigmoid(x)),
    "Mish": (lambda x, o: x * np.tanh(_softplus(x)),
             lambda x, o: np.tanh(_softplus(x))
             + x * _sigmoid(x) * (1 - np.tanh(_softplus(x)) ** 2)),
    "Softsign": (lambda x, o: x / (1 + np.abs(x)), lambda x, o: 1 / (1 + np.abs(x)) ** 2),
    "Hardtanh": (lambda x, o: np.clip(x, -1, 1), lambda x, o: (np.abs(x) < 1).astype(float)),
    "Hardsigmoid": (lambda x, o: np.clip(x / 6 + 0.5, 0, 1),
                    lambda x, o: (np.abs(x) < 3) / 6.0),
    "Hardswish": (lambda x, o: x * np.clip(x / 6 + 0.5, 0, 1),
                  lambda x, o: np.where(x < -3, 0.0, np.where(x > 3, 1.0, x / 3 + 0.5))),
    "LogSigmoid": (lambda x, o: -_softplus(-x), lambda x, o: _sigmoid(-x)),
    "Tanhshrink": (lambda x, o: x - np.tanh(x), lambda x, o: np.tanh(x) ** 2),
}
# Piecewise-linear activations: (slope for x > 0, slope for x < 0), integrated in closed form.
_PIECEWISE = {"ReLU": lambda o: (1.0, 0.0), "ReLU6": lambda o: (1.0, 0.0),
              "LeakyReLU": lambda o: (1.0, float(o.get("negative_slope", 0.01))),
              "PReLU": lambda o: (1.0, float(o.get("slope", 0.25))),
              "RReLU": lambda o: (1.0, (o.get("lower", 1 / 8) + o.get("upper", 1 / 3)) / 2)}
MODELLED_ACTIVATIONS = frozenset(_SMOOTH) | frozenset(_PIECEWISE)


class Moments(NamedTuple):
    """A tensor's moments: ``m2`` the mean of x^2 over its elements; ``var`` the mean over units
    (channels, features) of the variance over the set BatchNorm normalises over (the batch, and
    positions for convolutions); ``mean`` the mean of x, i.e. of the units' means. Mean field:
    unit means are ~ N(mean, m2 - var - mean^2) across units."""
    m2: float
    var: float
    mean: float = 0.0

    def unit_means(self) -> np.ndarray:
        """Gauss-Hermite nodes for the units' means (pair them with the weights)."""
        spread = math.sqrt(max(self.m2 - self.var - self.mean ** 2, 0.0))
        return self.mean + spread * _NODES


def _expect(values) -> float:
    return float(np.dot(_WEIGHTS, np.broadcast_to(values, _NODES.shape)))


def _piecewise(pos: float, neg: float, mu: np.ndarray, s: float):
    """E[phi], E[phi^2], E[phi'^2], E[phi'] of phi(z) = pos z (z > 0), neg z (z < 0),
    z ~ N(mu, s^2)."""
    p = np.where(mu > 0, 1.0, 0.0) if s <= 0 else _cdf(mu / s)
    d = np.zeros_like(mu) if s <= 0 else _phi(mu / s)
    e1 = mu * p + s * d                      # E[z; z > 0]
    e2 = (mu ** 2 + s ** 2) * p + mu * s * d  # E[z^2; z > 0]
    mean = pos * e1 + neg * (mu - e1)
    square = pos ** 2 * e2 + neg ** 2 * (mu ** 2 + s ** 2 - e2)
    return mean, square, pos ** 2 * p + neg ** 2 * (1 - p), pos * p + neg * (1 - p)


def activation_moments(kind: str, x: Moments,
                       options: dict | None = None) -> tuple[Moments, float, float]:
    """(moments, slope2, unit_slope2) of phi(x) for an activation kind [inferred: mean field].
    slope2 = E[phi'(x)^2] multiplies the mean squared gradient going back; unit_slope2 =
    E_units[E(phi'(x) | unit)^2] is the share of a gradient common to all samples that stays
    common (the rest becomes sample-to-sample variation).
    ``options``: negative_slope (LeakyReLU), slope (PReLU), alpha (ELU/CELU), lower/upper."""
    o = options or {}
    mu, s = x.unit_means(), math.sqrt(max(x.var, 0.0))
    if kind in _PIECEWISE:
        mean, square, slope2, slope = _piecewise(*_PIECEWISE[kind](o), mu, s)
    else:
        phi, dphi = _SMOOTH[kind]
        z = mu[:, None] + s * _NODES[None, :]
        f, df = phi(z, o), dphi(z, o)
        mean, square = f @ _WEIGHTS, (f ** 2) @ _WEIGHTS
        slope2, slope = (df ** 2) @ _WEIGHTS, df @ _WEIGHTS
    out = Moments(_expect(square), max(_expect(square - mean ** 2), 0.0), _expect(mean))
    return out, _expect(slope2), _expect(slope ** 2)


def affine_moments(x: Moments, weight2: float, bias2: float, fan_in: float,
                   fan_out: float) -> tuple[Moments, float]:
    """(moments, g2 factor) through y = W x + b with E[w^2] = weight2, E[b^2] = bias2, each
    output summing fan_in inputs and each input feeding fan_out outputs: m2' = weight2 fan_in
    m2 + bias2, var' = weight2 fan_in var, mean' = 0 (zero-mean random weights); backward
    g2 x weight2 fan_out (He et al.'s variance argument, arXiv:1502.01852, any init)."""
    return (Moments(weight2 * fan_in * x.m2 + bias2, weight2 * fan_in * x.var),
            weight2 * fan_out)


def batchnorm_moments(x: Moments, gamma2: float, beta2: float, beta_mean: float,
                      eps: float) -> tuple[Moments, float]:
    """(moments, g2 factor) through training-mode BatchNorm y = gamma (x - mean) /
    sqrt(var + eps) + beta: var' = gamma2 var / (var + eps), m2' = var' + beta2; backward
    g2 x gamma2 / (var + eps): the division by the batch std that, after a ReLU has removed
    variance, amplifies gradients (Paik & Choi, arXiv:2304.11692) [inferred]."""
    out_var = gamma2 * x.var / (x.var + eps)
    return Moments(out_var + beta2, out_var, beta_mean), gamma2 / (x.var + eps)


def merge_moments(kind: str, inputs: list[tuple[Moments, float]]) -> Moments:
    """Moments of a merge of uncorrelated inputs given as (moments, numel): Add sums them;
    Cat/Stack average them by size. Backward, every input receives the output's g2 (and a
    tensor feeding several consumers receives the sum of their g2) [inferred]."""
    if kind in ("Add", "Sub"):
        sign = -1.0 if kind == "Sub" else 1.0
        return Moments(sum(x.m2 for x, _ in inputs), sum(x.var for x, _ in inputs),
                       inputs[0][0].mean + sign * sum(x.mean for x, _ in inputs[1:]))
    total = sum(n for _, n in inputs) or 1.0
    return Moments(*(sum(x[i] * n for x, n in inputs) / total for i in range(3)))


def pool_moments(kind: str, x: Moments, k: float) -> tuple[Moments, float]:
    """(moments, g2 factor) through a pool or reduction that maps k inputs to one output:
    averaging keeps the units' means and divides the variance by k (positions taken as
    independent) and passes g/k back to each input; a max keeps the moments (approximately)
    and passes the gradient to one input in k; a sum adds [inferred]."""
    if kind.startswith(("MaxPool", "AdaptiveMaxPool")):
        return x, 1.0 / k
    if kind == "Sum":
        return Moments(k * k * (x.m2 - x.var) + k * x.var, k * x.var, k * x.mean), 1.0
    return Moments(x.m2 - x.var + x.var / k, x.var / k, x.mean), 1.0 / (k * k)


def loss_gradient(out: Moments, classes: int) -> tuple[float, float]:
    """(uncorrelated, common) mean squared loss gradient per output element at initialisation,
    for the loss the probe uses: cross-entropy on uniformly random labels when ``classes`` >= 2,
    where p - onehot(y) splits into its batch mean (common to all samples: the class logits'
    means differ) and the rest, by a fixed-seed Monte Carlo of that mean-field expectation;
    for one output, MSE on N(0, 1) targets: o - t, whose batch mean is the output's [inferred]."""
    if classes < 2:
        return out.var + 1.0, max(out.m2 - out.var, 0.0)
    rng = np.random.default_rng(0)
    spread = math.sqrt(max(out.m2 - out.var - out.mean ** 2, 0.0))
    z = rng.standard_normal((32, 1, classes)) * spread \
        + rng.standard_normal((32, 32, classes)) * math.sqrt(max(out.var, 0.0))
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    common = float(((p.mean(1) - 1.0 / classes) ** 2).mean())
    total = float((p ** 2 - 2 * p / classes + 1.0 / classes).mean())  # E_y (p - onehot(y))^2
    return total - common, common


# ---------------------------------------------------------------- block-level formulas


def leaky_relu_gain(slope: float = 0.0) -> float:
    """Per-block backward RMS gain of affine -> BN -> LeakyReLU(slope) at large batch:
    1 / sqrt(1 - (1 - s)^2 / (pi (1 + s^2))); s = 0 gives sqrt(pi / (pi - 1)) = 1.2112
    (Yang et al., arXiv:1902.08129; [measured] 1.212 in docs/SCIENCE.md §1), s = 1 gives 1."""
    return 1.0 / math.sqrt(1.0 - (1.0 - slope) ** 2 / (math.pi * (1.0 + slope ** 2)))


def bn_relu_gain(batch: int, spatial: bool = False) -> float:
    """Per-block backward gain of ||grad W|| through affine -> BN -> ReLU as measured: after a
    Linear (BN1d), :data:`MLP_BN_RELU_GAIN_BY_BATCH` interpolated in log(batch) and held at its
    end values outside 8..1024 (below 8 the gain is larger still); after a conv (BN over
    positions), :data:`CONV_BN_RELU_GAIN` [measured]."""
    if spatial:
        return CONV_BN_RELU_GAIN
    batches, gains = zip(*MLP_BN_RELU_GAIN_BY_BATCH)
    return float(np.interp(math.log(max(batch, 1)), [math.log(b) for b in batches], gains))


def bn_activation_gain(kind: str, scale: float = 1.0, options: dict | None = None) -> float:
    """Per-block backward RMS gain of affine -> BN -> phi(scale * .) at large batch (mean field):
    sqrt(scale^2 E[phi'(scale u)^2] / Var phi(scale u)), u ~ N(0, 1) [inferred; reproduces
    docs/SCIENCE.md §2's L = 1000 log-norms: tanh 84.8, sin 133.9, ReLU 188.9 measured].
    ``scale`` = :func:`shaping_scale` gives the shaped activation of arXiv:2310.02012."""
    out, slope2, _ = activation_moments(kind, Moments(scale * scale, scale * scale), options)
    return math.sqrt(scale * scale * slope2 / out.var) if out.var > 0 else float("inf")


def shaping_scale(layer: int, alpha: float = SHAPING_ALPHA) -> float:
    """The activation-shaping gain l^-alpha of layer l (1-based), arXiv:2310.02012 [paper]."""
    return layer ** -alpha


def bn_linear_growth(depth: int, orthogonal: bool) -> float:
    """Gradient-norm growth of a BN-linear stack (BN, no activation) over ``depth`` layers:
    1 with orthogonal weights (Meterez et al., arXiv:2310.02012 [paper]: bounded at any depth
    for linearly independent inputs, batch = width); with Gaussian weights
    exp of the measured log-norm excess at width = batch = 100, interpolated in depth (held at
    the end values outside 5..1000) [measured]."""
    if orthogonal:
        return 1.0
    depths, logs = zip(*BN_LINEAR_GAUSSIAN_LOG_GROWTH)
    return math.exp(float(np.interp(depth, depths, logs)))


def standard_moments(kind: str, options: dict | None = None) -> tuple[float, float]:
    """(E[phi(z)^2], E[phi'(z)^2]) of an activation, z ~ N(0, 1), by Gauss-Hermite quadrature
    (closed form for the piecewise-linear kinds)."""
    out, slope2, _ = activation_moments(kind, Moments(1.0, 1.0), options)
    return out.m2, slope2


def activation_gain(kind: str, options: dict | None = None) -> float:
    """The variance-preserving gain of an activation, 1 / sqrt(E[phi(z)^2]), z ~ N(0, 1): weights
    of std gain / sqrt(fan_in) keep a unit pre-activation second moment at 1 layer after layer.
    He et al.'s argument (arXiv:1502.01852, eq. 8: Var[y] = fan_in Var[w] E[x^2] for zero-mean
    weights) with E[x^2] integrated for any phi [inferred]. It is He's sqrt(2 / (1 + s^2)) for
    (leaky) ReLU exactly, 1.000 for SELU (LeCun's, Klambauer et al., arXiv:1706.02515), 1.59 for
    tanh (PyTorch's calculate_gain says 5/3), 1.53 for GELU, 1.68 for SiLU."""
    square, _ = standard_moments(kind, options)
    return 1.0 / math.sqrt(square) if square > 0 else math.inf


def stack_gains(kind: str, weight_gain2: float, options: dict | None = None,
                q: float = 1.0) -> tuple[float, float]:
    """(forward, backward) per-layer RMS gains of an unnormalised square affine -> phi layer with
    fan_in E[w^2] = ``weight_gain2`` and no bias, for pre-activations of second moment ``q``:
    forward sqrt(weight_gain2 E[phi(sqrt(q) z)^2] / q), the length map of mean-field theory
    (Poole et al., arXiv:1606.05340); backward sqrt(weight_gain2 E[phi'(sqrt(q) z)^2]), the
    square root of its chi_1, which sets the gradient's growth per layer (Schoenholz et al.,
    arXiv:1611.01232). At the variance-preserving gain and q = 1 the forward gain is 1 and the
    backward one sqrt(E[phi'(z)^2] / E[phi(z)^2]): exactly 1 for the ReLU family, 1.035 for
    GELU, 1.085 for tanh, 1.15 for sin, 0.39 for the sigmoid [inferred]. PyTorch's default
    init (:data:`DEFAULT_WEIGHT_GAIN2`) gives ReLU 1/sqrt(6) = 0.408 both ways
    (docs/SCIENCE.md §5)."""
    out, slope2, _ = activation_moments(kind, Moments(q, q), options)
    return math.sqrt(weight_gain2 * out.m2 / q), math.sqrt(weight_gain2 * slope2)


def is_homogeneous(kind: str) -> bool:
    """phi(c x) = c phi(x) for c > 0 (the ReLU family): the scale of its input then only
    scales its output, and a normalisation after it removes that scale."""
    return kind in _PIECEWISE


def zero_at_zero(kind: str, options: dict | None = None) -> bool:
    """phi(0) == 0: an activation that keeps a zero branch zero (not the sigmoid, cos...)."""
    if kind in _PIECEWISE:
        return True
    if kind not in _SMOOTH:
        return False
    return abs(float(_SMOOTH[kind][0](np.zeros(1), options or {})[0])) < 1e-12


def init_label(kind: str, options: dict | None = None) -> str:
    """How messages name the variance-preserving init of an activation: He for the ReLU family
    (where :func:`activation_gain` is He's formula), else by its gain."""
    if kind in _PIECEWISE:
        return "He"
    return f"variance-preserving (gain {activation_gain(kind, options):.3g} for {kind})"


# PyTorch's default Linear/Conv init, kaiming_uniform_ with a = sqrt(5): fan_in Var(w) = 1/3.
DEFAULT_WEIGHT_GAIN2 = 1.0 / 3.0


def residual_stack_ratio(blocks: int, branch_gain2: float, branch_m2: float,
                         stream_m2: float) -> float:
    """First/last RMS gradient ratio of ``blocks`` pre-activation residual blocks
    x + F(x) whose branch starts with BN: block l's stream has second moment
    m_l = stream_m2 + l branch_m2 and its branch passes back branch_gain2 / m_l of the gradient,
    so the ratio is prod_l sqrt(1 + branch_gain2 / m_l) ~ L^(branch_gain2 / (2 branch_m2)):
    polynomial, not exponential (arXiv:1812.00342 [paper]; docs/SCIENCE.md §4). A branch whose last
    BN gamma is 0 adds nothing (branch_m2 = branch_gain2 = 0): ratio 1 (arXiv:1706.02677)."""
    return math.prod(math.sqrt(1.0 + branch_gain2 / (stream_m2 + l * branch_m2))
                     for l in range(blocks - 1))


def dead_fraction(x: Moments, samples: int) -> float:
    """Expected fraction of ReLU units whose input x is <= 0 for all ``samples`` values (the
    dead units of Arnekvist et al., arXiv:2005.06195), samples taken as independent:
    E_units[Phi(-mu / sqrt(var))^samples] [inferred]. A zero-mean unit (BN before the ReLU) is
    dead by chance with probability 2^-samples."""
    mu = x.unit_means()
    if x.var <= 0:
        return _expect((mu <= 0).astype(float))
    return _expect(_cdf(-mu / math.sqrt(x.var)) ** samples)
