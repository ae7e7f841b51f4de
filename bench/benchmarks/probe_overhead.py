"""Probe overhead: time per training step and peak memory of the probe's instrumented step
versus a bare forward/backward/SGD step of the same model on the same device; the probe both
as the CLI runs it (training the worker's own throwaway model) and as the Python API does (a
copy, so the caller's model stays untouched).

    python -m bench.benchmarks.probe_overhead [--device cpu|cuda] [--steps 20] [--repeats 3]

Each (model, mode) pair runs in a fresh child process so that peak-memory readings do not mix:
on CPU the peak resident set (VmHWM, reset through /proc/self/clear_refs) above the level once
the model exists, with glibc told to serve every allocation of 64 KiB or more by mmap
(MALLOC_MMAP_THRESHOLD_) so that freed tensors leave the resident set at once (timing runs
without it); on CUDA torch.cuda.max_memory_allocated above the same level. Memory counts the
optimizer state, gradients, activations and, for the probe, its copy of the model.
Targets: probe step time <= 1.5x bare, peak step memory <= 1.2x bare.
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

ROOT = Path(__file__).resolve().parents[2]

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
    """One mode on one model: seconds per step (after 3 warm-up steps), and the peak memory of
    training above the level reached once the model and its inputs exist, so that the
    optimizer state, gradients, activations and (for the probe) its copy of the model count."""
    import torch
    import torch.nn.functional as F

    from bnlint.model.build import build
    from bnlint.probing.run import ProbeOptions, _optimizer, _Run

    torch.manual_seed(0)
    module, factory, shape = MODELS[name]
    model = getattr(__import__(module), factory)() if module else _mlp()
    dev = torch.device(device)
    x = torch.randn(shape)
    model = model.to(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _rss_now_kib() * 1024
        Path("/proc/self/clear_refs").write_text("5")
    if mode == "bare":
        model.train()
        xs = x.to(dev)
        labels = torch.randint(0, 10, (shape[0],), device=dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xs), labels).backward()
            opt.step()
    else:
        graph = build(model, (x.to(dev),))
        options = ProbeOptions(device=device, in_place=mode == "probe")
        run = _Run(graph, (x,), None, options, dev, shape[0])
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
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else _rss_peak_kib() * 1024
    return {"seconds": seconds, "peak_mib": (peak - base) / 2**20}


def measure(name: str, mode: str, device: str, steps: int) -> dict:
    """Time from a plain child; memory from one where glibc serves allocations of 64 KiB or
    more by mmap, so that the resident set follows live tensors (no allocator cache)."""
    def run(env: dict) -> dict:
        out = subprocess.run([sys.executable, "-m", __spec__.name, "--child", name, mode,
                              device, str(steps)], capture_output=True, text=True, check=True,
                             env=env, cwd=ROOT)
        return json.loads(out.stdout.strip().splitlines()[-1])

    timed = run(dict(os.environ))
    memory = run({**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
    return {"seconds": timed["seconds"], "peak_mib": memory["peak_mib"]}


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
    print("| model | probe | bare s/step | probe s/step | time ratio | bare peak MiB "
          "| probe peak MiB | memory ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    labels = {"probe": "in place (the CLI)", "probe-copy": "on a copy (Python API)"}
    for name in MODELS:
        runs = {mode: [measure(name, mode, args.device, args.steps)
                       for _ in range(args.repeats)] for mode in ("bare", *labels)}
        med = {mode: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "peak_mib")}
               for mode, rs in runs.items()}
        b = med["bare"]
        for mode, label in labels.items():
            p = med[mode]
            print(f"| {name} | {label} | {b['seconds']:.4f} | {p['seconds']:.4f} | "
                  f"{p['seconds'] / b['seconds']:.2f}x | {b['peak_mib']:.1f} | "
                  f"{p['peak_mib']:.1f} | {p['peak_mib'] / b['peak_mib']:.2f}x |")


if __name__ == "__main__":
    main()
