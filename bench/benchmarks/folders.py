"""Linting a folder of CIFAR/ImageNet-style model files (issue 11).

    python -m bench.benchmarks.folders [--corpus /work/corpus] [--before TREE] [--probe-files N]
                                       [--no-probe-only] [--repeat N]

The folder: model files of mixed size written here (plain CNNs, CIFAR ResNets of depth 8-110,
VGG, an ImageNet-size ResNet, MLPs), plus, with --corpus, public CIFAR model files read where
they are (kuangliu/pytorch-cifar, akamaster/pytorch_resnet_cifar10, huyvnphan/PyTorch_CIFAR10,
under the corpus folder; nothing fetched is copied into this repository).
Rows: `--no-probe` wall time per file for TREE (a bnlint source tree, e.g. `git archive main`
unpacked: the before) and this tree with -j 1 and -j 2; the default run (probe on) per model,
and whether its report (findings and probe numbers, wall-clock seconds left out) is identical
in a second run with a CPU-bound process beside it; and both again with the results cache: a
first run that fills an empty cache, then a second one that finds every file unchanged (and
whether its report is the first's); --no-probe-only: the `--no-probe` rows alone. The other
runs lint without the cache (BNLINT_NO_CACHE=1). --repeat N: the `--no-probe` runs without the
cache N times each, taken in turn (TREE, -j 1, -j 2, TREE, ...) so that a drift in the
machine's speed reaches them alike; their rows give the median wall time and CPU seconds, the
range of the wall times, and whether the N reports were identical. Each row gives the CPU
seconds of the whole process tree beside the wall time, and the load average: on a shared
machine the times are only as good as it is quiet, the CPU seconds less so.
This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS_FILES = [
    *(f"kuangliu__pytorch-cifar/models/{n}.py" for n in (
        "lenet", "vgg", "resnet", "preact_resnet", "googlenet", "densenet", "resnext",
        "mobilenet", "mobilenetv2", "shufflenetv2", "senet", "regnet", "dla_simple", "dpn",
        "efficientnet", "pnasnet")),
    "akamaster__pytorch_resnet_cifar10/resnet.py",
    *(f"huyvnphan__PyTorch_CIFAR10/cifar10_models/{n}.py" for n in (
        "vgg", "resnet", "densenet", "mobilenetv2", "googlenet", "inception")),
]

CNN = '''
import torch.nn as nn


def model():
    """A plain CNN for {size}x{size} images, {blocks} conv blocks of width {width}."""
    layers, channels = [], 3
    for i in range({blocks}):
        layers += [nn.Conv2d(channels, {width} * 2 ** (i // 2), 3, padding=1, bias=False),
                   nn.BatchNorm2d({width} * 2 ** (i // 2)), nn.ReLU()]
        channels = {width} * 2 ** (i // 2)
        if i % 2:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, {classes}))


EXAMPLE_INPUTS_SHAPE = (8, 3, {size}, {size})


def example_inputs():
    import torch
    return torch.randn(*EXAMPLE_INPUTS_SHAPE)
'''

RESNET = '''
import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.short(x))


class ResNet(nn.Module):
    def __init__(self, n={n}, width={width}, classes={classes}):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, {stem}, {stride}, {stem} // 2, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        blocks, cin = [], width
        for stage in range(3):
            for i in range(n):
                cout = width * 2 ** stage
                blocks.append(Block(cin, cout, 2 if stage and not i else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


def example_inputs():
    return torch.randn(8, 3, {size}, {size})
'''

MLP = '''
import torch
import torch.nn as nn


def model():
    layers, width = [nn.Flatten()], 784
    for _ in range({depth}):
        layers += [nn.Linear(width, {width}), nn.BatchNorm1d({width}), nn.ReLU()]
        width = {width}
    return nn.Sequential(*layers, nn.Linear(width, 10))


def example_inputs():
    return torch.randn(16, 1, 28, 28)
'''


def own_models(folder: Path) -> list[Path]:
    """Model files of mixed size, written by this benchmark."""
    specs = {}
    for blocks, width, size in ((2, 16, 32), (4, 32, 32), (6, 32, 32), (8, 64, 32),
                                (4, 32, 64), (6, 16, 96)):
        specs[f"cnn_{blocks}x{width}_{size}px.py"] = CNN.format(
            blocks=blocks, width=width, size=size, classes=10 if size == 32 else 100)
    for n in (1, 2, 3, 5, 9, 18):
        specs[f"resnet{6 * n + 2}_cifar.py"] = RESNET.format(
            n=n, width=16, classes=10, stem=3, stride=1, size=32)
    specs["resnet20_imagenet.py"] = RESNET.format(n=3, width=64, classes=1000, stem=7,
                                                  stride=2, size=224)
    for depth, width in ((3, 256), (10, 512)):
        specs[f"mlp{depth}x{width}.py"] = MLP.format(depth=depth, width=width)
    paths = []
    for name, source in specs.items():
        (folder / name).write_text(source)
        paths.append(folder / name)
    return paths


def _cpu() -> float:
    """CPU seconds (user + system) of the children waited for so far, and of theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(tree: Path, paths: list[Path], *args: str,
         cache: Path | None = None) -> tuple[float, str, list[float], float]:
    """Wall seconds of one `python -m bnlint` on ``paths`` with bnlint from ``tree`` (with
    its results cache in ``cache``, else without one), its stdout, the load average before
    and after, and the CPU seconds of its process tree."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tree)}
    if cache:
        env.pop("BNLINT_NO_CACHE", None)
        env["BNLINT_CACHE_DIR"] = str(cache)
    else:
        env["BNLINT_NO_CACHE"] = "1"
    load = [os.getloadavg()[0]]
    cpu = _cpu()
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bnlint", *map(str, paths), *args],
                          cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    cpu = _cpu() - cpu
    load.append(os.getloadavg()[0])
    if proc.returncode not in (0, 1, 2) or "Traceback" in proc.stderr:
        raise SystemExit(f"bnlint failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, proc.stdout, load, cpu


def _without_seconds(value):
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def _no_probe_row(label: str, seconds: float, out: str, cpu: float, load: list[float],
                  files: int) -> None:
    models = len(json.loads(out)["models"])
    print(f"| `--no-probe`, {label} | {seconds:.1f} s | {seconds / files:.2f} s | "
          f"{seconds / max(models, 1):.2f} s ({models} models) | {cpu / files:.2f} s | "
          f"{_load(load)} |")


def _load(load: list[float]) -> str:
    return f"{load[0]:.1f} / {load[1]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, help="folder of public model code")
    parser.add_argument("--before", type=Path, help="a bnlint source tree to compare with")
    parser.add_argument("--probe-files", type=int, default=0,
                        help="probe only the first N files (0: all)")
    parser.add_argument("--no-probe-only", action="store_true",
                        help="only the `--no-probe` rows")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the uncached `--no-probe` rows N times each (medians)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = own_models(Path(tmp))
        if args.corpus:
            paths += [args.corpus / f for f in CORPUS_FILES if (args.corpus / f).exists()]
        print(f"# Folder linting ({len(paths)} files, {os.cpu_count()} CPUs, "
              f"{time.strftime('%Y-%m-%d')})\n")
        print("| run | wall | per file | per model | CPU per file | load avg before / after |\n"
              "| --- | --- | --- | --- | --- | --- |")
        runs = [("after, -j 1", ROOT, ("-j", "1")), ("after, -j 2", ROOT, ("-j", "2"))]
        if args.before:
            runs.insert(0, (f"before ({args.before})", args.before, ()))
        timed: dict[str, list] = {label: [] for label, _, _ in runs}
        for _ in range(max(1, args.repeat)):
            for label, tree, extra in runs:
                timed[label].append(_run(tree, paths, "--no-probe", "--format", "json", *extra))
        for label, results in timed.items():
            walls = sorted(r[0] for r in results)
            seconds, out = statistics.median(walls), results[0][1]
            load = [results[0][2][0], results[-1][2][1]]
            cpu = statistics.median(r[3] for r in results)
            spread = "" if len(results) == 1 else (
                f" (median of {len(results)}: {walls[0]:.1f}-{walls[-1]:.1f} s; reports "
                f"{'identical' if all(r[1] == out for r in results) else 'differ'})")
            _no_probe_row(label + spread, seconds, out, cpu, load, len(paths))
        caches = Path(tmp) / "caches"
        outputs = []
        for label in ("cache filled", "all from the cache"):
            seconds, out, load, cpu = _run(ROOT, paths, "--no-probe", "--format", "json",
                                           cache=caches / "no-probe")
            outputs.append(out)
            _no_probe_row(label, seconds, out, cpu, load, len(paths))
        print(f"\nReports served from the cache identical to the run that filled it: "
              f"`--no-probe` {'yes' if outputs[-1] == outputs[-2] else 'no'}.")
        if args.no_probe_only:
            return
        probed = paths[:args.probe_files] if args.probe_files else paths
        quiet = _run(ROOT, probed, "--format", "json", cache=caches / "probe")
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            busy = _run(ROOT, probed, "--format", "json")
        finally:
            hog.kill()
            hog.wait()  # reaped now: its CPU seconds count in no run's
        cached = _run(ROOT, probed, "--format", "json", cache=caches / "probe")
        reports = []
        print("\n| run | wall | per file | per model | CPU per file | load avg before / after |\n"
              "| --- | --- | --- | --- | --- | --- |")
        for label, (seconds, out, load, cpu) in (("quiet, cache filled", quiet),
                                                 ("beside a CPU hog", busy),
                                                 ("all from the cache", cached)):
            report = json.loads(out)
            reports.append(report)
            models = len(report["models"])
            print(f"| probe on (default), {label}, {len(probed)} files | {seconds:.1f} s | "
                  f"{seconds / len(probed):.2f} s | {seconds / max(models, 1):.2f} s "
                  f"({models} models) | {cpu / len(probed):.2f} s | {_load(load)} |")
        print(f"\nProbe reports served from the cache identical to the run that filled it: "
              f"{'yes' if cached[1] == quiet[1] else 'no'}.")
        same = _without_seconds(reports[0]) == _without_seconds(reports[1])
        cuts = [sum(1 for m in r["models"] if (m.get("probe") or {}).get("cut"))
                for r in reports]
        print(f"\nProbe reports identical (wall-clock seconds left out): "
              f"{'yes' if same else 'no'}; probes cut by --probe-budget: {cuts[0]} quiet, "
              f"{cuts[1]} beside the hog.")
        if not same:
            for a, b in zip(reports[0]["models"], reports[1]["models"]):
                if _without_seconds(a) != _without_seconds(b):
                    print(f"- differs: {a['path']} {a['name']}")


if __name__ == "__main__":
    main()
