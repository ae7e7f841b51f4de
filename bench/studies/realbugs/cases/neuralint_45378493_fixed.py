"""A 1-D CNN for binary sequence labels whose output is a sigmoid (fixed).

Port of NeuraLint's Stack Overflow program 45378493 (neuralint/neuralint, ``sample_buggy_scripts/SO
Samples/45378493.py``; also defects4ml bug 086): Conv1D(16, 4) -> BatchNorm -> LeakyReLU ->
Dropout(0.2) -> Conv1D(8, 4) -> BatchNorm -> LeakyReLU -> Dropout -> Flatten -> Dense(64) ->
BatchNorm -> LeakyReLU -> Dense(1) -> softmax, binary cross-entropy, Adam (Keras defaults), batch
128. A softmax over a single unit is the constant 1.0, so the output never changes and nothing
learns. The fix (defects4ml bug 086's fixed version) puts a sigmoid there. Keras defaults kept:
Glorot-uniform weights, zero biases, LeakyReLU slope 0.3, BatchNorm momentum 0.99 and eps 1e-3,
"same" padding. The program's ReduceLROnPlateau callback is left out (it only lowers the lr after
30 epochs without progress).

Data: the question does not publish its data. It prints one sample (ten time steps of four
standardised prices that move together, about -1.06) and a test split with 608 positives of 970.
``make_data`` draws standard-normal sequences of that shape labelled by a fixed random two-layer
function, 63% positive; it does not imitate the prices, whose labels the question does not give.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TEACHER_SEED = 45378493  # the labelling function, shared by training and held-out data


class SequenceClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(4, 16, 4, padding="same"),
            nn.BatchNorm1d(16, eps=1e-3, momentum=0.01),
            nn.LeakyReLU(0.3),
            nn.Dropout(0.2),
            nn.Conv1d(16, 8, 4, padding="same"),
            nn.BatchNorm1d(8, eps=1e-3, momentum=0.01),
            nn.LeakyReLU(0.3),
            nn.Dropout(0.2),
            nn.Flatten(),
            nn.Linear(8 * 10, 64),
            nn.BatchNorm1d(64, eps=1e-3, momentum=0.01),
            nn.LeakyReLU(0.3),
            nn.Linear(64, 1),
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return torch.sigmoid(self.features(x))


def make_data(n, seed):
    t = torch.Generator().manual_seed(TEACHER_SEED)
    w1, w2 = torch.randn(40, 16, generator=t) / 40 ** 0.5, torch.randn(16, generator=t)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, 10, generator=g)
    score = torch.tanh(x.flatten(1) @ w1) @ w2
    return x, (score > score.quantile(0.37)).float().unsqueeze(1)


def example_inputs():
    return make_data(128, seed=1)[0]


def example_targets():
    return make_data(128, seed=1)[1]


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        out = model(x)
    return {"accuracy": float(((out > 0.5).float() == y).float().mean()),
            "chance": float(max(y.mean(), 1 - y.mean())),
            "output_std": float(out.std(0).max())}


def train(steps=300, seed=0):
    torch.manual_seed(seed)
    x, y = make_data(4000, seed=1)
    model = SequenceClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,))
        loss = F.binary_cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, *make_data(2000, seed=2))}
