"""The held-out set of bench/studies/detection.py (issue 12): models written after the
calibration set (bench/studies/detection_models.py) and the validation set
(bench/studies/validation_models.py) were both spent on rule changes, to measure this cycle's
rules out of sample once more. Same ``Variant`` format, tasks (bench/studies/detection_tasks.py)
and training protocol; no new task.

Every variant was written, and labelled by training alone (bench/studies/holdout_labels.json,
``python -m bench.studies.detection --suite holdout --no-bnlint --record-labels``), before bnlint
was run on any of them. The comment above each variant states a *hypothesis* (why it might or
might not train); the label is whatever training gave, and a wrong hypothesis is kept with its
true label.

What is new against the two earlier sets: a ViT on image patches (pre-/post-/no LayerNorm,
attention without its 1/sqrt(d) scale, SGD and AdamW with warm-up), VGG-style CNNs with
max-pooling (an SGD lr sweep with BN, default init without BN), BN after the ReLU, a strided
ResNet with projection shortcuts, Hardswish/ELU/LeakyReLU/Mish/sigmoid stacks, wide and narrow
MLPs at weights of std 1 and std 1e-3, a softmax (and a log-softmax) before the
cross-entropy, frozen hidden layers, RMSprop, Adagrad, huge weight decay, Adam's eps at 1, SGD
without momentum at a small lr, depthwise-separable 1-D CNNs, convolutional and MLP
encoder-decoders, regression targets of mean 500 and std 100.

Models use PyTorch's default initialisation unless the variant says otherwise; SGD with
momentum 0.9 at lr 0.05 unless the variant says otherwise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.studies.detection_models import (
    WIDTH,
    Variant,
    he_init,
    linear_bn_relu,
    stack,
    xavier_init,
)
from bench.studies.detection_tasks import (
    CLASSES,
    DENSE_HW,
    IMG_C,
    IMG_HW,
    IN_CLS,
    IN_REG,
    SIG_C,
)

# ---------------------------------------------------------------- ViT on image patches


class PatchAttention(nn.Module):
    """Multi-head self-attention; ``scaled`` divides the scores by sqrt(head dim), as it
    should (Vaswani et al., arXiv:1706.03762); without it the softmax sees d_head x larger
    variance."""

    def __init__(self, d: int, heads: int, scaled: bool):
        super().__init__()
        self.heads, self.scaled = heads, scaled
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        hd = d // self.heads
        q, k, v = (z.reshape(b, t, self.heads, hd).transpose(1, 2)
                   for z in self.qkv(x).chunk(3, dim=-1))
        scores = q @ k.transpose(-2, -1)
        if self.scaled:
            scores = scores / math.sqrt(hd)
        return self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d))


class ViTBlock(nn.Module):
    """Attention and a GELU MLP (2x wide) in residual branches; ``norm`` "pre" (LayerNorm at
    each branch's input), "post" (after each add) or "none"."""

    def __init__(self, d: int, heads: int, norm: str, scaled: bool):
        super().__init__()
        self.norm = norm
        make = nn.LayerNorm if norm != "none" else (lambda _d: nn.Identity())
        self.n1, self.n2 = make(d), make(d)
        self.attn = PatchAttention(d, heads, scaled)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x):
        if self.norm == "post":
            x = self.n1(x + self.attn(x))
            return self.n2(x + self.mlp(x))
        x = x + self.attn(self.n1(x))
        return x + self.mlp(self.n2(x))


class ViT(nn.Module):
    """A tiny ViT (Dosovitskiy et al., arXiv:2010.11929) for 3x8x8 images: 2x2 patches by a
    strided conv (16 tokens), learned positions, ``blocks`` blocks, a final LayerNorm for
    pre-LN, mean pooling, a Linear head."""

    def __init__(self, blocks: int, norm: str = "pre", scaled: bool = True, d: int = 32,
                 heads: int = 4):
        super().__init__()
        tokens = (IMG_HW // 2) ** 2
        self.patch = nn.Conv2d(IMG_C, d, 2, stride=2)
        self.pos = nn.Parameter(torch.randn(tokens, d) * 0.02)
        self.blocks = nn.Sequential(*[ViTBlock(d, heads, norm, scaled) for _ in range(blocks)])
        self.norm = nn.LayerNorm(d) if norm == "pre" else nn.Identity()
        self.head = nn.Linear(d, CLASSES)

    def forward(self, x):
        h = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        return self.head(self.norm(self.blocks(h)).mean(1))


# ---------------------------------------------------------------- CNNs


def vgg(bn: bool, widths: tuple[int, ...] = (16, 16, 32, 32, 32, 32, 32, 32),
        pool_after: tuple[int, ...] = (1, 3)) -> nn.Sequential:
    """VGG-style: 3x3 convs (conv-BN-ReLU or conv-ReLU), 2x2 max-pool after the convs at
    ``pool_after`` (8x8 -> 4x4 -> 2x2), global average pool, Linear head."""
    layers: list[nn.Module] = []
    c = IMG_C
    for i, w in enumerate(widths):
        layers += [nn.Conv2d(c, w, 3, padding=1, bias=not bn)]
        layers += [nn.BatchNorm2d(w), nn.ReLU()] if bn else [nn.ReLU()]
        if i in pool_after:
            layers.append(nn.MaxPool2d(2))
        c = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, CLASSES))


def conv_act_stack(depth: int, block, width: int = 16) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = IMG_C
    for _ in range(depth):
        layers += block(c, width)
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, CLASSES))


class StridedBlock(nn.Module):
    """ResNet BasicBlock (He et al., arXiv:1512.03385) with an optional stride-2 1x1 conv + BN
    projection shortcut; ``zero_init`` starts the branch's last BN gamma at 0."""

    def __init__(self, i: int, o: int, stride: int, zero_init: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(o, o, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.out_relu = nn.ReLU()
        self.short = (nn.Sequential(nn.Conv2d(i, o, 1, stride=stride, bias=False),
                                    nn.BatchNorm2d(o)) if stride != 1 or i != o else nn.Identity())
        if zero_init:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x):
        h = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.out_relu(h + self.short(x))


class StridedResNet(nn.Module):
    """Stem conv-BN-ReLU (16), stages of 2 blocks each at widths 16, 32 (stride 2), 32
    (stride 2), global average pool, Linear head."""

    def __init__(self, zero_init: bool):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(IMG_C, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        blocks, c = [], 16
        for w, n, stride in ((16, 2, 1), (32, 2, 2), (32, 2, 2)):
            for j in range(n):
                blocks.append(StridedBlock(c, w, stride if j == 0 else 1, zero_init))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, CLASSES)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


# ---------------------------------------------------------------- 1-D CNNs


def dwsep_cnn1d(blocks: int, width: int = 32) -> nn.Sequential:
    """A stem conv1d-BN-ReLU then depthwise-separable blocks (MobileNet-style, kernel 5):
    depthwise conv-BN-ReLU, pointwise conv-BN-ReLU; global average pool, Linear head."""
    layers: list[nn.Module] = [nn.Conv1d(SIG_C, width, 5, padding=2, bias=False),
                               nn.BatchNorm1d(width), nn.ReLU()]
    for _ in range(blocks):
        layers += [nn.Conv1d(width, width, 5, padding=2, groups=width, bias=False),
                   nn.BatchNorm1d(width), nn.ReLU(),
                   nn.Conv1d(width, width, 1, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(width, CLASSES))


def tanh_cnn1d(depth: int, width: int = 16) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = SIG_C
    for _ in range(depth):
        layers += [nn.Conv1d(c, width, 5, padding=2), nn.Tanh()]
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(c, CLASSES))


# ---------------------------------------------------------------- encoder-decoders (task dense)


def conv_autoencoder() -> nn.Sequential:
    """1x16x16 -> stride-2 convs to 16x4x4 -> transposed convs back to 16x16 -> 3x3 conv out;
    BN-ReLU throughout, no skip connections (unlike a U-Net)."""
    def cbr(i, o, stride):
        return [nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(o),
                nn.ReLU()]

    def tbr(i, o):
        return [nn.ConvTranspose2d(i, o, 2, stride=2, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    return nn.Sequential(*cbr(1, 8, 1), *cbr(8, 16, 2), *cbr(16, 16, 2), *tbr(16, 16),
                         *tbr(16, 8), nn.Conv2d(8, 1, 3, padding=1))


def mlp_autoencoder() -> nn.Sequential:
    """Flatten 256 -> 128 -> 32 -> 128 -> 256 with tanh, reshaped back to 1x16x16."""
    n = DENSE_HW * DENSE_HW
    return nn.Sequential(nn.Flatten(), nn.Linear(n, 128), nn.Tanh(), nn.Linear(128, 32),
                         nn.Tanh(), nn.Linear(32, 128), nn.Tanh(), nn.Linear(128, n),
                         nn.Unflatten(1, (1, DENSE_HW, DENSE_HW)))


# ---------------------------------------------------------------- MLP helpers


def act_stack(depth: int, act, width: int = WIDTH, n_in: int = IN_CLS,
              n_out: int = CLASSES) -> nn.Sequential:
    return stack(n_in, depth, lambda i, o: [nn.Linear(i, o), act()], n_out, width)


def normal_init(model: nn.Module, std: float) -> nn.Module:
    """Every Linear weight N(0, std^2), biases 0 (std 1: the 'randn' init of hand-written
    nets; 1e-3: 'small random numbers')."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)
    return model


def leaky_init(model: nn.Module, slope: float) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, a=slope, nonlinearity="leaky_relu")
            nn.init.zeros_(m.bias)
    return model


def freeze_hidden(model: nn.Sequential) -> nn.Sequential:
    """Every parameter but the last Linear's stops learning (requires_grad False)."""
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    return model


def head_bias(model: nn.Module, value: float) -> nn.Module:
    """The output layer's bias set to ``value`` (the targets' mean: a common fix)."""
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    nn.init.constant_(head.bias, value)
    return model


def linear_bn_mish(i: int, o: int) -> list[nn.Module]:
    return [nn.Linear(i, o, bias=False), nn.BatchNorm1d(o), nn.Mish()]


# ---------------------------------------------------------------- the held-out set


def suite() -> list[Variant]:
    V = Variant  # noqa: N806 - a short alias for the table below
    relu = lambda i, o: [nn.Linear(i, o), nn.ReLU()]  # noqa: E731
    bn_mlp = lambda: stack(IN_CLS, 3, linear_bn_relu, CLASSES)  # noqa: E731
    return [
        # ---- ViT on 2x2 patches of the img task
        # Hypothesis: fine; the standard recipe: pre-LN, AdamW lr 3e-3, weight decay 0.05,
        # 50 warm-up steps.
        V("vit-preln-4-adamw-warmup", "vit", "-", "img", lambda: ViT(4), lr=3e-3,
          optimizer="adamw", opt_args={"weight_decay": 0.05}, warmup=50, quick=True),
        # Hypothesis: problem; Adam lr 5e-2 on a transformer, ~15x the usual ceiling, no
        # warm-up: the attention logits blow up or the LayerNorm gains collapse.
        V("vit-preln-4-adam-5e-2", "vit", "pre-LN, Adam lr 5e-2, no warm-up", "img",
          lambda: ViT(4), lr=5e-2, optimizer="adam"),
        # Hypothesis: uncertain; post-LN at a moderate Adam lr 3e-3 without warm-up (4 blocks:
        # shallow, Liu et al. arXiv:2004.08249 find shallow post-LN trainable).
        V("vit-postln-4-adam-3e-3", "vit", "post-LN, Adam lr 3e-3, no warm-up", "img",
          lambda: ViT(4, norm="post"), lr=3e-3, optimizer="adam"),
        # Hypothesis: uncertain; no LayerNorm at all, 6 blocks: the residual stream's variance
        # grows with every add, but Adam 1e-3 may cope at this depth.
        V("vit-nonorm-6-adam-1e-3", "vit", "no LayerNorm, 6 blocks", "img",
          lambda: ViT(6, norm="none"), lr=1e-3, optimizer="adam"),
        # Hypothesis: uncertain (leaning problem); a transformer under plain SGD momentum at
        # lr 0.05: transformers are known to train poorly with SGD (heavy-tailed gradient
        # noise, Zhang et al. arXiv:1912.03194).
        V("vit-preln-4-sgd", "vit", "transformer under SGD", "img", lambda: ViT(4)),
        # Hypothesis: problem; attention without the 1/sqrt(d_head) scale at one head of 32:
        # the scores' std is ~6x too large, the softmax is near one-hot and its gradient
        # vanishes.
        V("vit-noscale-1head-32", "vit", "attention scores not divided by sqrt(32)", "img",
          lambda: ViT(4, scaled=False, heads=1), lr=1e-3, optimizer="adam"),
        # ---- VGG-style CNNs with max-pooling (task img)
        # Hypothesis: fine; BN placed after the ReLU (conv-ReLU-BN), a common variant that
        # trains about as well as conv-BN-ReLU.
        V("cnn-relu-then-bn-4", "cnn", "BN after ReLU", "img",
          lambda: conv_act_stack(4, lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.ReLU(),
                                                  nn.BatchNorm2d(o)])),
        # Hypothesis: problem; 8 convs without BN at PyTorch's default init (each layer keeps
        # ~1/3 of the signal's variance with ReLU; 1/3^8 ~ 1.5e-4) under SGD 0.05.
        V("vgg8-nobn-default", "cnn", "8 unnormalised convs, default init, max-pool", "img",
          lambda: vgg(bn=False), quick=True),
        # Hypothesis: fine; the same with BN, SGD lr 0.01.
        V("vgg8-bn-sgd-0.01", "cnn", "-", "img", lambda: vgg(bn=True), lr=0.01),
        # Hypothesis: uncertain; SGD lr 0.5 with momentum 0.9 on the BN VGG (effective lr 5).
        V("vgg8-bn-sgd-0.5", "cnn", "SGD lr 0.5", "img", lambda: vgg(bn=True), lr=0.5),
        # Hypothesis: problem; SGD lr 3 (effective 30).
        V("vgg8-bn-sgd-3", "cnn", "SGD lr 3", "img", lambda: vgg(bn=True), lr=3.0),
        # Hypothesis: fine; the CIFAR recipe: SGD lr 0.1, Nesterov momentum 0.9, weight decay
        # 5e-4.
        V("vgg8-bn-nesterov-wd", "cnn", "-", "img", lambda: vgg(bn=True), lr=0.1,
          opt_args={"nesterov": True, "weight_decay": 5e-4}),
        # Hypothesis: fine; strided ResNet with projection shortcuts, no zero-init.
        V("resnet6-strided", "cnn", "-", "img", lambda: StridedResNet(zero_init=False)),
        # Hypothesis: uncertain; the same with zero-init last BN at SGD lr 0.8 without
        # warm-up (Goyal et al. arXiv:1706.02677 use zero-init and warm-up for large lrs).
        V("resnet6-strided-zero-init-sgd-0.8", "cnn", "SGD lr 0.8, no warm-up", "img",
          lambda: StridedResNet(zero_init=True), lr=0.8),
        # Hypothesis: problem; 8 unnormalised conv-Hardswish layers at default init
        # (Hardswish ~ x/2 near 0: the signal shrinks like ReLU's or faster).
        V("cnn-hardswish-default-8", "cnn", "8 unnormalised conv-Hardswish, default init",
          "img", lambda: conv_act_stack(8, lambda i, o: [nn.Conv2d(i, o, 3, padding=1),
                                                          nn.Hardswish()])),
        # Hypothesis: uncertain; 12 plain conv-GroupNorm(1)-ReLU (normalised per example,
        # no batch dependence, no residuals).
        V("cnn-gn1-plain-12", "cnn", "12 plain conv-GroupNorm(1 group)-ReLU", "img",
          lambda: conv_act_stack(12, lambda i, o: [nn.Conv2d(i, o, 3, padding=1, bias=False),
                                                   nn.GroupNorm(1, o), nn.ReLU()])),
        # Hypothesis: uncertain; RMSprop at lr 1e-2 (10x Keras' default) on the BN VGG.
        V("vgg8-bn-rmsprop-1e-2", "cnn", "RMSprop lr 1e-2", "img", lambda: vgg(bn=True),
          lr=1e-2, optimizer="rmsprop"),
        # ---- MLPs (task cls)
        # Hypothesis: problem; a 512-wide 4-layer ReLU MLP at N(0, 1) weights: activations
        # grow ~sqrt(512/2) = 16x per layer, logits ~1e4, the loss explodes.
        V("mlp-wide512-std1", "mlp", "weights N(0, 1), width 512", "cls",
          lambda: normal_init(act_stack(4, nn.ReLU, width=512), 1.0), quick=True),
        # Hypothesis: fine; the same net at PyTorch's default init.
        V("mlp-wide512-default", "mlp", "-", "cls", lambda: act_stack(4, nn.ReLU, width=512)),
        # Hypothesis: problem; weights of std 1e-3: the signal and every gradient but the
        # head's are ~0 (the head's input is ~1e-9), symmetric in practice.
        V("mlp-std1e-3", "mlp", "weights N(0, std 1e-3)", "cls",
          lambda: normal_init(act_stack(4, nn.ReLU), 1e-3)),
        # Hypothesis: fine; 10 LeakyReLU(0.01) layers at Kaiming init for that slope.
        V("mlp-leakyrelu-kaiming-10", "mlp", "-", "cls",
          lambda: leaky_init(act_stack(10, lambda: nn.LeakyReLU(0.01)), 0.01)),
        # Hypothesis: problem; 16 ELU layers at default init (variance shrinks per layer).
        V("mlp-elu-default-16", "mlp", "16 unnormalised ELU layers, default init", "cls",
          lambda: act_stack(16, nn.ELU)),
        # Hypothesis: fine; 8 Linear-BN-Mish blocks.
        V("mlp-bn-mish-8", "mlp", "-", "cls", lambda: stack(IN_CLS, 8, linear_bn_mish, CLASSES)),
        # Hypothesis: problem; 8 sigmoid layers even at Xavier init: sigmoid' <= 1/4 and
        # its outputs are not zero-centred (Glorot & Bengio 2010).
        V("mlp-sigmoid-xavier-8", "mlp", "8 unnormalised sigmoid layers, Xavier init", "cls",
          lambda: xavier_init(act_stack(8, nn.Sigmoid))),
        # Hypothesis: fine; 12 tanh layers at Xavier (tanh gain) under Adam 1e-3.
        V("mlp-tanh-xavier-12-adam", "mlp", "-", "cls",
          lambda: xavier_init(act_stack(12, nn.Tanh)), lr=1e-3, optimizer="adam"),
        # Hypothesis: problem; nn.Softmax at the end of the model, then CrossEntropyLoss
        # (which applies log-softmax again): logits in [0, 1], the loss cannot fall below
        # ~1.46 (trivial 2.3), so no more than ~0.37 of it can be removed.
        V("mlp-softmax-before-ce", "mlp", "Softmax output into CrossEntropyLoss", "cls",
          lambda: nn.Sequential(bn_mlp(), nn.Softmax(dim=1)), quick=True),
        # Hypothesis: fine; nn.LogSoftmax before CrossEntropyLoss is harmless (log-softmax is
        # idempotent).
        V("mlp-logsoftmax-before-ce", "mlp", "LogSoftmax output into CrossEntropyLoss", "cls",
          lambda: nn.Sequential(bn_mlp(), nn.LogSoftmax(dim=1))),
        # Hypothesis: uncertain; only the head learns (hidden layers frozen at He init): a
        # random-features model of 64 ReLU features.
        V("mlp-frozen-hidden", "mlp", "hidden layers requires_grad=False", "cls",
          lambda: freeze_hidden(he_init(stack(IN_CLS, 3, relu, CLASSES)))),
        # ---- optimizer settings (task cls)
        # Hypothesis: problem; SGD weight_decay 1.0 (someone typed 1 for 1e-4): the weights
        # shrink by 5% per step and the net cannot hold a solution.
        V("mlp-bn-sgd-wd-1", "optim", "SGD weight_decay 1.0", "cls", bn_mlp,
          opt_args={"weight_decay": 1.0}),
        # Hypothesis: problem; Adam with eps 1.0 (TensorFlow's Inception setting copied to
        # a small model): the step is ~lr x gradient, a plain SGD step at lr 1e-3, too small.
        V("mlp-bn-adam-eps-1", "optim", "Adam eps 1.0", "cls", bn_mlp, lr=1e-3,
          optimizer="adam", opt_args={"eps": 1.0}),
        # Hypothesis: problem; SGD without momentum at lr 1e-3: too slow for 400 steps.
        V("mlp-he-sgd-nomomentum-1e-3", "optim", "SGD lr 1e-3, no momentum", "cls",
          lambda: he_init(stack(IN_CLS, 3, relu, CLASSES)), lr=1e-3, momentum=0.0),
        # Hypothesis: fine; Adagrad lr 0.1 (a usual Adagrad lr).
        V("mlp-he-adagrad-0.1", "optim", "-", "cls",
          lambda: he_init(stack(IN_CLS, 3, relu, CLASSES)), lr=0.1, optimizer="adagrad"),
        # Hypothesis: fine; RMSprop lr 1e-3 on a BN MLP.
        V("mlp-bn-rmsprop-1e-3", "optim", "-", "cls", bn_mlp, lr=1e-3, optimizer="rmsprop"),
        # Hypothesis: fine; AdamW lr 1e-3, weight decay 0.01.
        V("mlp-bn-adamw-1e-3", "optim", "-", "cls", bn_mlp, lr=1e-3, optimizer="adamw",
          opt_args={"weight_decay": 0.01}),
        # Hypothesis: problem; Adam with coupled weight_decay 0.5 (L2 in the gradient, not
        # AdamW's decoupled decay): the penalty dominates the gradient.
        V("mlp-bn-adam-l2-0.5", "optim", "Adam weight_decay 0.5 (coupled L2)", "cls", bn_mlp,
          lr=1e-3, optimizer="adam", opt_args={"weight_decay": 0.5}),
        # ---- 1-D CNNs (task sig)
        # Hypothesis: fine; depthwise-separable 1-D CNN under Adam 1e-3.
        V("cnn1d-dwsep-6-adam", "cnn1d", "-", "sig", lambda: dwsep_cnn1d(6), lr=1e-3,
          optimizer="adam"),
        # Hypothesis: problem; the same under Adagrad lr 1e-3 (its step only shrinks from
        # lr, 100x below Adagrad's usual lr).
        V("cnn1d-dwsep-6-adagrad-1e-3", "cnn1d", "Adagrad lr 1e-3", "sig",
          lambda: dwsep_cnn1d(6), lr=1e-3, optimizer="adagrad"),
        # Hypothesis: uncertain; 8 unnormalised conv1d-tanh layers at default init (variance
        # shrinks ~1/3 per layer; tanh is linear near 0).
        V("cnn1d-tanh-default-8", "cnn1d", "8 unnormalised conv1d-tanh, default init", "sig",
          lambda: tanh_cnn1d(8)),
        # ---- encoder-decoders (task dense, MSE)
        # Hypothesis: fine; a conv encoder-decoder without skips, BN-ReLU, Adam 1e-3 (the
        # 4x4 bottleneck of 16 channels, 256 numbers, holds the 8x8 noise the images come
        # from).
        V("ae-conv-bn-relu", "autoencoder", "-", "dense", conv_autoencoder, lr=1e-3,
          optimizer="adam"),
        # Hypothesis: uncertain; an MLP encoder-decoder with a 32-d tanh bottleneck under SGD.
        V("ae-mlp-tanh-sgd", "autoencoder", "32-d tanh bottleneck", "dense", mlp_autoencoder),
        # ---- regression targets of mean 500, std 100 (task reg / reg2)
        # Hypothesis: problem; SGD momentum at lr 1e-3 (users lower the lr for big targets):
        # the first gradients are ~1000x a standardised task's, the net diverges.
        V("reg-mean500-sgd-1e-3", "regression", "targets mean 500, std 100, SGD lr 1e-3", "reg",
          lambda: he_init(stack(IN_REG, 3, relu, 1)), lr=1e-3, target_scales=(100.0,),
          target_shift=500.0),
        # Hypothesis: problem; Adam lr 1e-2: each weight moves ~1e-2 per step, the output
        # reaches 500 only late and the std-100 variation is not fitted in 400 steps.
        V("reg-mean500-adam-1e-2", "regression", "targets mean 500, std 100, Adam lr 1e-2",
          "reg", lambda: he_init(stack(IN_REG, 3, relu, 1)), lr=1e-2, optimizer="adam",
          target_scales=(100.0,), target_shift=500.0),
        # Hypothesis: uncertain; two outputs, the head's bias initialised to the mean 500 (a
        # common fix), Adam 1e-3: the mean is right from step 0, but std 100 is still ~100x
        # what the head's weights produce.
        V("reg2-mean500-bias-init-adam", "regression", "targets mean 500, std 100, head bias "
          "500", "reg2", lambda: head_bias(he_init(stack(IN_REG, 3, relu, 2)), 500.0), lr=1e-3,
          optimizer="adam", target_scales=(100.0, 100.0), target_shift=500.0),
    ]
