"""A 1-D CNN over 600-sample signals whose output is a sigmoid (fixed).

Port of NeuraLint's Stack Overflow program 51749207 (neuralint/neuralint, ``sample_buggy_scripts/SO
Samples/51749207.py``): Conv1D(20, 4, relu, same) -> MaxPool(2) -> Dropout(0.3) -> Flatten ->
Dense(50, relu) -> Dense(1, softmax), binary cross-entropy, Nadam (Keras defaults, lr 0.002), batch
8. A softmax over a single unit is the constant 1.0, so the output never changes and nothing
learns. The fix (ours) puts a sigmoid there. Keras defaults kept: Glorot-uniform weights, zero
biases.

Data: the question does not publish its data (signals of 600 samples, one channel, binary labels);
``make_data`` draws noisy signals where the positive class carries a bump of random position and
width (half of the examples).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SignalClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 20, 4, padding="same")
        self.pool = nn.MaxPool1d(2)
        self.drop = nn.Dropout(0.3)
        self.fc1 = nn.Linear(20 * 300, 50)
        self.fc2 = nn.Linear(50, 1)
        for m in (self.conv, self.fc1, self.fc2):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.drop(self.pool(F.relu(self.conv(x))))
        x = F.relu(self.fc1(x.flatten(1)))
        return torch.sigmoid(self.fc2(x))


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < 0.5).float()
    t = torch.arange(600.0)
    centre = torch.rand(n, 1, generator=g) * 500 + 50
    width = torch.rand(n, 1, generator=g) * 20 + 10
    bump = torch.exp(-((t - centre) / width) ** 2) * y.unsqueeze(1)
    x = bump + 0.5 * torch.randn(n, 600, generator=g)
    return x.unsqueeze(1), y.unsqueeze(1)


def example_inputs():
    return make_data(8, seed=1)[0]


def example_targets():
    return make_data(8, seed=1)[1]


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        out = model(x)
    return {"accuracy": float(((out > 0.5).float() == y).float().mean()),
            "chance": float(max(y.mean(), 1 - y.mean())),
            "output_std": float(out.std(0).max())}


def train(steps=400, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(2000, seed=1)
    model = SignalClassifier()
    optimizer = torch.optim.NAdam(model.parameters(), lr=2e-3, eps=1e-7)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (8,))
        loss = F.binary_cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(2000, seed=2))}
