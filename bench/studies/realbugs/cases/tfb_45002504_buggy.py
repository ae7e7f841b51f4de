"""Logistic regression on the South African heart-disease data, L2 weight 1 and lr 0.5 (buggy).

Port of TensorFlow-Program-Bugs StackOverflow/IPS-13 (Stack Overflow question 45002504): nine raw,
unscaled features (blood pressure about 138, age about 43, ...), a 9 x 2 weight initialised from a
truncated N(0, 1) and a zero bias, loss mean(softmax cross-entropy + BETA * sum(w^2) / 2) with BETA
= 1, gradient descent at lr 0.5, batches of 7.

Data: the program reads the SAheart data (heart_train.csv, 413 rows); ``make_data`` draws synthetic
rows with its columns' means, spreads and ranges (sbp 138 +- 21, tobacco 3.6 +- 4.7, ldl 4.7 +-
2.1, adiposity 25 +- 8, famhist 40% present, typea 53 +- 10, obesity 26 +- 4, alcohol 16 +- 23, age
43 +- 15) and a heart-disease rate of about 38% (the file's is 35%) that rises with age, tobacco,
ldl, family history and type-A score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BETA = 1.0
LEARNING_RATE = 0.5
BATCH_SIZE = 7
# (mean, std, low, high) of each raw column of heart_train.csv; famhist is 0/1
COLUMNS = [(138.4, 20.9, 101, 218), (3.64, 4.67, 0, 31.2), (4.71, 2.06, 0.98, 15.3),
           (25.2, 7.93, 6.74, 42.5), None, (53.2, 9.68, 13, 78), (26.0, 4.27, 14.7, 46.6),
           (15.7, 22.7, 0, 147), (42.6, 14.8, 15, 64)]


class LogisticRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(nn.init.trunc_normal_(torch.empty(9, 2), a=-2.0, b=2.0))
        self.b = nn.Parameter(torch.zeros(1, 2))

    def forward(self, x):
        return x @ self.w + self.b


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 9, generator=g)
    cols = []
    for j, spec in enumerate(COLUMNS):
        if spec is None:
            cols.append((torch.rand(n, generator=g) < 0.4).float())
            continue
        mean, std, low, high = spec
        if low == 0:  # tobacco, alcohol: skewed, many near zero
            shape = (mean / std) ** 2
            col = torch.distributions.Gamma(shape, shape / mean).sample((n,))
        else:
            col = mean + std * z[:, j]
        cols.append(col.clamp(low, high))
    x = torch.stack(cols, 1)
    risk = (1.0 * (x[:, 8] - 42.6) / 14.8 + 0.5 * (x[:, 1] - 3.6) / 4.7
            + 0.4 * (x[:, 2] - 4.7) / 2.1 + 0.5 * x[:, 4] + 0.3 * (x[:, 5] - 53.2) / 9.7 - 0.55)
    chd = (torch.rand(n, generator=g) < torch.sigmoid(3 * risk)).long()
    return x, F.one_hot(chd, 2).float()


def example_inputs():
    return make_data(BATCH_SIZE, seed=1)[0]


def example_targets():
    return make_data(BATCH_SIZE, seed=1)[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    labels = y.argmax(1)
    return {"accuracy": float((out.argmax(1) == labels).float().mean()),
            "chance": float(labels.bincount().max() / len(labels)),
            "output_std": float(out.std(0).max())}


def train(steps=600, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(413, seed=1)
    model = LogisticRegression()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (BATCH_SIZE,))
        entropy = F.cross_entropy(model(x[idx]), y[idx], reduction="none")
        loss = (entropy + BETA * (model.w ** 2).sum() / 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(2000, seed=2))}
