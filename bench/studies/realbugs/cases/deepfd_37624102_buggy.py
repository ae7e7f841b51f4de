"""A CNN telling all-ones from all-zeros images, trained by SGD, Nesterov momentum, lr 0.1 (buggy).

Port of Stack Overflow question 37624102 as DeepFD's benchmark holds it (ArabelaTso/DeepFD,
``Benchmark/Benchmark-with-patches.xlsx`` row 34, from the taxonomy of Humbatova et al.): 100
images of ones and 100 of zeros (100 x 100, one channel), every seventh held out, Conv(32, 3x3,
relu) -> Conv(32, 3x3, relu) -> MaxPool -> Flatten -> Dense(128, relu) -> Dense(2, softmax), binary
cross-entropy on one-hot labels, SGD(lr 0.1, decay 1e-6, momentum 0.9, nesterov), batch 32. The
first large steps drive the net to the same saturated prediction for every image: the loss climbs
and the accuracy stays at 0.5. Keras defaults kept: Glorot-uniform weights, zero biases; the lr
decay (1e-6 per step) is left out.

Data: the question's own, generated in the program (constant images and their labels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 32, 3)
        self.fc1 = nn.Linear(32 * 48 * 48, 128)
        self.fc2 = nn.Linear(128, 2)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return F.softmax(self.fc2(x), dim=1)


def make_data(held_out, seed):
    keep = [j for j in range(100) if ((j + 2) % 7 != 0) != held_out]
    n = len(keep)
    x = torch.cat([torch.ones(n, 1, 100, 100), torch.zeros(n, 1, 100, 100)])
    y = torch.tensor([[1.0, 0.0]] * n + [[0.0, 1.0]] * n)
    order = torch.randperm(2 * n, generator=torch.Generator().manual_seed(seed))
    return x[order], y[order]


def example_inputs():
    return make_data(False, seed=1)[0][:32]


def example_targets():
    return make_data(False, seed=1)[1][:32]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    labels = y.argmax(1)
    return {"accuracy": float((out.argmax(1) == labels).float().mean()),
            "chance": float(labels.bincount().max() / len(labels)),
            "output_std": float(out.std(0).max())}


def train(steps=24, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(False, seed=1)
    model = CNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    losses = []
    for step in range(steps):
        start = (step * 32) % len(x)
        batch = slice(start, start + 32)
        loss = F.binary_cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(True, seed=2))}
