"""An MNIST CNN whose last layer, the logits, stays linear (fixed).

Port of TensorFlow-Program-Bugs StackOverflow/IPS-11 (Stack Overflow question 43239467): the
TensorFlow tutorial CNN built with one ``fc_layer`` helper that applies a ReLU, used for the logits
too, then softmax cross-entropy with logits, Adam at lr 1e-3, batch 100. The ReLU clips every
negative logit to 0, so a class whose logit is negative gets no gradient through it. The
benchmark's fix gives the helper an ``activation`` argument and builds the logits layer without
one.

Data: MNIST cannot be downloaded here; ``make_data`` draws MNIST-like digits (28 x 28 strokes in
[0, 1], mean 0.13, std 0.31, 18% of the pixels nonzero, close to MNIST; ten classes of fixed stroke
patterns under random shifts and widths), flattened to 784 values with class labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STROKES_SEED = 1234  # the ten classes' stroke patterns, shared by training and held-out data


class ConvNet(nn.Module):
    """conv 5x5 32 -> pool -> conv 5x5 64 -> pool -> fc 1024 -> fc 10, weights truncated
    normal (std 0.1), biases 0.1, as the tutorial's ``weight_variable``/``bias_variable``."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(7 * 7 * 64, 1024)
        self.fc2 = nn.Linear(1024, 10)
        for layer in (self.conv1, self.conv2, self.fc1, self.fc2):
            nn.init.trunc_normal_(layer.weight, std=0.1, a=-0.2, b=0.2)
            nn.init.constant_(layer.bias, 0.1)

    def forward(self, x):
        x = x.reshape(-1, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def make_data(n, seed):
    strokes = torch.Generator().manual_seed(STROKES_SEED)
    ends = torch.rand(10, 3, 2, 2, generator=strokes) * 14 + 7
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    seg = ends[labels] + torch.randn(n, 3, 2, 2, generator=g)
    seg = seg + torch.randint(-2, 3, (n, 1, 1, 2), generator=g)
    width = torch.rand(n, 1, 1, generator=g) * 0.6 + 1.0
    grid = torch.stack(torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij"), -1)
    p = grid.reshape(1, 1, 784, 2)
    a, ab = seg[:, :, 0:1], seg[:, :, 1:2] - seg[:, :, 0:1]
    t = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-6)).clamp(0, 1)
    ink = torch.exp(-((a + t.unsqueeze(-1) * ab - p) ** 2).sum(-1) / (2 * width ** 2)).amax(1)
    ink = (2 * ink).clamp(max=1.0)
    x = torch.round(torch.where(ink < 0.15, 0.0, ink) * 255) / 255
    return x, labels


def example_inputs():
    return make_data(100, seed=1)[0]


def example_targets():
    return make_data(100, seed=1)[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    return {"accuracy": float((out.argmax(1) == y).float().mean()),
            "chance": float(y.bincount().max() / len(y)),
            "output_std": float(out.std(0).max())}


def train(steps=150, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(10000, seed=1)
    model = ConvNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (100,))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(2000, seed=2))}
