"""A CIFAR-10 CNN trained by SGD with Nesterov momentum 0.9 at lr 0.1 (buggy).

Port of Theia's Stack Overflow program 51118032 (confanonymous/Theia, ``SOF/51118032.py``):
Conv(32, same, relu) -> Conv(32, relu) -> MaxPool -> Dropout(0.25) -> Conv(64, same, relu) ->
Conv(64, relu) -> MaxPool -> Dropout(0.25) -> Flatten -> Dense(512, relu) -> Dropout(0.5) ->
Dense(10, softmax), categorical cross-entropy, SGD(lr 0.1, momentum 0.9, nesterov, decay 1e-6),
batch 32. With momentum 0.9 the effective step is ten times the lr, too large for this net; Theia
measured accuracy 0.10 before its repair and 0.77 after. Keras defaults kept: Glorot-uniform
weights, zero biases; the lr decay of 1e-6 per step is left out (0.04% over this run).

Data: CIFAR-10 cannot be downloaded here; ``make_data`` draws CIFAR-like images (32 x 32 RGB, 8-bit
values scaled by 1/255 as the program does, mean about 0.46 and std 0.23 after scaling), ten
classes, each a fixed smooth colour pattern under random brightness, smooth and pixel noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PATTERN_SEED = 1234  # the ten classes' colour patterns, shared by training and held-out data
BATCH = 32


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(0.25),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(0.25),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 6 * 6, 512), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(512, 10),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x))


def make_data(n, seed):
    patterns = torch.Generator().manual_seed(PATTERN_SEED)
    protos = F.interpolate(0.3 + 0.4 * torch.rand(10, 3, 4, 4, generator=patterns), size=32,
                           mode="bilinear", align_corners=False)
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    x = protos[labels] * (torch.rand(n, 1, 1, 1, generator=g) * 0.6 + 0.6)
    x = x + F.interpolate(0.3 * torch.randn(n, 3, 8, 8, generator=g), size=32, mode="bilinear",
                          align_corners=False)
    x = x + 0.05 * torch.randn(n, 3, 32, 32, generator=g)
    x = torch.round(x.clamp(0, 1) * 255)
    return x / 255, labels


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


def train(steps=150, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(5000, seed=1)
    model = CNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
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
