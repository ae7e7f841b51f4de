"""A CIFAR-10 CNN trained by Adam at lr 1e-3 on cross-entropy (fixed).

Port of Theia's Stack Overflow program 64522751 (confanonymous/Theia, ``SOF/64522751.py``):
Conv(25, 3x3, relu) -> MaxPool -> Conv(50, 3x3, relu) -> MaxPool -> Conv(100, 3x3, relu) -> MaxPool
-> Flatten -> Dense(100, relu) -> ReLU -> Dense(10, softmax), Adam at lr 0.1, binary cross-entropy
on one-hot labels, batch 10. Adam's steps of 0.1 per weight throw the ReLU net out of its working
range at once; Theia measured accuracy 0.10 before its repair and 0.79 after. The fix (ours; Theia
publishes its accuracy, not its patch) trains at Adam's default lr 1e-3 on cross-entropy over the
logits, as PyTorch code would. Keras defaults kept: Glorot-uniform weights, zero biases, Adam eps
1e-7.

Data: CIFAR-10 cannot be downloaded here; ``make_data`` draws CIFAR-like images (32 x 32 RGB, 8-bit
values scaled by 1/255 as the program does, mean about 0.46 and std 0.23 after scaling), ten
classes, each a fixed smooth colour pattern under random brightness, smooth and pixel noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PATTERN_SEED = 1234  # the ten classes' colour patterns, shared by training and held-out data


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 25, 3)
        self.conv2 = nn.Conv2d(25, 50, 3)
        self.conv3 = nn.Conv2d(50, 100, 3)
        self.fc1 = nn.Linear(100 * 2 * 2, 100)
        self.fc2 = nn.Linear(100, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        x = F.relu(F.relu(self.fc1(x.flatten(1))))
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
    return x / 255, F.one_hot(labels, 10).float()


def example_inputs():
    return make_data(10, seed=1)[0]


def example_targets():
    return make_data(10, seed=1)[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    labels = y.argmax(1)
    return {"accuracy": float((out.argmax(1) == labels).float().mean()),
            "chance": float(labels.bincount().max() / len(labels)),
            "output_std": float(out.std(0).max())}


def train(steps=400, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(5000, seed=1)
    model = CNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (10,))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(2000, seed=2))}
