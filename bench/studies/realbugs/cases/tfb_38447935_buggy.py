"""Linear regression whose (3, 1) predictions are subtracted from (3,) targets (buggy).

Port of TensorFlow-Program-Bugs StackOverflow/UT-15 (Stack Overflow question 38447935): three
points x = (1, 1), (1, 2), (1, 3) (a bias column and the input), targets 1, 2, 3, a 2 x 1 weight
from a truncated N(0, 0.1^2), loss mean((y_ - x w)^2), Adam at lr 1e-4. The targets have shape (3,)
and the predictions (3, 1); the subtraction broadcasts to a 3 x 3 table of every target against
every prediction, whose minimum is the mean target, so the model learns to predict 2 everywhere.
float64 as in the original.

Data: the program's own three points.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(nn.init.trunc_normal_(torch.empty(2, 1, dtype=torch.float64),
                                                    std=0.1, a=-0.2, b=0.2))

    def forward(self, x):
        return x @ self.w


def load_data():
    x = torch.tensor([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]], dtype=torch.float64)
    return x, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)


def example_inputs():
    return load_data()[0]


def example_targets():
    return load_data()[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x).reshape(-1)
    return {"relative_mse": float(((out - y) ** 2).mean() / y.var()),
            "output_std": float(out.std())}


def train(steps=30000, seed=0):
    torch.manual_seed(seed)
    x, y_ = load_data()
    model = LinearModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    losses = []
    for _ in range(steps):
        loss = ((y_ - model(x)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, x, y_)}
