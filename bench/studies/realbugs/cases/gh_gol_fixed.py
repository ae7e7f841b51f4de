"""A three-layer CNN learning one step of Conway's Game of Life, with the repository's fixed loss
and learning rate: mean squared error and Adam at lr 0.01 (fixed).

Port of DeepLocalize's GitHub program alexander-travov/gol_nn (Wardat-ISU/DeepLocalize
``Benchmark/GitHub/Buggy Model/gol_nn/gol.py``): 3 x 3 fields of cells, wrap-padded to 5 x 5,
Conv(10, 3x3, valid, relu) -> Conv(20, 1x1, relu) -> Conv(1, 1x1, sigmoid), batch 64. Keras
defaults kept: Glorot-uniform weights, zero biases, Adam eps 1e-7. The repository's fix (``Correct
Model``) trains on mean squared error with Adam at lr 0.01 (and for more epochs; both versions here
train for the same number of steps).

Data: the program's own: random fields with each cell alive with probability 0.5 and their next
state by the rules of Life (``make_data`` is the program's ``generate_dataset`` and ``pad_field``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HEIGHT = WIDTH = 3


class LifeNet(nn.Module):
    def __init__(self, num_filters=10, num_channels=20):
        super().__init__()
        self.conv1 = nn.Conv2d(1, num_filters, 3)
        self.conv2 = nn.Conv2d(num_filters, num_channels, 1)
        self.conv3 = nn.Conv2d(num_channels, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return torch.sigmoid(self.conv3(x))


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    field = (torch.rand(n, 1, HEIGHT, WIDTH, generator=g) < 0.5).float()
    neighbours = sum(torch.roll(field, (dy, dx), (2, 3))
                     for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
    nxt = ((neighbours == 3) | ((field == 1) & (neighbours == 2))).float()
    return F.pad(field, (1, 1, 1, 1), mode="circular"), nxt


def example_inputs():
    return make_data(64, seed=1)[0]


def example_targets():
    return make_data(64, seed=1)[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    return {"accuracy": float(((out > 0.5).float() == y).float().mean()),
            "chance": float(max(y.mean(), 1 - y.mean())),
            "output_std": float(out.flatten(1).std(0).max())}


def train(steps=1250, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(8000, seed=1)
    model = LifeNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, eps=1e-7)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,))
        loss = F.mse_loss(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(2000, seed=2))}
