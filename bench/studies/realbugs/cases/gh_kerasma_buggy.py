"""A small MLP (8-12-8-1) on the raw Pima Indians diabetes features (buggy).

Port of DeepLocalize's GitHub program eangelou/kerasma (Wardat-ISU/DeepLocalize
``Benchmark/GitHub/Buggy Model/kerasma/kerasma.py``; defects4ml bug 027): eight unscaled features
-> Dense(12, relu) -> Dense(8, relu) -> Dense(1, sigmoid), binary cross-entropy, Adam (Keras
defaults), batch 10. The benchmark calls the bug missing dense layers. Keras defaults kept:
Glorot-uniform weights, zero biases, Adam eps 1e-7.

Data: the program reads pima-indians-diabetes.data (768 rows); ``make_data`` draws rows with its
columns' means, spreads, ranges and zero shares (pregnancies 3.8 +- 3.4, glucose 121 +- 32, blood
pressure 69 +- 19, skin 21 +- 16 with 30% zeros, insulin 80 +- 115 with 49% zeros, BMI 32 +- 8,
pedigree 0.47 +- 0.33, age 33 +- 12) and a 35% diabetes rate that rises with glucose, BMI, age,
pregnancies and pedigree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DiabetesNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(8, 12), nn.ReLU(),
            nn.Linear(12, 8), nn.ReLU(),
            nn.Linear(8, 1), nn.Sigmoid(),
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.layers(x)


def _gamma(mean, std, n, g):
    shape = (mean / std) ** 2
    return torch._standard_gamma(torch.full((n,), shape), generator=g) * (mean / shape)


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 4, generator=g)
    pregnancies = _gamma(3.85, 3.37, n, g).round().clamp(0, 17)
    glucose = (120.9 + 32.0 * z[:, 0]).clamp(44, 199)
    pressure = (69.1 + 19.3 * z[:, 1]).clamp(0, 122)
    skin = _gamma(29.2, 10.5, n, g).clamp(7, 99)
    skin = torch.where(torch.rand(n, generator=g) < 0.3, 0.0, skin)
    insulin = _gamma(156, 118, n, g).clamp(14, 846)
    insulin = torch.where(torch.rand(n, generator=g) < 0.49, 0.0, insulin)
    bmi = (32.0 + 7.9 * z[:, 2]).clamp(18, 67)
    pedigree = _gamma(0.47, 0.33, n, g).clamp(0.078, 2.42)
    age = 21 + _gamma(12.2, 11.7, n, g).clamp(0, 60)
    x = torch.stack([pregnancies, glucose, pressure, skin, insulin, bmi, pedigree, age], 1)
    risk = (1.1 * (glucose - 121) / 32 + 0.6 * (bmi - 32) / 7.9 + 0.3 * (age - 33) / 11.8
            + 0.3 * (pregnancies - 3.8) / 3.4 + 0.3 * (pedigree - 0.47) / 0.33 - 0.6)
    y = (torch.rand(n, generator=g) < torch.sigmoid(2 * risk)).float()
    return x, y.unsqueeze(1)


def example_inputs():
    return make_data(10, seed=1)[0]


def example_targets():
    return make_data(10, seed=1)[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    return {"accuracy": float(((out > 0.5).float() == y).float().mean()),
            "chance": float(max(y.mean(), 1 - y.mean())),
            "output_std": float(out.std(0).max())}


def train(steps=1500, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(768, seed=1)
    model = DiabetesNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (10,))
        loss = F.binary_cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(2000, seed=2))}
