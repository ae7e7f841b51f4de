"""Probe overhead: time per training step and peak memory of the probe's instrumented step
versus a bare forward/backward/SGD step of the same model on the same device.

    python bench/probe_overhead.py [--device cpu|cuda] [--steps 20] [--repeats 3]

Each (model, mode) pair runs in a fresh child process so that peak-memory readings do not mix:
on CPU the peak resident set (VmHWM, reset through /proc/self/clear_refs) above the level
after warm-up; on CUDA torch.cuda.max_memory_allocated above the level after warm-up. Targets
(issue 4): probe step time <= 1.5x bare, peak step memory <= 1.2x bare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

MODELS = {
    "resnet20 (CIFAR ResNet, batch 64, 3x32x32)": ("resnet_cifar", "resnet20", (64, 3, 32, 32)),
    "MLP 8x1024 BN-ReLU (batch 256)": (None, "mlp", (256, 1024)),
}


def _mlp():
    from torch import nn
    layers = []
    for _ in range(8):
        layers += [nn.Linear(1024, 1024, bias=False), nn.BatchNorm1d(1024), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(1024, 10))


def _rss_peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def _rss_now_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def child(name: str, mode: str, device: str, steps: int) -> dict:
    """Run ``steps`` steps of one mode; return seconds per step and peak step memory (MiB)."""
    import torch
    import torch.nn.functional as F

    from bnlint.graph import build
    from bnlint.probing import ProbeOptions, _Run, _optimizer

    torch.manual_seed(0)
    module, factory, shape = MODELS[name]
    model = getattr(__import__(module), factory)() if module else _mlp()
    x = torch.randn(shape)
    dev = torch.device(device)
    if mode == "bare":
        model = model.to(dev).train()
        xs = x.to(dev)
        labels = torch.randint(0, 10, (shape[0],), device=dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xs), labels).backward()
            opt.step()
    else:
        graph = build(model, (x,))
        run = _Run(graph, (x,), None, ProbeOptions(device=device), dev, shape[0])
        opt, _ = _optimizer(None, [p for p in run.model.parameters() if p.requires_grad])

        def step():
            run.measure(opt)
            opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):  # warm-up: allocator caches, optimizer state
        step()
    sync()
    if dev.type == "cuda":
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _rss_now_kib() * 1024
        Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else _rss_peak_kib() * 1024
    return {"seconds": seconds, "peak_mib": (peak - base) / 2**20}


def measure(name: str, mode: str, device: str, steps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", name, mode, device, str(steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, mode, device, steps = args.child
        print(json.dumps(child(name, mode, device, int(steps))))
        return
    import torch
    print(f"# probe overhead on {args.device} (torch {torch.__version__}, "
          f"{os.cpu_count()} CPU cores), {args.steps} steps, median of {args.repeats} runs")
    print("| model | bare s/step | probe s/step | time ratio | bare peak MiB | probe peak MiB "
          "| memory ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in MODELS:
        runs = {mode: [measure(name, mode, args.device, args.steps)
                       for _ in range(args.repeats)] for mode in ("bare", "probe")}
        med = {mode: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "peak_mib")}
               for mode, rs in runs.items()}
        b, p = med["bare"], med["probe"]
        print(f"| {name} | {b['seconds']:.4f} | {p['seconds']:.4f} | "
              f"{p['seconds'] / b['seconds']:.2f}x | {b['peak_mib']:.1f} | {p['peak_mib']:.1f} | "
              f"{p['peak_mib'] / b['peak_mib']:.2f}x |")


if __name__ == "__main__":
    main()
