"""Linear regression on x = 0..99 by gradient descent at lr 0.0005 (fixed).

Port of TensorFlow-Program-Bugs StackOverflow/IPS-15 (Stack Overflow question 43636736). The
original builds its own data: T = 100 points, x = [t, 1] for t = 0..99 (the second column carries
the intercept), y = 2 t + 4 + 10 U(0, 1), weights initialised to ones, loss sum((y - W x)^2) / (2
T), full-batch gradient descent; this port draws the same. With inputs up to 99 the loss's
curvature is about mean(t^2) = 3300, so an lr of 0.5 diverges at once; the benchmark's fix lowers
it to 0.0005, under 2/3300.
"""

from __future__ import annotations

import torch
from torch import nn

T = 100


class LinearRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1, bias=False)
        nn.init.ones_(self.linear.weight)

    def forward(self, x):
        return self.linear(x)


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float32)
    x = torch.stack([t, torch.ones(n)], 1)
    y = (2 * t + 4 + 10 * torch.rand(n, generator=g)).unsqueeze(1)
    return x, y


def example_inputs():
    return make_data(T, seed=1)[0]


def example_targets():
    return make_data(T, seed=1)[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    return {"relative_mse": float((((out - y) ** 2).mean(0) / y.var(0)).mean()),
            "output_std": float(out.std(0).max())}


def train(steps=100, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(T, seed=1)
    model = LinearRegression()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0005)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((y - model(x)) ** 2).sum() / (2 * T)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(T, seed=2))}
