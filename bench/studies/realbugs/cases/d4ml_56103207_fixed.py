"""A small MNIST-style CNN trained on shuffled data, validated on its last 20% (fixed).

Port of Stack Overflow question 56103207 as defects4ml holds it (bug 091, buggy and fixed
``script.py``; also NeuraLint's ``SO Samples/56103207.py``): Conv(32, 5x5, relu) -> MaxPool ->
Conv(16, 3x3, relu) -> MaxPool -> Flatten -> Dense(128, relu) -> Dense(64, relu) -> Dense(5,
softmax), categorical cross-entropy, Adam (Keras defaults), batch 100, ``validation_split=0.2``.
The arrays are stored sorted by class and Keras takes the validation split from the end before it
shuffles, so the model trains on four classes and is validated on the fifth alone: validation
accuracy near 0. Keras defaults kept: Glorot-uniform weights, zero biases, Adam eps 1e-7. The fix
(defects4ml's fixed version, the accepted answer) shuffles the arrays before training.

Data: the question's x.npy and y.npy are not published; ``make_data`` draws MNIST-like digits of
five classes (28 x 28 strokes in [0, 1], mean 0.13, std 0.31, 18% of the pixels nonzero, close to
MNIST; fixed stroke patterns under random shifts and widths), 1000 per class, sorted by class as
the question's arrays are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STROKES_SEED = 1234  # the classes' stroke patterns, shared by training and held-out data
BATCH = 100


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5)
        self.conv2 = nn.Conv2d(32, 16, 3)
        self.fc1 = nn.Linear(16 * 5 * 5, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 5)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))
        return self.fc3(x)


def make_data(n, seed):
    strokes = torch.Generator().manual_seed(STROKES_SEED)
    ends = torch.rand(10, 3, 2, 2, generator=strokes) * 14 + 7
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(5).repeat_interleave(n // 5)
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
    return make_data(5000, seed=1)[0][:BATCH]


def example_targets():
    return make_data(5000, seed=1)[1][:BATCH]


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        out = model(x)
    return {"accuracy": float((out.argmax(1) == y).float().mean()),
            "chance": float(y.bincount().max() / len(y)),
            "output_std": float(out.std(0).max())}


def train(steps=400, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(5000, seed=1)
    order = torch.randperm(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))  # Keras' validation_split takes the last 20%, unshuffled
    x_train, y_train, x_val, y_val = x[:split], y[:split], x[split:], y[split:]
    model = CNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    losses = []
    for _ in range(steps):
        model.train()
        idx = torch.randint(0, len(x_train), (BATCH,))
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, x_val, y_val)}
