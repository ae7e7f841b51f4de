"""A net with a hidden ReLU layer (2 -> 2 -> 2 relu -> 1) learning the average of two numbers
(fixed).

Port of DeepLocalize's GitHub program vincenty2022/Averaging_Neural_Networks
(Wardat-ISU/DeepLocalize ``Benchmark/GitHub/Buggy Model/Averaging_Neural_Networks/keras_net.py``):
inputs (n1, n2) / 100 with n1, n2 integers in 0..100, target their average / 100, Dense(2) ->
Dense(1) with no activation, mean squared error, RMSprop (Keras defaults: lr 1e-3, rho 0.9, eps
1e-7), batch 10. The benchmark calls the missing hidden ReLU layer the bug. The repository's fix
(``Correct Model``) inserts Dense(2, relu). Keras defaults kept: Glorot-uniform weights, zero
biases.

Data: the program's own (``generate_dataset`` and ``preprocess``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AveragingNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.layers(x)


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    pairs = torch.randint(0, 101, (n, 2), generator=g).float()
    return pairs / 100, pairs.mean(1, keepdim=True) / 100


def example_inputs():
    return make_data(10, seed=1)[0]


def example_targets():
    return make_data(10, seed=1)[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    return {"relative_mse": float((((out - y) ** 2).mean(0) / y.var(0)).mean()),
            "output_std": float(out.std(0).max())}


def train(steps=1000, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(10000, seed=1)
    model = AveragingNet()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (10,))
        loss = F.mse_loss(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(2000, seed=2))}
