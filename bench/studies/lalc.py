"""Benchmark: SGD, SGD + linear warm-up, LARS and LALC-style clipping on deep BN-ReLU nets.

Run ``python -m bench.studies.lalc`` (full, a few minutes on a 2-core CPU) or ``--quick``. Prints a
markdown table. Two tasks, both 10-class classification with labels from a fixed random
teacher net (teacher logits standardised over the data set so no class dominates):
a plain Linear->BN1d->ReLU MLP and a plain conv3x3->BN2d->ReLU CNN on random 16x16 inputs.
"""

import argparse
import inspect
import math
import statistics

import torch
from torch import nn

from bnlint.optim import LALC, LARS

N_DATA, N_CLASSES, MOMENTUM, SMOOTH = 2048, 10, 0.9, 20
TARGET = 0.75 * math.log(N_CLASSES)  # "steps to" threshold on the smoothed training loss


def labels_from_teacher(teacher, x):
    with torch.no_grad():
        logits = teacher(x)
    return ((logits - logits.mean(0)) / logits.std(0)).argmax(1)


def mlp_task(depth, width, batch, din=32):
    torch.manual_seed(1000)
    x = torch.randn(N_DATA, din)
    teacher = nn.Sequential(nn.Linear(din, 64), nn.Tanh(), nn.Linear(64, N_CLASSES))

    def student():
        layers, d = [], din
        for _ in range(depth):
            layers += [nn.Linear(d, width, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
            d = width
        return nn.Sequential(*layers, nn.Linear(width, N_CLASSES))

    return x, labels_from_teacher(teacher, x), student, batch


def cnn_task(depth, width, batch):
    torch.manual_seed(2000)
    x = torch.randn(N_DATA, 3, 16, 16)
    teacher = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                            nn.Flatten(), nn.Linear(8, N_CLASSES))

    def student():
        layers, c = [], 3
        for _ in range(depth):
            conv = nn.Conv2d(c, width, 3, padding=1, bias=False)
            layers += [conv, nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, N_CLASSES)]
        return nn.Sequential(*layers, *head)

    return x, labels_from_teacher(teacher, x), student, batch


def make_optimizer(name, params, lr, args):
    if name == "LALC":
        return LALC(params, lr=lr, momentum=MOMENTUM, bound=args.bound)
    if name == "LARS":
        return LARS(params, lr=lr, momentum=MOMENTUM, eta=args.eta)
    return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM)


def train(task, name, lr, seed, args):
    """One run; returns the smoothed loss curve, whether it diverged, and LALC's clip fraction."""
    x, y, student, batch = task
    torch.manual_seed(seed)
    model = student()
    opt = make_optimizer(name, model.parameters(), lr, args)
    warmup = int(args.warmup * args.steps) if name == "SGD+warm-up" else 0
    batches = torch.Generator().manual_seed(seed)
    losses, diverged = [], False
    for t in range(args.steps):
        if warmup:
            opt.param_groups[0]["lr"] = lr * min(1.0, (t + 1) / warmup)
        idx = torch.randint(0, N_DATA, (batch,), generator=batches)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        if not math.isfinite(loss.item()) or (losses and loss.item() > 5 * losses[0]):
            diverged = True
            break
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    smooth = [statistics.mean(losses[max(0, i - SMOOTH + 1):i + 1]) for i in range(len(losses))]
    clip = opt.clipped_total / opt.layer_steps_total if name == "LALC" else None
    return smooth, diverged, clip


def row(task_name, name, lr, runs, steps):
    """Aggregate seeds: mean final/best loss, diverged count, slowest seed's steps-to-target."""
    final = [math.nan if div else s[-1] for s, div, _ in runs]
    best = [min(s) if s else math.nan for s, _, _ in runs]
    hits = [next((i + 1 for i, v in enumerate(s) if v <= TARGET), None) for s, _, _ in runs]
    to_target = f">{steps}" if None in hits else str(max(hits))
    clips = [c for _, _, c in runs if c is not None]
    clip = f"{statistics.mean(clips):.2f}" if clips else ""
    n_div = sum(div for _, div, _ in runs)

    def fmt(values):
        return f"{statistics.mean(values):.3f}" if all(map(math.isfinite, values)) else "nan"

    return (f"| {task_name} | {name} | {lr:g} | {fmt(final)} | {fmt(best)} | {n_div}/{len(runs)} "
            f"| {to_target} | {clip} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer steps, seeds and learning rates")
    p.add_argument("--bound", type=float, default=None, help="LALC bound (default: LALC's)")
    p.add_argument("--eta", type=float, default=0.001, help="LARS trust coefficient")
    p.add_argument("--warmup", type=float, default=0.2, help="warm-up length, fraction of steps")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.bound is None:
        args.bound = inspect.signature(LALC).parameters["bound"].default
    args.steps = 150 if args.quick else 400
    seeds = [0] if args.quick else [0, 1]
    lrs = [0.1, 1.0] if args.quick else [0.03, 0.3, 1.0, 3.0]
    mlp_depth, mlp_width, mlp_batch = 20, 64, 64
    cnn_depth, cnn_width, cnn_batch = 10, 16, 32
    tasks = {
        f"MLP d{mlp_depth} w{mlp_width}": mlp_task(mlp_depth, mlp_width, mlp_batch),
        f"CNN d{cnn_depth} w{cnn_width}": cnn_task(cnn_depth, cnn_width, cnn_batch),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s). {N_CLASSES}-class "
          f"teacher labels, {N_DATA} samples, {args.steps} steps, momentum {MOMENTUM}; "
          f"seeds {seeds} (student init and minibatch order; data and teacher fixed).")
    print(f"MLP: {mlp_depth} x (Linear(no bias)->BN1d->ReLU), width {mlp_width}, "
          f"batch {mlp_batch}, 32-d N(0,1) inputs. CNN: {cnn_depth} x "
          f"(conv3x3(no bias)->BN2d->ReLU), width {cnn_width}, batch {cnn_batch}, "
          f"3x16x16 N(0,1) inputs, global avg pool.")
    print(f"LALC bound {args.bound:g}; LARS eta {args.eta:g}; warm-up linear over the first "
          f"{args.warmup:.0%} of steps. Losses: training cross-entropy smoothed over {SMOOTH} "
          f"steps, mean over seeds. Diverged: non-finite or > 5x initial loss. Steps to target: "
          f"to loss <= {TARGET:.2f} (0.75 ln 10), slowest seed. LALC clipped: fraction of "
          f"tensor-steps clipped.\n")
    print("| task | optimizer | lr | final loss | best loss | diverged | steps to target "
          "| LALC clipped |")
    print("|---|---|---|---|---|---|---|---|")
    for task_name, task in tasks.items():
        for lr in lrs:
            for name in ["SGD", "SGD+warm-up", "LARS", "LALC"]:
                runs = [train(task, name, lr, s, args) for s in seeds]
                print(row(task_name, name, lr, runs, args.steps), flush=True)


if __name__ == "__main__":
    main()
