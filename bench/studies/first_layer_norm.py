"""Why a BatchNorm-fed first layer's gradient falls after one step: its weight is
scale-invariant, so its gradient is orthogonal to it, a step grows its norm, and the gradient
scales as 1/|w| (van Laarhoven, arXiv:1706.05350).

    PYTHONPATH=<this tree> /work/zoo-venv/bin/python -m bench.studies.first_layer_norm
        [--only NAME,...] [--batch 4]

For torchvision models built untrained (weights=None) at their native size, on standard-normal
images and random labels (no dataset here), one step of the probe's default optimizer (SGD,
lr 0.01, momentum 0.9) on one batch, as the probe takes it. Prints a markdown table: the first
conv's weight norm and gradient norm before and after the step, the cosine between its
weight and gradient at initialisation, the gradient predicted after the step from the norm
growth alone (|g0| |w0| / |w1|), the last layer's gradient norm, and the first/last ratio.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.studies.zoo import native_size, torchvision_models

MODELS = ("resnet101", "resnet152", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2",
          "inception_v3")


def one_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """|w0|, |g0|, cos(w0, g0), |w1|, |g1|, |g0| |w0| / |w1|, last |g| at 0 and 1 of the first
    conv and the last linear layer over one SGD step on (x, y)."""
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    norms = []
    for _ in range(2):
        opt.zero_grad()
        out = model(x)
        out = out.logits if hasattr(out, "logits") else out
        F.cross_entropy(out, y).backward()
        w, g = first.weight.detach(), first.weight.grad
        norms.append((w.norm().item(), g.norm().item(),
                      (w * g).sum().item() / (w.norm() * g.norm()).item(),
                      last.weight.grad.norm().item()))
        opt.step()
    (w0, g0, cos0, l0), (w1, g1, _, l1) = norms
    return [w0, g0, cos0, w1, g1, g0 * w0 / w1, l0, l1, g0 / l0, g1 / l1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated torchvision model names")
    parser.add_argument("--batch", type=int, default=4, help="batch (default 4, as the zoo's)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    names = args.only.split(",") if args.only else MODELS
    print("| model | px | first |w0| | |g0| | cos(w0, g0) | |w1| | |g1| | |g0| |w0|/|w1| | "
          "last |g0| | last |g1| | ratio 0 | ratio 1 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, make, size in torchvision_models():
        if name not in names:
            continue
        torch.manual_seed(0)
        model = make()
        size = native_size(model, size)
        x, y = torch.randn(args.batch, 3, size, size), torch.randint(0, 1000, (args.batch,))
        cells = " | ".join(f"{v:.3g}" for v in one_step(model, x, y))
        print(f"| {name} | {size} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
