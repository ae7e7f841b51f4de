"""Facial keypoints regressed by three stacked linear layers, trained by SGD with Nesterov momentum
(fixed).

Port of DeepLocalize's GitHub program ShyamPoovaiah/FacialKeypointsDetection
(Wardat-ISU/DeepLocalize ``Benchmark/GitHub/Buggy
Model/FacialKeypointsDetection/src/1_single_hidden_layer.py``; defects4ml bug 024): 96 x 96
grayscale faces flattened to 9216 values in [0, 1] -> Dense(50) -> Dense(100) -> Dense(30), no
activation anywhere, mean squared error against 15 (x, y) keypoints scaled to [-1, 1], Adam at lr
0.1, batch 32 (Keras' default). Adam moves every one of the 9216 x 50 first-layer weights by about
0.1 per step, so the output swings by hundreds and the fit never settles. Keras defaults kept:
Glorot-uniform weights, zero biases, Adam eps 1e-7. The repository's fix (``Correct Model``) trains
with SGD(lr 0.01, decay 1e-6, momentum 0.9, nesterov, clipnorm 1) instead; clipnorm clips each
gradient tensor to norm 1, as here; the decay (1e-6 per step) is left out.

Data: the Kaggle facial-keypoints set cannot be downloaded here; ``make_data`` draws 96 x 96 faces
whose 15 keypoints (eye corners, brows, nose, mouth) sit at the data set's typical positions under
a random shift (4 px), scale (5%) and jitter (1 px), drawn as dark blobs on a smooth background
(pixels in [0, 1], mean about 0.5), with the keypoints scaled as the program does, (p - 48) / 48.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Typical (x, y) pixel positions of the 15 keypoints in the 96 x 96 Kaggle faces
KEYPOINTS = torch.tensor([[66, 39], [30, 37], [59, 39], [73, 39], [37, 38], [23, 38], [57, 30],
                          [80, 31], [39, 30], [16, 32], [48, 62], [63, 76], [33, 76], [48, 72],
                          [48, 82]], dtype=torch.float32)


class KeypointRegressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden1 = nn.Linear(9216, 50)
        self.hidden2 = nn.Linear(50, 100)
        self.out = nn.Linear(100, 30)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.out(self.hidden2(self.hidden1(x)))


def make_data(n, seed):
    g = torch.Generator().manual_seed(seed)
    shift = torch.randn(n, 1, 2, generator=g) * 4
    scale = 1 + torch.randn(n, 1, 1, generator=g) * 0.05
    pts = (KEYPOINTS - 48) * scale + 48 + shift + torch.randn(n, 15, 2, generator=g)
    grid = torch.stack(torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij"), -1)
    d2 = ((grid.reshape(1, 1, -1, 2) - pts.flip(-1).unsqueeze(2)) ** 2).sum(-1)
    blobs = torch.exp(-d2 / 18).sum(1)
    back = F.interpolate(torch.rand(n, 1, 6, 6, generator=g), size=96, mode="bilinear",
                         align_corners=False).reshape(n, -1)
    x = (0.25 + 0.6 * back - 0.5 * blobs + 0.03 * torch.randn(n, 9216, generator=g)).clamp(0, 1)
    return torch.round(x * 255) / 255, ((pts - 48) / 48).reshape(n, 30)


def example_inputs():
    return make_data(32, seed=1)[0]


def example_targets():
    return make_data(32, seed=1)[1]


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
    return {"relative_mse": float((((out - y) ** 2).mean(0) / y.var(0)).mean()),
            "output_std": float(out.std(0).max())}


def train(steps=300, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(2140, seed=1)
    model = KeypointRegressor()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,))
        loss = F.mse_loss(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        for p in model.parameters():
            nn.utils.clip_grad_norm_(p, 1.0)
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(1000, seed=2))}
