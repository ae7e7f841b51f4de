"""A quadratic a x^2 + b x + c fitted to four points by gradient descent at lr 0.01 (buggy).

Port of TensorFlow-Program-Bugs StackOverflow/IPS-17 (Stack Overflow question 46577203): the data
is the program's own, x = 0, 1, 2, 3 and y = x^2, the loss the sum of squared errors, the
parameters start at zero. With the features (x^2, x, 1) the summed loss's largest curvature is 227,
so its stable bound 2/227 = 0.0088 lies just under the lr of 0.01: gradient descent diverges. The
program measures the fit on its training points; so does this port.
"""

from __future__ import annotations

import torch
from torch import nn


class Quadratic(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(1))
        self.b = nn.Parameter(torch.zeros(1))
        self.c = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.a * x ** 2 + self.b * x + self.c


def load_data():
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    return x, x ** 2


def example_inputs():
    return load_data()[0]


def example_targets():
    return load_data()[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    return {"relative_mse": float((((out - y) ** 2).mean(0) / y.var(0)).mean()),
            "output_std": float(out.std(0).max())}


def train(steps=100, seed=0):
    torch.manual_seed(seed)
    x, y = load_data()
    model = Quadratic()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2).sum()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, x, y)}
