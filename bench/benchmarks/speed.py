"""Speed and scale of static linting (targets in brackets).

    python -m bench.benchmarks.speed [--repeats 5] [--depths 10,100,1000,10000]

(a) `bnlint --no-probe` on a ResNet-50 file against the floor measured in the same run:
    `python -c` that imports torch, builds the model and runs torch.fx.symbolic_trace [<= 1.25x],
    twice: at the input bnlint infers for it (224 px, issue 10), and at the 16x3x32x32 input it
    was linted at when the target was set (``--input-shape``: the pipeline's own cost, apart
    from the forward at 224 px that the inferred input adds);
(b) static lint time of plain Linear -> BatchNorm -> ReLU MLPs by depth, in process, and the
    slope of log time against log depth [<= 1.1];
(c) a 1.07-billion-parameter model built on the meta device, linted statically through the CLI:
    wall time and peak RSS of the whole process tree [< 10 s, < 2 GiB].
Wall-clock medians over interleaved repeats; this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESNET = ROOT / "bench" / "models" / "resnet50.py"
FLOOR = ("import torch, torch.fx; from bench.models import resnet50; "
         "torch.fx.symbolic_trace(resnet50.ResNet50())")
META_MODEL = '''
import torch
import torch.nn as nn


def billion():
    """16 x (Linear 8192 -> 8192, BatchNorm, ReLU) and a head: 1.07e9 parameters."""
    with torch.device("meta"):
        layers = []
        for _ in range(16):
            layers += [nn.Linear(8192, 8192, bias=False), nn.BatchNorm1d(8192), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(8192, 1000))


EXAMPLE_INPUTS = torch.empty(16, 8192, device="meta")
'''


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def resnet(repeats: int, *options: str) -> dict:
    lint = [sys.executable, "-m", "bnlint", str(RESNET), "--no-probe", *options]
    floor = [sys.executable, "-c", FLOOR]
    _timed(lint), _timed(floor)  # warm the file cache
    times = {"lint": [], "floor": []}
    for _ in range(repeats):
        times["lint"].append(_timed(lint))
        times["floor"].append(_timed(floor))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {**med, "ratio": med["lint"] / med["floor"]}


def depth_child(depth: int) -> float:
    """Seconds to lint (statically, in process) a plain BN-ReLU MLP of this depth."""
    import torch
    from torch import nn

    from bnlint.config import Config
    from bnlint.engine import lint
    from bnlint.model import sites

    torch.manual_seed(0)
    with sites.recording():
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(64, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU()]
        model = nn.Sequential(*layers, nn.Linear(64, 10))
    x = torch.randn(16, 64)
    lint(nn.Sequential(nn.Linear(4, 4)), torch.randn(4, 4), config=Config(probe=False))  # warm
    start = time.perf_counter()
    lint(model, x, config=Config(probe=False))
    return time.perf_counter() - start


def depths(values: list[int], repeats: int) -> dict[int, float]:
    out = {}
    for depth in values:
        runs = [float(subprocess.run([sys.executable, "-m", __spec__.name, "--depth-child",
                                      str(depth)], capture_output=True, text=True, check=True,
                                     cwd=ROOT).stdout.split()[-1])
                for _ in range(1 if depth >= 10000 else repeats)]
        out[depth] = statistics.median(runs)
    return out


def slope(times: dict[int, float], lowest: int) -> float:
    """Least-squares slope of log time against log depth (nan with fewer than 2 depths)."""
    pts = [(math.log(d), math.log(t)) for d, t in times.items() if d >= lowest]
    if len(pts) < 2:
        return math.nan
    mx, my = (sum(p[i] for p in pts) / len(pts) for i in (0, 1))
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def meta_child() -> dict:
    """Lint the billion-parameter meta model through the CLI; peak RSS over the tree."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "billion.py"
        path.write_text(META_MODEL)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "bnlint", str(path), "--no-probe",
                               "--format", "json"], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    report = json.loads(proc.stdout)
    params = 16 * 8192 * 8192 + 16 * 2 * 8192 + 8192 * 1000 + 1000
    codes = [f["code"] for f in report["models"][0]["findings"]]
    return {"seconds": seconds, "peak_gib": peak_kib / 2**20, "params": params,
            "exit": proc.returncode, "findings": codes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--depths", default="10,100,1000,10000")
    parser.add_argument("--depth-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--meta-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.depth_child:
        print(depth_child(args.depth_child))
        return
    if args.meta_child:
        print(json.dumps(meta_child()))
        return
    import torch
    print(f"# bnlint speed (torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})\n")
    meta = json.loads(subprocess.run([sys.executable, "-m", __spec__.name, "--meta-child"],
                                     capture_output=True, text=True, check=True,
                                     cwd=ROOT).stdout)
    r, r32 = resnet(args.repeats), resnet(args.repeats, "--input-shape", "16,3,32,32")
    d = depths([int(x) for x in args.depths.split(",")], args.repeats)
    print("| measurement | value | target |\n| --- | --- | --- |")
    print(f"| (a) ResNet-50 `bnlint --no-probe`, median of {args.repeats} | {r['lint']:.2f} s | |")
    print(f"| (a) floor: import torch + build + fx trace | {r['floor']:.2f} s | |")
    print(f"| (a) ratio | {r['ratio']:.2f}x | <= 1.25x |")
    print(f"| (a) ResNet-50 at `--input-shape 16,3,32,32`: lint / floor | {r32['lint']:.2f} s / "
          f"{r32['floor']:.2f} s = {r32['ratio']:.2f}x | <= 1.25x |")
    for depth, seconds in d.items():
        print(f"| (b) static lint, MLP depth {depth} | {seconds:.3f} s | |")
    print(f"| (b) slope of log time vs log depth, depths >= 100 | {slope(d, 100):.2f} | <= 1.1 |")
    print(f"| (b) same, all depths | {slope(d, 0):.2f} | |")
    print(f"| (c) meta model, {meta['params'] / 1e9:.2f}e9 parameters: wall time "
          f"(exit {meta['exit']}, {', '.join(meta['findings']) or 'no findings'}) | "
          f"{meta['seconds']:.2f} s | < 10 s |")
    print(f"| (c) peak RSS of the process tree | {meta['peak_gib']:.2f} GiB | < 2 GiB |")


if __name__ == "__main__":
    main()
