"""Linear regression fitted by plain gradient descent at lr 0.1 (buggy).

Port of TensorFlow-Program-Bugs StackOverflow/IPS-5 (Stack Overflow question 39939881). The
original draws its own data: a line y = w x + b with w, b ~ U(-8, 8), eight points with x ~ U(-8,
8) and noise U(-1, 1); this port does the same (its own seeds). Full-batch gradient descent at lr
0.1 on inputs this wide overshoots: the loss's curvature 2 mean(x^2) is about 40, so any lr above
2/40 = 0.05 diverges.
"""

from __future__ import annotations

import torch
from torch import nn

SIZE = 8
LINE_SEED = 20180130  # the line's slope and intercept, shared by training and held-out data


class LinearRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x):
        return self.linear(x)


def make_data(n, seed):
    line = torch.Generator().manual_seed(LINE_SEED)
    w, b = (torch.rand(2, generator=line) * 16 - 8).tolist()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g) * 16 - 8
    y = w * x + b + (torch.rand(n, 1, generator=g) * 2 - 1)
    return x, y


def example_inputs():
    return make_data(SIZE, seed=1)[0]


def example_targets():
    return make_data(SIZE, seed=1)[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    return {"relative_mse": float((((out - y) ** 2).mean(0) / y.var(0)).mean()),
            "output_std": float(out.std(0).max())}


def train(steps=100, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(SIZE, seed=1)
    model = LinearRegression()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-1)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(1000, seed=2))}
