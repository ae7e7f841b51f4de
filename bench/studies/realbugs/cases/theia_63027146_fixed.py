"""A CIFAR-10 CNN fed pixels scaled to [0, 1] (fixed).

Port of Theia's Stack Overflow program 63027146 (confanonymous/Theia, ``SOF/63027146.py``):
Conv(128, 3x3, relu) -> MaxPool -> Conv(64, 2x2) -> MaxPool -> Flatten -> Dense(64, relu) ->
Dense(10, softmax), categorical cross-entropy, Adam (Keras defaults), batch 32. Unlike the programs
around it, it never divides the pixels by 255: first-layer pre-activations run into the hundreds
and the first Adam steps leave the ReLUs dead and the output constant; Theia measured accuracy 0.10
before its repair and 0.76 after. Keras defaults kept: Glorot-uniform weights, zero biases, Adam
eps 1e-7. The fix (ours; Theia publishes its accuracy, not its patch) divides the pixels by 255 as
the other programs do.

Data: CIFAR-10 cannot be downloaded here; ``make_data`` draws CIFAR-like images (32 x 32 RGB, 8-bit
values 0..255, mean about 116 and std 60, divided by 255 in this version), ten classes, each a
fixed smooth colour pattern under random brightness, smooth and pixel noise.
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
        self.conv1 = nn.Conv2d(3, 128, 3)
        self.conv2 = nn.Conv2d(128, 64, 2)
        self.fc1 = nn.Linear(64 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(self.conv2(x), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


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
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
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
