"""Speed and scale of static linting (targets in brackets).

    python -m bench.benchmarks.speed [--repeats 5] [--depths 10,100,1000,10000]

(a) `bnlint --no-probe` on a ResNet-50 file against the floor measured in the same run:
    `python -c` that imports torch, builds the model and runs torch.fx.symbolic_trace [<= 1.25x],
    twice: at the input bnlint infers for it (224 px, issue 10), and at the 16x3x32x32 input it
    was linted at when the target was set (``--input-shape``: the pipeline's own cost, apart
    from the forwards at 224 px that the inferred input adds: the size search's and the static
    pass's on 8 examples, BNL403's minimum). Each lint is a cache miss (a fresh ``--cache-dir``
    per run, as for a file changed since its last lint). Both commands run with bytecode
    caching on, as on a user's machine (PYTHONDONTWRITEBYTECODE, which some sandboxes set, would
    make every run compile bnlint's sources while torch's come precompiled); the warm-up run
    writes the caches. Wall time and CPU time (user + sys of the whole process tree: the CLI,
    the fork server and its child, each reaped by its parent) are both reported: CPU time is
    the one to read when other jobs share the machine.
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


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=_env())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def resnet(repeats: int, *options: str) -> dict:
    """Medians of the lint's and the floor's wall and CPU seconds, and their ratios."""
    floor = [sys.executable, "-c", FLOOR]
    with tempfile.TemporaryDirectory() as tmp:
        def lint(run: int) -> list[str]:
            return [sys.executable, "-m", "bnlint", str(RESNET), "--no-probe",
                    "--cache-dir", str(Path(tmp) / str(run)), *options]
        _timed(lint(-1)), _timed(floor)  # warm the file and bytecode caches
        runs: dict[str, list[tuple[float, float]]] = {"lint": [], "floor": []}
        for i in range(repeats):
            runs["lint"].append(_timed(lint(i)))
            runs["floor"].append(_timed(floor))
    out = {f"{k}_{what}": statistics.median(r[j] for r in v)
           for k, v in runs.items() for j, what in enumerate(("wall", "cpu"))}
    return {**out, "ratio_wall": out["lint_wall"] / out["floor_wall"],
            "ratio_cpu": out["lint_cpu"] / out["floor_cpu"]}


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
                               "--no-cache", "--format", "json"], cwd=ROOT, capture_output=True,
                              text=True)
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
    r224, r32 = resnet(args.repeats), resnet(args.repeats, "--input-shape", "16,3,32,32")
    d = depths([int(x) for x in args.depths.split(",")], args.repeats)
    print("| measurement | value | target |\n| --- | --- | --- |")
    for label, r in (("at the input it infers (224 px)", r224),
                     ("at `--input-shape 16,3,32,32` (the target's input)", r32)):
        print(f"| (a) ResNet-50 `bnlint --no-probe` {label}: lint / floor, wall, median of "
              f"{args.repeats} | {r['lint_wall']:.2f} s / {r['floor_wall']:.2f} s = "
              f"{r['ratio_wall']:.2f}x | <= 1.25x |")
        print(f"| (a) same, CPU time of the process tree | {r['lint_cpu']:.2f} s / "
              f"{r['floor_cpu']:.2f} s = {r['ratio_cpu']:.2f}x | |")
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
