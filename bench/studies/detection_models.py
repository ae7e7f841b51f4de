"""The labeled model suite of bench/studies/detection.py: small models, each with a synthetic task
and the optimizer it is trained with. Clean variants and variants with one seeded defect each,
across bnlint's rule families (ordering 1xx, depth 2xx, init 3xx, targets 4xx, learning rate).

The ``defect`` is what was *seeded*; whether it is a *problem* is decided only by training the
variant (bench/studies/detection.py), never by bnlint's rules.

This is the study's *calibration* set: the suite bnlint's thresholds were read off.
The tasks are described in bench/studies/detection_tasks.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bench.studies.detection_tasks import CLASSES, IMG_C, IN_CLS, IN_REG

WIDTH, CNN_WIDTH = 64, 16


@dataclass
class Variant:
    name: str
    family: str                      # clean | ordering | depth | init | targets | lr | inputs
    defect: str                      # what was seeded ("-" for none)
    task: str                        # a name in bench/studies/detection_tasks.py
    build: Callable[[], nn.Module]
    lr: float = 0.05
    optimizer: str = "sgd"           # sgd (momentum 0.9) | adam | adamw | rmsprop | adagrad
    momentum: float = 0.9            # SGD's
    opt_args: dict[str, Any] = field(default_factory=dict)  # the optimizer's other arguments
    warmup: int = 0                  # steps of linear learning-rate warm-up from 0 (0: none)
    target_scales: tuple[float, ...] = (1.0,)
    target_shift: float = 0.0        # added to the (scaled) regression targets
    quick: bool = False              # part of the --quick suite
    seed: int = 0


# ---------------------------------------------------------------- building blocks


def linear_bn_relu(i: int, o: int) -> list[nn.Module]:
    return [nn.Linear(i, o, bias=False), nn.BatchNorm1d(o), nn.ReLU()]


def linear_bn_tanh(i: int, o: int) -> list[nn.Module]:
    return [nn.Linear(i, o, bias=False), nn.BatchNorm1d(o), nn.Tanh()]


def stack(n_in: int, depth: int, block: Callable[[int, int], list[nn.Module]], n_out: int,
          width: int = WIDTH, head: list[nn.Module] | None = None) -> nn.Sequential:
    """``depth`` blocks of ``block(in, out)`` then a Linear head (and ``head`` after it)."""
    layers: list[nn.Module] = []
    d = n_in
    for _ in range(depth):
        layers += block(d, width)
        d = width
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers, *(head or []))


def conv_bn_relu(i: int, o: int) -> list[nn.Module]:
    return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]


def conv_stack(depth: int, block: Callable[[int, int], list[nn.Module]],
               width: int = CNN_WIDTH) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = IMG_C
    for _ in range(depth):
        layers += block(d, width)
        d = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(d, CLASSES))


def he_init(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def xavier_init(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain("tanh"))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


class ResBlock(nn.Module):
    """ReLU(x + BN(Linear(ReLU(BN(Linear(x)))))); ``zero_init`` starts the branch's last BN
    gamma at 0, so the block is the identity at initialisation (Goyal et al.)."""

    def __init__(self, width: int, zero_init: bool):
        super().__init__()
        self.fc1 = nn.Linear(width, width, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(width, width, bias=False)
        self.bn2 = nn.BatchNorm1d(width)
        if zero_init:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x):
        return self.act(x + self.bn2(self.fc2(self.act(self.bn1(self.fc1(x))))))


class ResMLP(nn.Module):
    def __init__(self, blocks: int = 8, zero_init: bool = True, n_out: int = CLASSES):
        super().__init__()
        self.stem = nn.Linear(IN_CLS, WIDTH)
        self.blocks = nn.Sequential(*[ResBlock(WIDTH, zero_init) for _ in range(blocks)])
        self.head = nn.Linear(WIDTH, n_out)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class BasicBlock(nn.Module):
    """Post-activation ResNet block: ReLU(x + BN(conv(ReLU(BN(conv(x))))))."""

    def __init__(self, width: int, zero_init: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU()
        if zero_init:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x):
        return self.relu2(x + self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))))


class ResCNN(nn.Module):
    def __init__(self, blocks: int = 4, zero_init: bool = True):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(IMG_C, CNN_WIDTH, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(CNN_WIDTH), nn.ReLU())
        self.blocks = nn.Sequential(*[BasicBlock(CNN_WIDTH, zero_init) for _ in range(blocks)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(CNN_WIDTH, CLASSES)

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


# ---------------------------------------------------------------- variants


def _fill(model: nn.Module, kinds: tuple[type, ...], how: Callable[[nn.Module], None],
          skip_last: bool = True) -> nn.Module:
    mods = [m for m in model.modules() if isinstance(m, kinds)]
    for m in mods[:-1] if skip_last else mods:
        how(m)
    return model


def _nan_weight(model: nn.Module) -> nn.Module:
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    with torch.no_grad():
        first.weight[0, 0] = float("nan")
    return model


def _scale_first(model: nn.Module, factor: float) -> nn.Module:
    first = next(m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    with torch.no_grad():
        first.weight.mul_(factor)
    return model


def _zero(m: nn.Module) -> None:
    nn.init.zeros_(m.weight)


def _const(m: nn.Module) -> None:
    nn.init.constant_(m.weight, 0.05)


def _neg_bias(m: nn.Module) -> None:
    nn.init.constant_(m.bias, -2.0)


def suite() -> list[Variant]:
    V = Variant  # noqa: N806 - a short alias for the table below
    relu_mlp = lambda i, o: [nn.Linear(i, o), nn.ReLU()]  # noqa: E731
    return [
        # ---- clean
        V("mlp-bn-relu-3", "clean", "-", "cls",
          lambda: stack(IN_CLS, 3, linear_bn_relu, CLASSES), quick=True),
        V("mlp-he-relu-4", "clean", "-", "cls",
          lambda: he_init(stack(IN_CLS, 4, relu_mlp, CLASSES))),
        V("mlp-default-relu-3", "clean", "-", "cls",
          lambda: stack(IN_CLS, 3, relu_mlp, CLASSES)),
        V("mlp-tanh-xavier-3", "clean", "-", "cls",
          lambda: xavier_init(stack(IN_CLS, 3, lambda i, o: [nn.Linear(i, o), nn.Tanh()],
                                    CLASSES))),
        V("mlp-ln-gelu-6", "clean", "-", "cls",
          lambda: stack(IN_CLS, 6, lambda i, o: [nn.Linear(i, o), nn.LayerNorm(o), nn.GELU()],
                        CLASSES)),
        V("mlp-bn-relu-3-adam", "clean", "-", "cls",
          lambda: stack(IN_CLS, 3, linear_bn_relu, CLASSES), lr=1e-3, optimizer="adam"),
        V("resmlp-8-zero-init", "clean", "-", "cls", lambda: ResMLP(8, True), quick=True),
        V("cnn-bn-relu-3", "clean", "-", "img", lambda: conv_stack(3, conv_bn_relu), quick=True),
        V("rescnn-4-zero-init", "clean", "-", "img", lambda: ResCNN(4, True)),
        V("reg-relu-standardized", "clean", "-", "reg",
          lambda: he_init(stack(IN_REG, 3, relu_mlp, 1)), lr=0.01, quick=True),
        V("reg-bn-relu-standardized", "clean", "-", "reg",
          lambda: stack(IN_REG, 3, linear_bn_relu, 1), lr=0.01),
        # ---- seeded defects that may or may not hurt training (labelled by training)
        V("bias-before-bn", "ordering", "Linear bias before BN", "cls",
          lambda: stack(IN_CLS, 3, lambda i, o: [nn.Linear(i, o), nn.BatchNorm1d(o), nn.ReLU()],
                        CLASSES)),
        V("repeated-relu", "ordering", "ReLU after ReLU", "cls",
          lambda: stack(IN_CLS, 3, lambda i, o: [*linear_bn_relu(i, o), nn.ReLU()], CLASSES)),
        V("bn-after-bn", "ordering", "BN feeds BN", "cls",
          lambda: stack(IN_CLS, 3, lambda i, o: [nn.Linear(i, o, bias=False), nn.BatchNorm1d(o),
                                                 nn.BatchNorm1d(o), nn.ReLU()], CLASSES)),
        V("dropout-before-bn", "ordering", "Dropout(0.3) -> Linear -> BN", "cls",
          lambda: stack(IN_CLS, 3, lambda i, o: [*linear_bn_relu(i, o), nn.Dropout(0.3)],
                        CLASSES), quick=True),
        V("cnn-dropout-before-bn", "ordering", "Dropout2d(0.2) -> conv -> BN2d", "img",
          lambda: conv_stack(3, lambda i, o: [*conv_bn_relu(i, o), nn.Dropout2d(0.2)])),
        V("tanh-before-bn", "ordering", "unnormalised tanh then BN", "cls",
          lambda: stack(IN_CLS, 3, lambda i, o: [nn.Linear(i, o), nn.Tanh(), nn.BatchNorm1d(o)],
                        CLASSES)),
        V("bn-no-running-stats", "ordering", "BN track_running_stats=False", "cls",
          lambda: stack(IN_CLS, 3, lambda i, o: [nn.Linear(i, o, bias=False),
                                                 nn.BatchNorm1d(o, track_running_stats=False),
                                                 nn.ReLU()], CLASSES)),
        V("bn-affine-false", "ordering", "BN affine=False before ReLU", "cls",
          lambda: stack(IN_CLS, 3, lambda i, o: [nn.Linear(i, o, bias=False),
                                                 nn.BatchNorm1d(o, affine=False), nn.ReLU()],
                        CLASSES)),
        V("bn-on-output", "ordering", "BN on the logits", "cls",
          lambda: stack(IN_CLS, 3, linear_bn_relu, CLASSES, head=[nn.BatchNorm1d(CLASSES)])),
        V("bn-momentum-zero", "init", "BN momentum=0 (running stats never move)", "cls",
          lambda: stack(IN_CLS, 3, lambda i, o: [nn.Linear(i, o, bias=False),
                                                 nn.BatchNorm1d(o, momentum=0.0), nn.ReLU()],
                        CLASSES)),
        V("resmlp-8-no-zero-init", "depth", "residual branches without zero-init", "cls",
          lambda: ResMLP(8, False)),
        # ---- depth and gradient flow
        V("plain-bn-relu-20", "depth", "20 plain Linear-BN-ReLU blocks", "cls",
          lambda: stack(IN_CLS, 20, linear_bn_relu, CLASSES)),
        V("plain-bn-relu-50", "depth", "50 plain Linear-BN-ReLU blocks", "cls",
          lambda: stack(IN_CLS, 50, linear_bn_relu, CLASSES), quick=True),
        V("plain-bn-tanh-50", "depth", "50 plain Linear-BN-tanh blocks", "cls",
          lambda: stack(IN_CLS, 50, linear_bn_tanh, CLASSES)),
        V("plain-cnn-bn-relu-24", "depth", "24 plain conv-BN-ReLU blocks", "img",
          lambda: conv_stack(24, conv_bn_relu)),
        V("deep-relu-default-20", "depth", "20 unnormalised ReLU layers, default init", "cls",
          lambda: stack(IN_CLS, 20, relu_mlp, CLASSES), quick=True),
        V("deep-sigmoid-10", "depth", "10 unnormalised sigmoid layers", "cls",
          lambda: stack(IN_CLS, 10, lambda i, o: [nn.Linear(i, o), nn.Sigmoid()], CLASSES)),
        V("deep-tanh-default-30", "depth", "30 unnormalised tanh layers, default init", "cls",
          lambda: stack(IN_CLS, 30, lambda i, o: [nn.Linear(i, o), nn.Tanh()], CLASSES)),
        V("deep-cnn-relu-default-12", "depth", "12 unnormalised conv-ReLU, default init", "img",
          lambda: conv_stack(12, lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.ReLU()])),
        # ---- initialisation
        V("nan-weight", "init", "one NaN weight", "cls",
          lambda: _nan_weight(stack(IN_CLS, 3, linear_bn_relu, CLASSES)), quick=True),
        V("huge-first-weights", "init", "first layer weights x1000, no BN", "cls",
          lambda: _scale_first(he_init(stack(IN_CLS, 3, relu_mlp, CLASSES)), 1000.0)),
        V("zero-hidden-weights", "init", "hidden Linear weights all zero", "cls",
          lambda: _fill(stack(IN_CLS, 3, relu_mlp, CLASSES), (nn.Linear,), _zero)),
        V("constant-hidden-weights", "init", "hidden Linear weights constant 0.05", "cls",
          lambda: _fill(stack(IN_CLS, 3, relu_mlp, CLASSES), (nn.Linear,), _const),
          quick=True),
        V("negative-bias-dead", "init", "hidden biases -2 (ReLUs dead at init)", "cls",
          lambda: _fill(he_init(stack(IN_CLS, 3, relu_mlp, CLASSES)), (nn.Linear,), _neg_bias)),
        # ---- targets
        V("reg-relu-on-output", "targets", "ReLU on a regression head, targets mean -1", "reg",
          lambda: he_init(stack(IN_REG, 3, relu_mlp, 1, head=[nn.ReLU()])), lr=0.01,
          target_shift=-1.0, quick=True),
        V("reg-relu-on-output-positive", "targets", "ReLU on a regression head, targets "
          "mean +3", "reg", lambda: he_init(stack(IN_REG, 3, relu_mlp, 1, head=[nn.ReLU()])),
          lr=0.01, target_shift=3.0),
        V("reg-tiny-targets", "targets", "targets 1e-3 x standardised, SGD momentum", "reg",
          lambda: he_init(stack(IN_REG, 4, relu_mlp, 1)), lr=0.01, target_scales=(1e-3,),
          quick=True),
        V("reg-huge-targets", "targets", "targets 100 x standardised", "reg",
          lambda: he_init(stack(IN_REG, 3, relu_mlp, 1)), lr=0.01, target_scales=(100.0,)),
        V("reg2-mixed-scales", "targets", "two outputs, scales 1 and 1e-3", "reg2",
          lambda: he_init(stack(IN_REG, 3, relu_mlp, 2)), lr=0.01, target_scales=(1.0, 1e-3)),
        V("reg-bn-on-output", "ordering", "BN on a regression output", "reg",
          lambda: stack(IN_REG, 3, linear_bn_relu, 1, head=[nn.BatchNorm1d(1)]), lr=0.01),
        # ---- learning rate (config optimizer lr)
        V("lr-too-large", "lr", "SGD lr 1.0 on an unnormalised MLP", "cls",
          lambda: he_init(stack(IN_CLS, 3, relu_mlp, CLASSES)), lr=1.0, quick=True),
        V("lr-too-large-bn", "lr", "SGD lr 5.0 on a BN MLP", "cls",
          lambda: stack(IN_CLS, 3, linear_bn_relu, CLASSES), lr=5.0),
        V("reg-lr-too-large", "lr", "SGD lr 0.3 on a regression MLP", "reg",
          lambda: he_init(stack(IN_REG, 3, relu_mlp, 1)), lr=0.3),
    ]
