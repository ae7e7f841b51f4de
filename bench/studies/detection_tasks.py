"""The synthetic tasks of bench/studies/detection.py. A task's data is fixed by ``DATA_SEED``
and its name (every variant of a task sees the same data): 8192 training and 1024 held-out
examples. Synthetic, because datasets cannot be downloaded here; each stands for a kind of real
input (shape and statistics), not for a real dataset.

Calibration tasks (bench/studies/detection_models.py):

- ``cls``: 32-d N(0,1) inputs, 10 classes from a fixed random teacher
  (argmax of W2 tanh(W1 x), 16 hidden units); cross-entropy.
- ``img``: 3x8x8 smooth random images (4x4 N(0,1) noise, bilinearly upsampled), 10 classes
  from a fixed random conv teacher (argmax of a linear map of the spatial mean of
  tanh(conv3x3(x)), 8 channels); cross-entropy.
- ``reg``: 8-d N(0,1) inputs, target sin(a.x) + 0.5 cos(b.x) standardised on the training set,
  times ``target_scales`` (1e-3 for the tiny-variance variant) plus ``target_shift``; MSE.
- ``reg2``: the same inputs, two outputs (sin and cos terms, each standardised) scaled by
  ``target_scales``; MSE.

Validation tasks (bench/studies/validation_models.py), set before any validation variant was
trained (the task sizes from one ordinary model of each kind, see that module's docstring):

- ``seq``: sequences of 8 tokens, each a 16-d N(0,1) vector (a transformer's input after its
  embedding); 10 classes from a fixed random one-head attention teacher (argmax of a linear map
  of the token mean of tanh(softmax(q k^T / 4) x W_v), standardised); cross-entropy.
- ``sig``: 4-channel 1-D signals of length 32 (length-8 N(0,1) noise, linearly upsampled), 10
  classes from a fixed random conv1d teacher (as ``img``, kernel 5, 8 channels); cross-entropy.
- ``dense``: 1x16x16 smooth images (8x8 noise, bilinearly upsampled) to a 1x16x16 target image
  (a U-Net's image-to-image task): a local term (conv3x3 of tanh(conv5x5(x)), 4 channels) plus
  tanh(2 x the 4x4-block mean of x), standardised on the training set as a whole, times
  ``target_scales`` plus ``target_shift``; MSE, its trivial predictor the per-pixel mean.
- ``img255``: the ``img`` task's images as 8-bit pixels, round(clamp(127.5 + 50 x, 0, 255)),
  not scaled back (raw pixel values into the model); the same labels.
- ``coord``: 2-d coordinates uniform in [-1, 1]^2 to a signal, a fixed random sum of 8
  sinusoids sum_k a_k sin(w_k . x + p_k) with w_k ~ N(0, 3^2 I) (an implicit neural
  representation's task), standardised, scaled and shifted as ``reg``; MSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

N_TRAIN, N_TEST = 8192, 1024
DATA_SEED = 1234
CLASSES = 10
IN_CLS, IN_REG = 32, 8                 # cls, reg/reg2 input features
IMG_C, IMG_HW = 3, 8                   # img, img255
SEQ_T, SEQ_D = 8, 16                   # seq: tokens, features per token
SIG_C, SIG_L = 4, 32                   # sig: channels, length
DENSE_HW = 16                          # dense: 1 x DENSE_HW x DENSE_HW in and out
COORD_D = 2                            # coord


@dataclass
class Task:
    kind: str                 # "cls" or "reg"
    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_baseline: float     # the trivial predictor's training loss
    test_baseline: torch.Tensor  # per output (one value for classification)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, y) if self.kind == "cls" else F.mse_loss(out, y)

    def relative_test_loss(self, out: torch.Tensor) -> float:
        if self.kind == "cls":
            return float(F.cross_entropy(out, self.y_test)) / float(self.test_baseline)
        per_output = ((out - self.y_test) ** 2).mean(0)
        return float((per_output / self.test_baseline).mean())

    def accuracy(self, out: torch.Tensor) -> float | None:
        """Held-out accuracy for classification, None for regression."""
        return float((out.argmax(1) == self.y_test).float().mean()) if self.kind == "cls" else None

    def lint_targets(self, n: int) -> torch.Tensor:
        y = self.y[:n]
        return y.float() if self.kind == "cls" else y


_TASKS: dict[tuple, Task] = {}


def _split(x: torch.Tensor, y: torch.Tensor) -> tuple:
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]


def _classification(x: torch.Tensor, logits: torch.Tensor) -> Task:
    y = logits.argmax(1)
    x, y, xt, yt = _split(x, y)
    freq = torch.bincount(y, minlength=CLASSES).float().add(1.0) / (len(y) + CLASSES)
    train_base = float(-(freq * freq.log()).sum())
    test_base = -freq.log()[yt].mean()
    return Task("cls", x, y, xt, yt, train_base, test_base.reshape(1))


def _regression(x: torch.Tensor, y: torch.Tensor, scales: tuple[float, ...],
                shift: float) -> Task:
    """``y`` standardised on the training set, per output for (N, k) targets and as a whole for
    dense ones, then scaled and shifted; the trivial predictor is the training mean per output."""
    dims = 0 if y.dim() == 2 else tuple(range(y.dim()))
    y = (y - y[:N_TRAIN].mean(dims)) / y[:N_TRAIN].std(dims)
    y = y * torch.tensor(scales) + shift if y.dim() == 2 else y * scales[0] + shift
    x, y, xt, yt = _split(x, y)
    mean = y.mean(0)
    train_base = float(((y - mean) ** 2).mean())
    return Task("reg", x, y, xt, yt, train_base, ((yt - mean) ** 2).mean(0))


def _smooth(g: torch.Generator, n: int, shape: tuple[int, ...], size: int | tuple[int, int],
            mode: str) -> torch.Tensor:
    """N(0,1) noise of ``shape`` per example, upsampled to ``size`` and scaled to unit std."""
    x = F.interpolate(torch.randn(n, *shape, generator=g), size=size, mode=mode,
                      align_corners=False)
    return x / x.std()


def _conv_teacher(x: torch.Tensor, g: torch.Generator, conv, kernel: tuple[int, ...]) -> Task:
    k = torch.randn(8, x.shape[1], *kernel, generator=g)
    k = k / math.sqrt(k[0].numel()) * 1.5
    h = torch.tanh(conv(x, k, padding=kernel[0] // 2)).mean(tuple(range(2, x.dim())))
    h = (h - h.mean(0)) / h.std(0)
    w = torch.randn(h.shape[1], CLASSES, generator=g)
    return _classification(x, h @ w)


def _make(name: str, scales: tuple[float, ...], shift: float) -> Task:
    g = torch.Generator().manual_seed(DATA_SEED)
    n = N_TRAIN + N_TEST
    if name == "cls":
        x = torch.randn(n, IN_CLS, generator=g)
        w1 = torch.randn(IN_CLS, 16, generator=g) / math.sqrt(IN_CLS)
        w2 = torch.randn(16, CLASSES, generator=g)
        return _classification(x, torch.tanh(x @ w1) @ w2)
    if name == "img":
        x = _smooth(g, n, (IMG_C, IMG_HW // 2, IMG_HW // 2), IMG_HW, "bilinear")
        return _conv_teacher(x, g, F.conv2d, (3, 3))
    if name == "img255":
        t = task("img", (1.0,))
        pixels = lambda x: (127.5 + 50.0 * x).clamp(0, 255).round()  # noqa: E731
        return Task("cls", pixels(t.x), t.y, pixels(t.x_test), t.y_test, t.train_baseline,
                    t.test_baseline)
    if name == "sig":
        x = _smooth(g, n, (SIG_C, SIG_L // 4), SIG_L, "linear")
        return _conv_teacher(x, g, F.conv1d, (5,))
    if name == "seq":
        x = torch.randn(n, SEQ_T, SEQ_D, generator=g)
        wq, wk, wv = (torch.randn(SEQ_D, SEQ_D, generator=g) / math.sqrt(SEQ_D)
                      for _ in range(3))
        attn = torch.softmax((x @ wq) @ (x @ wk).transpose(1, 2) / math.sqrt(SEQ_D), -1)
        h = torch.tanh(attn @ x @ (wv * 1.5)).mean(1)
        h = (h - h.mean(0)) / h.std(0)
        w = torch.randn(SEQ_D, CLASSES, generator=g)
        return _classification(x, h @ w)
    if name == "dense":
        x = _smooth(g, n, (1, DENSE_HW // 2, DENSE_HW // 2), DENSE_HW, "bilinear")
        k1 = torch.randn(4, 1, 5, 5, generator=g) / 5.0 * 1.5
        k2 = torch.randn(1, 4, 3, 3, generator=g) / 6.0
        local = F.conv2d(torch.tanh(F.conv2d(x, k1, padding=2)), k2, padding=1)
        coarse = F.interpolate(F.avg_pool2d(x, 4), size=DENSE_HW, mode="nearest")
        return _regression(x, local + torch.tanh(2.0 * coarse), scales, shift)
    if name == "coord":
        x = torch.rand(n, COORD_D, generator=g) * 2 - 1
        w = torch.randn(COORD_D, 8, generator=g) * 3.0
        phase = torch.rand(8, generator=g) * 2 * math.pi
        amp = torch.randn(8, generator=g)
        return _regression(x, (torch.sin(x @ w + phase) @ amp).unsqueeze(1), scales, shift)
    if name in ("reg", "reg2"):
        x = torch.randn(n, IN_REG, generator=g)
        a = torch.randn(IN_REG, generator=g)
        b = torch.randn(IN_REG, generator=g)
        a, b = a / a.norm() * 1.5, b / b.norm()
        terms = torch.stack([torch.sin(x @ a), 0.5 * torch.cos(x @ b)], 1)
        return _regression(x, terms.sum(1, keepdim=True) if name == "reg" else terms,
                           scales, shift)
    raise ValueError(f"unknown task {name!r}")


def task(name: str, scales: tuple[float, ...], shift: float = 0.0) -> Task:
    """The task ``name`` (regression targets scaled by ``scales`` and shifted by ``shift``)."""
    key = (name, scales, shift)
    if key not in _TASKS:
        _TASKS[key] = _make(name, scales, shift)
    return _TASKS[key]
