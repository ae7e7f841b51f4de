"""Benchmark: bnlint's predicted gradient flow (bnlint.flow) against a measured backward pass.

Run ``python -m bench.calibration.gradient_flow`` (the tables, a few minutes on a 2-core CPU),
``--quick`` (depths 5 and 20, one seed), ``--activations`` (only the per-activation table) or
``--calibrate`` (re-measure the conv constants of bnlint.theory: CONV_BN_RELU_GAIN,
SPATIAL_KEEP, SPATIAL_EXCESS). Prints markdown.

Measured ratio: ||grad W_first|| / ||grad W_last|| (Frobenius norms) of the model's first and
last affine layers after one backward pass at initialisation, with cross-entropy on random
labels (the probe's loss), geometric mean over seeds. Predicted: bnlint.flow.predict on the
same models, with the example batch's moments. log10 error = log10(predicted / measured).
"""

import argparse
import math
import statistics

import torch
import torch.nn.functional as F
from torch import nn

from bnlint.model.build import build
from bnlint.predict import flow, theory
from examples.resnet56 import ResNet56  # the example model, at other depths

WIDTH, BATCH, CLASSES = 256, 256, 10


class Shaped(nn.Module):
    """tanh(l^-alpha x): the activation shaping of Meterez et al. (arXiv:2310.02012)."""

    def __init__(self, layer):
        super().__init__()
        self.scale = theory.shaping_scale(layer)

    def forward(self, x):
        return torch.tanh(self.scale * x)


class PreActBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.bn1, self.fc1 = nn.BatchNorm1d(width), nn.Linear(width, width)
        self.bn2, self.fc2 = nn.BatchNorm1d(width), nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc2(F.relu(self.bn2(self.fc1(F.relu(self.bn1(x))))))


class Sin(nn.Module):
    def forward(self, x):
        return torch.sin(x)


# The elementwise activations of issue 12, as (module factory, bnlint kind, options).
ACTIVATIONS = {
    "GELU": (nn.GELU, "GELU", {}), "SiLU": (nn.SiLU, "SiLU", {}), "ELU": (nn.ELU, "ELU", {}),
    "Mish": (nn.Mish, "Mish", {}), "Softplus": (nn.Softplus, "Softplus", {}),
    "Hardswish": (nn.Hardswish, "Hardswish", {}),
    "LeakyReLU(0.2)": (lambda: nn.LeakyReLU(0.2), "LeakyReLU", {"negative_slope": 0.2}),
    "LeakyReLU(0.5)": (lambda: nn.LeakyReLU(0.5), "LeakyReLU", {"negative_slope": 0.5}),
    "sin": (Sin, "Sin", {}), "tanh": (nn.Tanh, "Tanh", {}), "sigmoid": (nn.Sigmoid, "Sigmoid", {}),
}


def activation_mlp(name, depth, init):
    """``depth`` Linear -> activation layers and a linear head, width WIDTH, no normalisation:
    at PyTorch's default init, or at the variance-preserving init (std gain / sqrt(fan_in),
    gain = bnlint.theory.activation_gain, zero biases) with ``init="preserving"``, or with a
    BatchNorm1d after each Linear with ``init="batchnorm"``."""
    make, kind, options = ACTIVATIONS[name]
    layers = []
    for _ in range(depth):
        linear = nn.Linear(WIDTH, WIDTH)
        if init == "preserving":
            nn.init.normal_(linear.weight, std=theory.activation_gain(kind, options) / WIDTH ** 0.5)
            nn.init.zeros_(linear.bias)
        layers += [linear, nn.BatchNorm1d(WIDTH), make()] if init == "batchnorm" \
            else [linear, make()]
    return nn.Sequential(*layers, nn.Linear(WIDTH, CLASSES))


def activation_table(depths, seeds):
    """Predicted vs measured first/last ratio for each activation: unnormalised at the default
    and the variance-preserving init, and in a BatchNorm chain. Measured in float64: a 50-layer
    sigmoid stack's first-layer gradient underflows float32."""
    print("\n| activation | init | depth | predicted | measured | log10 error |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    errors = {}
    for name in ACTIVATIONS:
        for init, ds in (("default", [d for d in depths if d <= 20]), ("preserving", depths),
                         ("batchnorm", depths)):
            for depth in ds:
                pred, meas = compare(lambda n=name, d=depth, i=init: activation_mlp(n, d, i),
                                     (BATCH, WIDTH), seeds, torch.float64)
                err = math.log10(pred / meas)
                errors.setdefault(name, []).append(abs(err))
                print(f"| {name} | {init} | {depth} | {pred:.3g} | {meas:.3g} | {err:+.2f} |",
                      flush=True)
    worst = {n: max(e) for n, e in errors.items()}
    print("\nmax |log10 error| by activation: " + ", ".join(
        f"{n} {e:.2f} (x{10 ** e:.2f})" for n, e in worst.items()))


def mlp(depth, block):
    layers = [m for i in range(depth) for m in block(i + 1)]
    return nn.Sequential(*layers, nn.Linear(WIDTH, CLASSES))


def orthogonal_linear():
    layer = nn.Linear(WIDTH, WIDTH, bias=False)
    nn.init.orthogonal_(layer.weight)
    return layer


FAMILIES = {
    "plain BN-ReLU": lambda d: mlp(d, lambda i: (nn.Linear(WIDTH, WIDTH), nn.BatchNorm1d(WIDTH),
                                                 nn.ReLU())),
    "residual (pre-act)": lambda d: nn.Sequential(
        nn.Linear(WIDTH, WIDTH), *[PreActBlock(WIDTH) for _ in range(d)],
        nn.BatchNorm1d(WIDTH), nn.ReLU(), nn.Linear(WIDTH, CLASSES)),
    "BN-linear orthogonal": lambda d: mlp(d, lambda i: (orthogonal_linear(),
                                                        nn.BatchNorm1d(WIDTH))),
    "BN-tanh unshaped": lambda d: mlp(d, lambda i: (nn.Linear(WIDTH, WIDTH),
                                                    nn.BatchNorm1d(WIDTH), nn.Tanh())),
    "BN-tanh shaped": lambda d: mlp(d, lambda i: (nn.Linear(WIDTH, WIDTH),
                                                  nn.BatchNorm1d(WIDTH), Shaped(i))),
}


class ConvNet(nn.Module):
    """conv3x3 -> BN2d -> ReLU blocks (stride 2 where the width grows), then a global average
    pool and a linear head (the plain CNN of docs/SCIENCE.md §1), or with ``flatten`` (the final map
    size) a linear head on the flattened map, as VGG and examples/plain_cnn30.py have."""

    def __init__(self, widths, in_ch=3, flatten=None):
        super().__init__()
        layers, c = [], in_ch
        for w in widths:
            stride = 2 if c not in (in_ch, w) else 1
            layers += [nn.Conv2d(c, w, 3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        self.body = nn.Sequential(*layers)
        self.flatten = flatten
        self.head = nn.Linear(c * flatten * flatten if flatten else c, CLASSES)

    def forward(self, x):
        x = self.body(x)
        return self.head(x.flatten(1) if self.flatten else x.mean(dim=(2, 3)))


def cifar_resnet(depth):
    """He et al.'s CIFAR ResNet-(6n+2), post-activation blocks, last BN gamma at its default 1:
    examples/resnet56.py's model at another depth."""
    return ResNet56(blocks_per_stage=(depth - 2) // 6, num_classes=CLASSES)


def measure(model, x, seed):
    """Weight-gradient norm of every affine module after one cross-entropy backward."""
    torch.manual_seed(seed)
    model.train()
    out = model(x)
    F.cross_entropy(out, torch.randint(0, out.shape[1], (x.shape[0],))).backward()
    return {n: m.weight.grad.norm().item() for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Conv2d))}


def geomean(values):
    return math.exp(statistics.mean(math.log(v) for v in values))


def compare(make, shape, seeds, dtype=torch.float32):
    """(predicted, measured) model first/last ratio, geometric means over seeds; ``dtype`` for
    the measurement (float64 where float32 would underflow)."""
    pred, meas = [], []
    for seed in range(seeds):
        torch.manual_seed(1000 + seed)
        model, x = make().to(dtype), torch.randn(shape, dtype=dtype)
        pred.append(flow.predict(build(model, (x,)), shape[0], (x,)).grad_ratio)
        grads = measure(model, x, seed)
        names = list(grads)
        meas.append(grads[names[0]] / grads[names[-1]])
    return geomean(pred), geomean(meas)


def table(depths, seeds):
    rows = [(name, d, lambda d=d, make=make: make(d), (BATCH, WIDTH))
            for name, make in FAMILIES.items() for d in depths]
    rows += [("plain BN-ReLU CNN", d, lambda d=d: ConvNet([32] * d), (32, 3, 16, 16))
             for d in depths if d <= 50]
    rows += [("CIFAR ResNet, post-act", d, lambda d=d: cifar_resnet(d), (32, 3, 32, 32))
             for d in ([8, 20] if len(depths) < 3 else [8, 20, 56, 110])]
    print("| family | depth | predicted | measured | log10 error |")
    print("| --- | ---: | ---: | ---: | ---: |")
    errors = []
    for name, depth, make, shape in rows:
        pred, meas = compare(make, shape, seeds)
        err = math.log10(pred / meas)
        errors.append(abs(err))
        print(f"| {name} | {depth} | {pred:.3g} | {meas:.3g} | {err:+.2f} |", flush=True)
    print(f"\nmax |log10 error| {max(errors):.2f} (factor {10 ** max(errors):.2f}); "
          f"median {statistics.median(errors):.2f}")


def chain_table(seeds):
    """The 30-block plain CNN of examples/plain_cnn30.py (width 16, 16x16 inputs, batch 32):
    first/last conv ratio with a flattening head (the example) and with global pooling."""
    print("\n| plain CNN, 30 blocks, width 16 | predicted chain ratio | measured (geomean) | "
          "measured per seed |")
    print("| --- | ---: | ---: | --- |")
    for head, flatten in (("flatten + linear", 16), ("global average pool + linear", None)):
        pred, meas = [], []
        for seed in range(seeds):
            torch.manual_seed(seed)
            model, x = ConvNet([16] * 30, flatten=flatten), torch.randn(32, 3, 16, 16)
            chain = flow.predict(build(model, (x,)), 32, (x,)).chain
            grads = measure(model, x, seed)
            pred.append(chain.grad_ratio)
            meas.append(grads[chain.first_module] / grads[chain.last_module])
        print(f"| {head} | {geomean(pred):.3g} | {geomean(meas):.3g} | "
              + ", ".join(f"{m:.0f}" for m in meas) + " |", flush=True)


CALIBRATION = [  # (widths, map size, batch)
    ([16] * 30, 16, 32), ([32] * 30, 16, 32), ([16] * 30, 32, 32), ([64] * 30, 8, 16),
    ([32] * 30, 32, 16), ([16] * 10 + [32] * 10 + [64] * 10, 32, 32),
]


def interior_gain(grads):
    """exp(-slope) of a least-squares line through log ||grad W|| over the interior layers."""
    ys = [math.log(g) for g in grads[3:-8]]
    xs = list(range(len(ys)))
    mx, my = statistics.mean(xs), statistics.mean(ys)
    return math.exp(-sum((a - mx) * (b - my) for a, b in zip(xs, ys))
                    / sum((a - mx) ** 2 for a in xs))


def calibrate_mlp(seeds, depth=40):
    """The per-block gain of Linear -> BN1d -> ReLU by batch size (width 256)."""
    cells = []
    for batch in (8, 16, 32, 64, 128, 256, 512, 1024):
        gains = []
        for seed in range(seeds):
            torch.manual_seed(3000 + seed)
            model, x = FAMILIES["plain BN-ReLU"](depth), torch.randn(batch, WIDTH)
            grads = measure(model, x, seed)
            gains.append(interior_gain(list(grads.values())[:-1]))
        cells.append(f"({batch}, {statistics.mean(gains):.3f})")
        print(f"batch {batch}: {statistics.mean(gains):.4f} (range {min(gains):.4f}-"
              f"{max(gains):.4f})", flush=True)
    print("MLP_BN_RELU_GAIN_BY_BATCH = (" + ", ".join(cells) + ")")


def calibrate(seeds):
    """Fit CONV_BN_RELU_GAIN (interior per-block slope of the measured weight gradients) and
    SPATIAL_KEEP / SPATIAL_EXCESS (least squares on every conv's log gradient relative to the
    last conv, over the configurations and seeds)."""
    runs, gains = [], []
    for widths, px, batch in CALIBRATION:
        for seed in range(seeds):
            torch.manual_seed(2000 + seed)
            model, x = ConvNet(widths), torch.randn(batch, 3, px, px)
            graph = build(model, (x,))
            grads = measure(model, x, seed)
            convs = [n for n in grads if n.startswith("body")]
            runs.append((graph, x, grads, convs))
            if len(set(widths)) == 1:
                gains.append(interior_gain([grads[n] for n in convs]))
    theory.CONV_BN_RELU_GAIN = round(statistics.median(gains), 3)
    print(f"interior conv BN-ReLU gain: median {theory.CONV_BN_RELU_GAIN} "
          f"(range {min(gains):.3f}-{max(gains):.3f}, {len(gains)} runs)")

    def error(keep, excess):
        theory.SPATIAL_KEEP, theory.SPATIAL_EXCESS = keep, excess
        total = 0.0
        for graph, x, grads, convs in runs:
            layers = flow.predict(graph, x.shape[0], (x,)).layers
            last = convs[-1]
            total += sum((math.log(layers[n] / layers[last]) - math.log(grads[n] / grads[last]))
                         ** 2 for n in convs)
        return total / sum(len(r[3]) for r in runs)

    grid = [(k / 100, e / 2) for k in range(20, 65, 5) for e in range(0, 21)]
    best = min(grid, key=lambda ke: error(*ke))
    print(f"SPATIAL_KEEP {best[0]}, SPATIAL_EXCESS {best[1]}: rms log error "
          f"{math.sqrt(error(*best)):.3f} (without the correction, excess 0: "
          f"{math.sqrt(error(best[0], 0.0)):.3f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--activations", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.calibrate:
        calibrate_mlp(seeds=3)
        calibrate(seeds=3)
        return
    print(f"MLP width {WIDTH}, batch {BATCH}; CNN width 32, 16x16 inputs, batch 32; ResNet "
          f"32x32 inputs, batch 32; {CLASSES} classes; torch {torch.__version__}\n")
    if not args.activations:
        table([5, 20] if args.quick else [5, 10, 20, 50, 100], seeds=1 if args.quick else 3)
        chain_table(seeds=2 if args.quick else 6)
    # 8 seeds: at width 256 and depth 50 single unnormalised stacks scatter over 16x (finite width)
    activation_table([5, 20] if args.quick else [5, 10, 20, 50], seeds=1 if args.quick else 8)


if __name__ == "__main__":
    main()
