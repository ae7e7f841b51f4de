"""A ReLU LeNet for MNIST trained by Adadelta at lr 1.0 (fixed).

Port of Theia's Stack Overflow program 49237068 (confanonymous/Theia, ``SOF/49237068.py``): Conv(6,
5x5, sigmoid) -> MaxPool -> Conv(12, 5x5, sigmoid) -> AvgPool -> Flatten -> Dense(192) -> Dense(10,
sigmoid) -> Dense(10, softmax), categorical cross-entropy, batch 32, ``Adadelta()`` under tf.keras,
whose default lr is 0.001 (Keras' was 1.0). Saturating sigmoids and a thousand-times-too-small
Adadelta step leave the net at chance: Theia measured accuracy 0.11 before its repair and 0.86
after. Keras defaults kept: Glorot-uniform weights, zero biases, Adadelta rho 0.95 and eps 1e-7.
The fix (ours; Theia publishes its accuracy, not its patch) needs both changes: ReLU for the hidden
sigmoids and lr=1.0, the rate Keras' Adadelta was written for (either alone stays at chance for
this run's 400 steps).

Data: MNIST cannot be downloaded here; ``make_data`` draws MNIST-like digits (28 x 28 strokes in
[0, 1], mean 0.13, std 0.31, 18% of the pixels nonzero, close to MNIST; ten classes of fixed stroke
patterns under random shifts and widths), as 28 x 28 one-channel images with class labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STROKES_SEED = 1234  # the ten classes' stroke patterns, shared by training and held-out data
BATCH = 32


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 12, 5)
        self.fc1 = nn.Linear(12 * 4 * 4, 192)
        self.fc2 = nn.Linear(192, 10)
        self.fc3 = nn.Linear(10, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.avg_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc2(self.fc1(x.flatten(1))))
        return self.fc3(x)


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
    return x.reshape(n, 1, 28, 28), labels


def example_inputs():
    return make_data(BATCH, seed=1)[0]


def example_targets():
    return make_data(BATCH, seed=1)[1]


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        out = model(x)
    return {"accuracy": float((out.argmax(1) == y).float().mean()),
            "chance": float(y.bincount().max() / len(y)),
            "output_std": float(out.std(0).max())}


def train(steps=400, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(10000, seed=1)
    model = LeNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7)
    losses = []
    for _ in range(steps):
        model.train()
        idx = torch.randint(0, len(x), (BATCH,))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(2000, seed=2))}
