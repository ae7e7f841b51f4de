"""bnlint.theory: the closed forms agree with each other, with sampling, and with the
measurements docs/SCIENCE.md records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bnlint.predict import theory
from bnlint.predict.theory import Moments

SCIENCE_L1000 = {"ReLU": 188.9, "Tanh": 84.8, "Sin": 133.9}  # log ||grad W_1||, docs/SCIENCE.md §2


def test_relu_gain_is_sqrt_pi_over_pi_minus_one_both_ways():
    closed = theory.leaky_relu_gain(0.0)
    assert closed == pytest.approx(math.sqrt(math.pi / (math.pi - 1)))
    assert theory.bn_activation_gain("ReLU") == pytest.approx(closed, rel=1e-6)


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.5])
def test_leaky_relu_closed_form_matches_the_integral(slope):
    assert theory.bn_activation_gain("LeakyReLU", options={"negative_slope": slope}) == \
        pytest.approx(theory.leaky_relu_gain(slope), rel=1e-6)
    assert 1.0 < theory.leaky_relu_gain(slope) < theory.leaky_relu_gain(0.0)
    assert theory.leaky_relu_gain(1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", sorted(SCIENCE_L1000))
def test_mean_field_gain_reproduces_the_measured_log_norm_at_depth_1000(kind):
    predicted = 1000 * math.log(theory.bn_activation_gain(kind))
    print(f"{kind}: predicted {predicted:.1f}, measured {SCIENCE_L1000[kind]}")
    assert predicted == pytest.approx(SCIENCE_L1000[kind], rel=0.05)


def test_shaping_brings_the_gain_to_one_with_depth():
    gains = [theory.bn_activation_gain("Tanh", theory.shaping_scale(layer))
             for layer in (1, 10, 100, 1000)]
    assert gains == sorted(gains, reverse=True) and gains[-1] - 1 < 1e-4
    shaped = sum(math.log(theory.bn_activation_gain("Tanh", theory.shaping_scale(layer)))
                 for layer in range(1, 1001))
    assert shaped < 0.01 * 1000 * math.log(theory.bn_activation_gain("Tanh"))


def test_measured_bn_relu_gain_falls_with_batch_and_convs_have_their_own():
    gains = [theory.bn_relu_gain(b) for b in (2, 8, 16, 24, 32, 100, 2048, 4096)]
    assert gains == sorted(gains, reverse=True)
    assert gains[0] == gains[1] and gains[-2] == gains[-1]  # held outside the measured range
    # convs: one gain whatever the batch, below the MLP's at the batches it was measured at
    # (8-32): docs/SCIENCE.md §1, conv stacks run below the MLP rate
    (conv,) = {theory.bn_relu_gain(b, spatial=True) for b in (2, 8, 16, 32, 4096)}
    assert all(conv < theory.bn_relu_gain(b) for b in (8, 16, 32))


@pytest.mark.parametrize("kind", ["ReLU", "Tanh", "GELU", "Sigmoid", "LeakyReLU"])
def test_activation_moments_match_sampling(kind):
    """Mean-field moments against a sampled layer: unit means ~ N(0.3, 0.25), spread 0.8."""
    gen = torch.Generator().manual_seed(0)
    units = 0.3 + 0.5 * torch.randn(4000, 1, generator=gen, dtype=torch.float64)
    z = (units + 0.8 * torch.randn(4000, 400, generator=gen, dtype=torch.float64))
    x = Moments(float(z.pow(2).mean()), float(z.var(dim=1).mean()), float(z.mean()))
    z.requires_grad_()
    fn = {"ReLU": torch.relu, "Tanh": torch.tanh, "GELU": torch.nn.functional.gelu,
          "Sigmoid": torch.sigmoid, "LeakyReLU": lambda v: torch.nn.functional.leaky_relu(v, 0.1)}
    out = fn[kind](z)
    (slope,) = torch.autograd.grad(out.sum(), z)
    out = out.detach()
    moments, slope2, unit_slope2 = theory.activation_moments(kind, x, {"negative_slope": 0.1})
    sampled = (out.pow(2).mean(), out.var(dim=1).mean(), out.mean(), slope.pow(2).mean(),
               slope.mean(dim=1).pow(2).mean())
    for name, got, want in zip(("m2", "var", "mean", "slope2", "unit_slope2"),
                               (*moments, slope2, unit_slope2), sampled):
        assert got == pytest.approx(float(want), rel=0.03, abs=1e-3), name


def test_affine_and_batchnorm_rules():
    out, back = theory.affine_moments(Moments(2.0, 1.5, 0.5), weight2=0.01, bias2=0.1,
                                      fan_in=100, fan_out=50)
    assert out == Moments(2.1, 1.5, 0.0) and back == pytest.approx(0.5)
    out, back = theory.batchnorm_moments(Moments(4.0, 3.0, 1.0), 1.0, 0.0, 0.0, eps=1.0)
    assert out.var == pytest.approx(0.75) and back == pytest.approx(0.25)


def test_merges_and_pools():
    a, b = Moments(1.0, 0.5, 0.5), Moments(2.0, 2.0, 0.0)
    assert theory.merge_moments("Add", [(a, 10), (b, 10)]) == Moments(3.0, 2.5, 0.5)
    assert theory.merge_moments("Cat", [(a, 10), (b, 30)]).m2 == pytest.approx(1.75)
    pooled, back = theory.pool_moments("AdaptiveAvgPool2d", Moments(1.0, 0.6, 0.6), k=16)
    assert pooled.m2 == pytest.approx(0.4 + 0.6 / 16) and back == pytest.approx(1 / 256)
    assert theory.pool_moments("MaxPool2d", a, k=4) == (a, 0.25)


def test_stack_gains_default_vs_he_for_relu():
    """docs/SCIENCE.md §5: PyTorch's default gives ReLU 1/sqrt(6) per layer, He init 1."""
    assert theory.stack_gains("ReLU", theory.DEFAULT_WEIGHT_GAIN2) == \
        pytest.approx((1 / math.sqrt(6), 1 / math.sqrt(6)))
    assert theory.stack_gains("ReLU", 2.0) == pytest.approx((1.0, 1.0))
    he = 2.0 / (1 + 0.2 ** 2)
    assert theory.stack_gains("LeakyReLU", he, {"negative_slope": 0.2}) == \
        pytest.approx((1.0, 1.0))


@pytest.mark.parametrize("slope", [0.0, 0.01, 0.2, 0.5])
def test_variance_preserving_gain_is_he_for_the_relu_family(slope):
    assert theory.activation_gain("LeakyReLU", {"negative_slope": slope}) == \
        pytest.approx(math.sqrt(2 / (1 + slope ** 2)), rel=1e-9)
    assert theory.activation_gain("ReLU") == pytest.approx(math.sqrt(2), rel=1e-9)
    assert theory.init_label("LeakyReLU", {"negative_slope": slope}) == "He"


def test_variance_preserving_gain_against_known_values():
    """SELU is built to keep unit variance at LeCun's init (arXiv:1706.02515); PyTorch's
    calculate_gain gives tanh 5/3 (an empirical choice: within 5% of the computed 1.59)."""
    assert theory.activation_gain("SELU") == pytest.approx(1.0, abs=1e-3)
    assert theory.activation_gain("Tanh") == pytest.approx(
        torch.nn.init.calculate_gain("tanh"), rel=0.05)
    assert "GELU" in theory.init_label("GELU") and "1.53" in theory.init_label("GELU")


ELEMENTWISE = {"GELU": torch.nn.functional.gelu, "SiLU": torch.nn.functional.silu,
               "ELU": torch.nn.functional.elu, "Mish": torch.nn.functional.mish,
               "Softplus": torch.nn.functional.softplus,
               "Hardswish": torch.nn.functional.hardswish, "Tanh": torch.tanh,
               "Sigmoid": torch.sigmoid, "Sin": torch.sin,
               "LeakyReLU": lambda v: torch.nn.functional.leaky_relu(v, 0.3)}


@pytest.mark.parametrize("kind", sorted(ELEMENTWISE))
def test_variance_preserving_gain_and_chain_rate_match_sampling(kind):
    """E[phi(z)^2] and E[phi'(z)^2] by quadrature against 2M samples of the torch function."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2_000_000, generator=gen, dtype=torch.float64, requires_grad=True)
    out = ELEMENTWISE[kind](z)
    (slope,) = torch.autograd.grad(out.sum(), z)
    options = {"negative_slope": 0.3}
    gain = theory.activation_gain(kind, options)
    assert gain == pytest.approx(float(out.detach().pow(2).mean()) ** -0.5, rel=0.01)
    forward, backward = theory.stack_gains(kind, gain * gain, options)
    assert forward == pytest.approx(1.0)
    assert backward == pytest.approx(gain * float(slope.pow(2).mean()) ** 0.5, rel=0.01)


def test_zero_at_zero():
    assert all(theory.zero_at_zero(k) for k in ("ReLU", "GELU", "SiLU", "Tanh", "Sin", "ELU"))
    assert not any(theory.zero_at_zero(k) for k in ("Sigmoid", "Softplus", "Cos", "Nope"))


def test_pytorch_default_init_is_the_default_gain():
    torch.manual_seed(0)
    w = torch.nn.Linear(512, 512).weight.detach()
    assert float(w.pow(2).mean()) * 512 == pytest.approx(theory.DEFAULT_WEIGHT_GAIN2, rel=0.02)
    he = torch.nn.init.kaiming_normal_(torch.empty(512, 512))
    assert float(he.pow(2).mean()) * 512 == pytest.approx(theory.activation_gain("ReLU") ** 2,
                                                          rel=0.02)


def test_residual_growth_is_polynomial_and_zero_init_is_flat():
    ratios = [theory.residual_stack_ratio(L, 1.0, 1.0, 1.0) for L in (10, 100, 1000)]
    # polynomial: each tenfold in depth multiplies the ratio by about the same factor
    assert ratios[2] / ratios[1] == pytest.approx(ratios[1] / ratios[0], rel=0.2)
    assert ratios[2] < theory.leaky_relu_gain(0.0) ** 20  # far below a 1000-block plain chain
    assert theory.residual_stack_ratio(1000, 0.0, 0.0, 1.0) == 1.0


def test_bn_linear_growth():
    assert theory.bn_linear_growth(1000, orthogonal=True) == 1.0
    growth = [theory.bn_linear_growth(d, orthogonal=False) for d in (5, 50, 200, 1000, 5000)]
    assert growth == sorted(growth) and growth[0] > 1 and growth[-1] == growth[-2]


def test_dead_fraction_chance_level_and_bias_dominated_units():
    assert theory.dead_fraction(Moments(1.0, 1.0), samples=16) == pytest.approx(2 ** -16)
    assert theory.dead_fraction(Moments(1.0, 1e-8), samples=16) == pytest.approx(0.5, abs=0.01)


def test_cross_entropy_gradient_matches_sampling():
    """The split of p - onehot(y) into batch mean and rest, against sampled logits."""
    rng = np.random.default_rng(1)
    classes, spread, var = 10, 0.6, 0.5
    inc, common = [], []
    for _ in range(200):
        logits = rng.normal(0, spread, (1, classes)) + rng.normal(0, math.sqrt(var),
                                                                  (512, classes))
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        g = p - np.eye(classes)[rng.integers(0, classes, 512)]
        mean = p.mean(0) - 1 / classes
        common.append((mean ** 2).mean())
        inc.append(((g - g.mean(0)) ** 2).mean())
    want_inc, want_common = theory.loss_gradient(Moments(spread ** 2 + var, var), classes)
    assert want_common == pytest.approx(np.mean(common), rel=0.15)
    assert want_inc == pytest.approx(np.mean(inc), rel=0.05)


def _length_map_log_slope(kind: str) -> float:
    """d log f / d log q at q = 1 of the length map f(q) = gain^2 E[phi(sqrt(q) z)^2] at the
    variance-preserving gain (docs/SCIENCE.md §8), by central difference."""
    gain2 = theory.activation_gain(kind) ** 2

    def f(q: float) -> float:
        return gain2 * theory.activation_moments(kind, Moments(q, q))[0].m2

    h = 1e-3
    return math.log(f(1 + h) / f(1 - h)) / math.log((1 + h) / (1 - h))


@pytest.mark.parametrize("kind, slope", [("ReLU", 1.0), ("Tanh", 0.46), ("Sin", 0.31),
                                         ("ELU", 0.89), ("SELU", 0.78), ("GELU", 1.14),
                                         ("SiLU", 1.17), ("Mish", 1.08)])
def test_variance_preserving_fixed_point_is_unstable_for_gelu_silu_mish(kind, slope):
    """The variance-preserving gain's fixed point q = 1 is stable (slope < 1) for tanh, sin,
    ELU, SELU, neutral for ReLU and unstable (> 1) for GELU, SiLU and Mish: docs/SCIENCE.md §8's
    values."""
    assert _length_map_log_slope(kind) == pytest.approx(slope, abs=0.006)


def test_gelu_at_its_variance_preserving_gain_grows_like_relu_at_large_q():
    """Sampled: at q = 100 a GELU layer at gain 1.53 multiplies q by gain^2 / 2 = 1.18, the
    ReLU-like branch that makes its fixed point at q = 1 unstable."""
    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gain2 = theory.activation_gain("GELU") ** 2
    assert float(gain2 * torch.nn.functional.gelu(10 * z).pow(2).mean() / 100) \
        == pytest.approx(gain2 / 2, rel=0.01)
