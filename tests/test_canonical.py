"""Issue 12, static half: every elementwise activation gets the depth and init rules, and the
patterns canonical architectures use on purpose get no warning. One test per cause, each on a
small model written here in the style of the architecture it stands for."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bnlint
from bnlint.config import Config
from bnlint.predict import theory

STATIC = Config(probe=False)


def _codes(model, x, config=STATIC):
    return {f.code: f for f in bnlint.lint(model, x, config=config).findings}


def _loud(model, x):
    return {c: f for c, f in _codes(model, x).items() if f.severity in ("warning", "error")}


def stack(act, depth=20, width=64, std=None):
    """``depth`` Linear -> act layers and a head; weights at PyTorch's default, or normal with
    ``std`` and zero biases."""
    torch.manual_seed(0)
    layers = [m for _ in range(depth) for m in (nn.Linear(width, width), act())]
    if std is not None:
        for m in layers:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=std)
                nn.init.zeros_(m.bias)
    return nn.Sequential(*layers, nn.Linear(width, 2))


# ---------------------------------------------------------------- any activation


@pytest.mark.parametrize("act", [nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.ELU, nn.Tanh,
                                 lambda: nn.LeakyReLU(0.3)])
def test_deep_stack_at_default_init_is_found_for_any_activation(act):
    """GELU and SiLU stacks at PyTorch's default init vanish (issue 12 measured 3e-12 and 2e-6
    first/last); the init rule finds them from the graph, and says what init would do."""
    found = _codes(stack(act), torch.randn(32, 64))
    f = found["BNL302"]
    predicted = f.evidence.predicted
    assert predicted["grad_ratio"] < 1e-3 and "vanish" in f.message
    assert "PyTorch's default init" in f.message
    assert 1e-3 <= predicted["reference_init"]["grad_ratio"] <= 70
    assert "BNL204" not in found  # the init, not the architecture


@pytest.mark.parametrize("act, kind", [(nn.GELU, "GELU"), (nn.SiLU, "SiLU"), (nn.Tanh, "Tanh"),
                                       (nn.ELU, "ELU")])
def test_the_same_stack_at_its_variance_preserving_init_is_clean(act, kind):
    std = theory.activation_gain(kind) / math.sqrt(64)
    assert not {"BNL204", "BNL301", "BNL302"} & set(_codes(stack(act, std=std),
                                                            torch.randn(32, 64)))


@pytest.mark.parametrize("act", [nn.GELU, nn.SiLU, nn.ReLU])
def test_a_stack_initialised_too_large_explodes_and_is_found(act):
    found = _codes(stack(act, depth=12, std=4 / math.sqrt(64)), torch.randn(32, 64))
    assert "explode" in found["BNL302"].message
    assert found["BNL302"].evidence.predicted["signal_ratio"] > 1e3


def test_an_activation_that_shrinks_whatever_the_init_is_the_architecture():
    """The sigmoid's mean-field rate at its variance-preserving init is 0.39 per layer."""
    found = _codes(stack(nn.Sigmoid, depth=12), torch.randn(32, 64))
    assert "BNL204" in found and "BNL302" not in found
    reference = found["BNL204"].evidence.predicted["reference_init"]
    assert reference["grad_ratio"] < 1e-3 and "Sigmoid" in reference["init"]


def test_a_deep_stack_whose_own_init_works_gets_no_architecture_finding():
    """60 tanh layers at gain 1 (Xavier for square layers, the edge of chaos for tanh): the
    variance-preserving gain 1.59 would make it explode (1.085 per layer), but as it is the
    gradient is fine, so there is nothing to report."""
    model = stack(nn.Tanh, depth=60, std=1 / math.sqrt(64))
    assert not {"BNL204", "BNL302"} & set(_codes(model, torch.randn(32, 64)))


def test_scalar_before_the_activation_is_part_of_the_reference_init():
    """SIREN-style sin(30 x) layers (arXiv:2006.09661) with weights uniform(+-sqrt(6/n)/30):
    the effective gain is sqrt(2), not the weights' own, so no finding."""
    class Siren(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(64, 64) for _ in range(6))
            for layer in self.layers:
                nn.init.uniform_(layer.weight, -math.sqrt(6 / 64) / 30, math.sqrt(6 / 64) / 30)
            self.head = nn.Linear(64, 1)

        def forward(self, x):
            for layer in self.layers:
                x = torch.sin(30 * layer(x))
            return self.head(x)

    assert not {"BNL204", "BNL301", "BNL302"} & set(_codes(Siren(), torch.randn(32, 64)))


# ---------------------------------------------------------------- canonical patterns


def test_he_init_in_fan_out_mode_is_he_init():
    """VGG, SqueezeNet and RegNet's squeeze-excitation init convolutions with
    kaiming_normal_(mode="fan_out"): 3 -> 64 channels gives 0.2x the fan-in std."""
    class VGGish(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList([nn.Conv2d(3, 64, 3, padding=1),
                                        nn.Conv2d(64, 128, 3, padding=1),
                                        nn.Conv2d(128, 8, 1)])  # wide to narrow: SE squeeze
            for conv in self.convs:
                nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            self.head = nn.Linear(8, 10)

        def forward(self, x):
            for conv in self.convs:
                x = F.relu(conv(x))
            return self.head(x.mean((2, 3)))

    assert "BNL301" not in _codes(VGGish(), torch.randn(4, 3, 16, 16))


def test_weights_far_off_both_fan_references_are_still_found():
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    for i in (0, 2, 4):
        nn.init.normal_(model[i].weight, std=1.0)  # 5.7x He, 185x over the three layers
    f = _codes(model, torch.randn(16, 64))["BNL301"]
    assert f.evidence.predicted["std_ratio"] > 3 and "He init" in f.message
    assert f.evidence.predicted["stack_gain"] > 100


def test_a_shallow_stack_off_scale_per_layer_is_judged_by_its_compound_gain():
    """Issue 17: a 2-layer net at 0.2x He per layer (0.04x over the stack) trains; one layer at
    5.7x He alone is under the stack_gain bound too. Neither is reported."""
    for std, layers in ((0.2 * (2 / 64) ** 0.5, 2), (1.0, 1)):
        mods = [m for _ in range(layers) for m in (nn.Linear(64, 64), nn.ReLU())]
        model = nn.Sequential(*mods, nn.Linear(64, 2))
        for m in mods[::2]:
            nn.init.normal_(m.weight, std=std)
        assert "BNL301" not in _codes(model, torch.randn(16, 64)), (std, layers)


class FixupBlock(nn.Module):
    """Fixup (Zhang et al., arXiv:1901.09321): no normalisation, the branch's first layer He
    times L^(-1/2) (m = 2 layers per branch), its last layer 0, scalar biases and a multiplier."""

    def __init__(self, width, blocks):
        super().__init__()
        self.fc1 = nn.Linear(width, width, bias=False)
        self.fc2 = nn.Linear(width, width, bias=False)
        nn.init.normal_(self.fc1.weight, std=math.sqrt(2 / width) * blocks ** -0.5)
        nn.init.zeros_(self.fc2.weight)
        self.bias1, self.bias2 = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x + self.scale * self.fc2(F.relu(self.fc1(x + self.bias1))) + self.bias2


class SkipInitBlock(nn.Module):
    """SkipInit (De & Smith, arXiv:2002.10444): the branch times a learned scalar that starts at
    0; the branch layers keep He init."""

    def __init__(self, width):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        for fc in (self.fc1, self.fc2):
            nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")
        self.alpha = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x + self.alpha * self.fc2(F.relu(self.fc1(F.relu(x))))


@pytest.mark.parametrize("block", [lambda: FixupBlock(64, 32), lambda: SkipInitBlock(64)])
def test_fixup_and_skipinit_residual_nets_are_clean(block):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), *[block() for _ in range(32)], nn.Linear(64, 4))
    assert _loud(model, torch.randn(32, 16)) == {}


class SEResBlock(nn.Module):
    """A residual block whose branch ends conv -> BN -> squeeze-excitation gate, with a
    downsampling shortcut when the width changes (timm's SE-ResNeXt)."""

    def __init__(self, cin, cout, zero_init):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
        self.fc1, self.fc2 = nn.Conv2d(cout, 4, 1), nn.Conv2d(4, cout, 1)
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)) \
            if cin != cout else None
        if zero_init:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        y = y * torch.sigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        return (self.down(x) if self.down is not None else x) + y


def se_net(zero_init, blocks=4):
    """A stem, a downsampling block, then identity blocks."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), SEResBlock(8, 16, zero_init),
                         *[SEResBlock(16, 16, zero_init) for _ in range(blocks - 1)],
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def test_zero_gamma_behind_a_squeeze_excitation_gate_ends_the_branch():
    found = _codes(se_net(zero_init=True), torch.randn(4, 3, 16, 16))
    assert "BNL305" not in found and "BNL202" not in found


def test_residual_branch_count_leaves_out_the_shortcuts():
    """BNL202 once named the downsample BNs as branch ends and printed 'x1 ... xnan'."""
    f = _codes(se_net(zero_init=False, blocks=24), torch.randn(4, 3, 16, 16))["BNL202"]
    assert f.evidence.facts["batchnorms"] == [f"{i}.bn2" for i in range(1, 25)]
    assert f.message.startswith("24 of 24 residual branches") and "nan" not in f.message
    predicted = f.evidence.predicted
    assert predicted["forward_rms_ratio"] >= 2 * predicted["zero_init"]["forward_rms_ratio"]


class LeViTBlock(nn.Module):
    """LeViT's attention and MLP residuals (timm levit): projections Linear -> BatchNorm1d on
    the flattened tokens -> reshape_as, the branch's last BN zero-initialised."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv, self.qkv_bn = nn.Linear(dim, 3 * dim, bias=False), nn.BatchNorm1d(3 * dim)
        self.proj, self.proj_bn = nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim)
        self.fc1, self.bn1 = nn.Linear(dim, 2 * dim, bias=False), nn.BatchNorm1d(2 * dim)
        self.fc2, self.bn2 = nn.Linear(2 * dim, dim, bias=False), nn.BatchNorm1d(dim)
        nn.init.zeros_(self.proj_bn.weight)
        nn.init.zeros_(self.bn2.weight)

    @staticmethod
    def linear_norm(linear, bn, x):
        x = linear(x)
        return bn(x.flatten(0, 1)).reshape_as(x)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.linear_norm(self.qkv, self.qkv_bn, x).reshape(
            b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).softmax(-1)
        y = (attn @ v).transpose(1, 2).reshape(b, n, c)
        x = x + self.linear_norm(self.proj, self.proj_bn, F.hardswish(y))
        return x + self.linear_norm(self.fc2, self.bn2, F.hardswish(
            self.linear_norm(self.fc1, self.bn1, x)))


def test_zero_gamma_behind_an_attention_projection_and_a_reshape_ends_the_branch():
    torch.manual_seed(0)
    model = nn.Sequential(*[LeViTBlock() for _ in range(3)])
    found = _codes(model, torch.randn(4, 10, 16))
    assert "BNL305" not in found


def test_zero_gamma_that_is_not_a_branch_end_is_still_an_error():
    torch.manual_seed(0)
    block = LeViTBlock()
    nn.init.zeros_(block.qkv_bn.weight)  # inside the branch: everything after it is constant
    f = _codes(block, torch.randn(4, 10, 16))["BNL305"]
    assert f.severity == "error" and f.module == "qkv_bn"


def mobilenet_v3_block(momentum=0.01, eps=1e-3, width=480):
    """MobileNetV3's inverted residual (torchvision): pointwise and depthwise convs
    kaiming_normal_(mode="fan_out") (small for the depthwise one: fan-out counts its output
    channels), BatchNorm momentum 0.01 and eps 1e-3 as published."""
    torch.manual_seed(0)
    pw, dw = nn.Conv2d(16, width, 1, bias=False), nn.Conv2d(width, width, 3, padding=1,
                                                           groups=width, bias=False)
    for conv in (pw, dw):
        nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    return nn.Sequential(pw, nn.BatchNorm2d(width, eps=eps, momentum=momentum), nn.Hardswish(),
                         dw, nn.BatchNorm2d(width, eps=eps, momentum=momentum), nn.Hardswish(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def test_published_batchnorm_settings_are_in_range():
    assert "BNL305" not in _codes(mobilenet_v3_block(), torch.randn(4, 16, 8, 8))


@pytest.mark.parametrize("momentum, eps, said", [(0.0, 1e-3, "momentum=0"),
                                                 (0.9, 1e-3, "momentum=0.9"),
                                                 (0.01, 1e-1, "eps=0.1")])
def test_broken_batchnorm_settings_are_still_found(momentum, eps, said):
    f = _codes(mobilenet_v3_block(momentum, eps), torch.randn(4, 16, 8, 8))["BNL305"]
    assert said in f.message


class ScaledStdConv(nn.Conv2d):
    """NF-ResNet's scaled weight standardisation (Brock et al., arXiv:2101.08692; timm's
    ScaledStdConv2d): F.batch_norm over the weight, not the activations."""

    def forward(self, x):
        fan_in = self.weight[0].numel()
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                         weight=torch.full((self.out_channels,), fan_in ** -0.5),
                         training=True, momentum=0.0, eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


def test_weight_standardisation_is_not_a_batchnorm():
    torch.manual_seed(0)
    model = nn.Sequential(ScaledStdConv(3, 16, 3, padding=1), nn.ReLU(),
                          ScaledStdConv(16, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    assert _loud(model, torch.randn(4, 3, 16, 16)) == {}


def test_the_probe_does_not_lower_an_explosion_by_a_vanishing_check():
    """BNL302 is confirmed by a measured ratio below 1e-3 (vanishing); a stack it reports for
    exploding is not judged by that check."""
    found = _codes(stack(nn.Tanh, depth=12, std=4 / math.sqrt(64)), torch.randn(32, 64),
                   Config(probe_steps=1))
    f = found["BNL302"]
    assert "explode" in f.message and f.severity == "warning" and f.evidence.verdict is None
    assert f.evidence.measured["grad_ratio"] > 70  # the probe measured the explosion
