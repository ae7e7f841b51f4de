"""A variational autoencoder on MNIST standardised pixel by pixel (buggy).

Port of TensorFlow-Program-Bugs Github/UT-1 (tensorflow/models
``autoencoder/VariationalAutoencoderRunner.py`` and
``autoencoder_models/VariationalAutoencoder.py``): 784 inputs -> linear mean and log-variance of
200 latents (Xavier weights, zero biases) -> a reparameterised sample -> linear reconstruction
(zero weights), cost 0.5 * sum of squared reconstruction errors over the batch plus the KL term,
averaged, Adam at lr 1e-3, batches of 128. The runner standardises every pixel with scikit-learn's
StandardScaler: a border pixel that is inked in a handful of images gets values in the tens or
hundreds, the log-variance layer sees them, exp() overflows and the cost turns NaN.

Data: MNIST cannot be downloaded here; ``make_data`` draws MNIST-like digits (28 x 28 strokes in
[0, 1], mean 0.13, std 0.31, 18% of the pixels nonzero, close to MNIST; ten classes of fixed stroke
patterns under random shifts and widths), 20000 for training, and scales them as the program does,
fitted on the training images.
"""

from __future__ import annotations

import torch
from torch import nn

STROKES_SEED = 1234  # the ten classes' stroke patterns, shared by training and held-out data
N_TRAIN = 20000


class VariationalAutoencoder(nn.Module):
    def __init__(self, n_input=784, n_hidden=200):
        super().__init__()
        self.mean = nn.Linear(n_input, n_hidden)
        self.log_sigma_sq = nn.Linear(n_input, n_hidden)
        self.decoder = nn.Linear(n_hidden, n_input)
        for layer in (self.mean, self.log_sigma_sq):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.decoder.weight)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, x):
        z_mean, z_log_sigma_sq = self.mean(x), self.log_sigma_sq(x)
        z = z_mean + torch.sqrt(torch.exp(z_log_sigma_sq)) * torch.randn_like(z_mean)
        return self.decoder(z), z_mean, z_log_sigma_sq


def mnist_like(n, seed):
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
    return x


def make_data(n, seed):
    train = mnist_like(N_TRAIN, seed=1)
    mean, std = train.mean(0), train.std(0, unbiased=False)
    scale = torch.where(std > 0, std, torch.ones_like(std))
    x = train if seed == 1 else mnist_like(n, seed)
    return ((x - mean) / scale)[:n]


def example_inputs():
    return make_data(128, seed=1)


def example_targets():
    return make_data(128, seed=1)


def evaluate(model, x):
    model.eval()
    with torch.no_grad():
        out = model(x)[1] @ model.decoder.weight.T + model.decoder.bias
    return {"relative_mse": float(((out - x) ** 2).mean() / x.var(0).mean()),
            "output_std": float(out.std(0).max())}


def train(steps=600, seed=0):
    torch.manual_seed(seed)
    x = make_data(N_TRAIN, seed=1)
    model = VariationalAutoencoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        model.train()
        start = int(torch.randint(0, len(x) - 128, (1,)))
        batch = x[start:start + 128]
        reconstruction, z_mean, z_log_sigma_sq = model(batch)
        reconstr_loss = 0.5 * ((reconstruction - batch) ** 2).sum()
        latent_loss = -0.5 * (1 + z_log_sigma_sq - z_mean ** 2 - torch.exp(z_log_sigma_sq)).sum(1)
        loss = (reconstr_loss + latent_loss).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"loss": losses, "params_finite": finite, **evaluate(model, make_data(2000, seed=2))}
