"""A one-hidden-layer MNIST MLP whose hand-written binary cross-entropy takes raw scores (buggy).

Port of TensorFlow-Program-Bugs StackOverflow/IPS-7 (Stack Overflow question 35078027): 784 -> 512
sigmoid -> 10, weights N(0, 1) and no biases as in the original, loss sum_k -y log(p) - (1 - y)
log(1 - p) averaged over the batch of 100, where p is the output layer's raw (linear) score: log of
a negative number or of zero is NaN/-Inf from the first step. Gradient descent at lr 0.05.

Data: MNIST cannot be downloaded here; ``make_data`` draws MNIST-like digits (28 x 28 strokes in
[0, 1], mean 0.13, std 0.31, 18% of the pixels nonzero, close to MNIST; ten classes of fixed stroke
patterns under random shifts and widths), flattened to 784 values with one-hot labels.
"""

from __future__ import annotations

import torch
from torch import nn

STROKES_SEED = 1234  # the ten classes' stroke patterns, shared by training and held-out data


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 512, bias=False)
        self.out = nn.Linear(512, 10, bias=False)
        nn.init.normal_(self.hidden.weight, std=1.0)
        nn.init.normal_(self.out.weight, std=1.0)

    def forward(self, x):
        h = torch.sigmoid(self.hidden(x))
        return self.out(h)


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
    return x, nn.functional.one_hot(labels, 10).float()


def example_inputs():
    return make_data(100, seed=1)[0]


def example_targets():
    return make_data(100, seed=1)[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    labels = y.argmax(1)
    return {"accuracy": float((out.argmax(1) == labels).float().mean()),
            "chance": float(labels.bincount().max() / len(labels)),
            "output_std": float(out.std(0).max())}


def train(steps=200, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(10000, seed=1)
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (100,))
        p = model(x[idx])
        loss = (-y[idx] * torch.log(p) - (1 - y[idx]) * torch.log(1 - p)).sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(2000, seed=2))}
