"""The Keras MNIST CNN example trained by Adadelta at lr 1.0 (fixed).

Port of Theia's Stack Overflow program 62033143 (confanonymous/Theia, ``SOF/62033143.py``): Keras'
``mnist_cnn.py`` (Conv(32, 3x3, relu) -> Conv(64, 3x3, relu) -> MaxPool -> Dropout(0.25) -> Flatten
-> Dense(128, relu) -> Dropout(0.5) -> Dense(10, softmax), categorical cross-entropy, batch 128)
run under tf.keras, whose ``Adadelta()`` defaults to lr 0.001 where Keras' defaulted to 1.0: the
steps are a thousand times smaller than the example was tuned for and after an epoch the net has
barely moved. Theia measured accuracy 0.83 before its repair and 0.99 after (12 epochs). Keras
defaults kept: Glorot-uniform weights, zero biases, Adadelta rho 0.95 and eps 1e-7. The fix (ours,
the question's known cause; Theia publishes its accuracy, not its patch) passes lr=1.0, the rate
the example was written for.

Data: MNIST cannot be downloaded here; ``make_data`` draws MNIST-like digits (28 x 28 strokes in
[0, 1], mean 0.13, std 0.31, 18% of the pixels nonzero, close to MNIST; ten classes of fixed stroke
patterns under random shifts and widths), as 28 x 28 one-channel images with class labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STROKES_SEED = 1234  # the ten classes' stroke patterns, shared by training and held-out data
BATCH = 128


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.drop1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(64 * 12 * 12, 128)
        self.drop2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = self.drop1(F.max_pool2d(F.relu(self.conv2(x)), 2))
        x = self.drop2(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


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


def train(steps=60, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(10000, seed=1)
    model = CNN()
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
