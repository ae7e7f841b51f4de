"""The probe's CUDA path, for a machine with a GPU (not run in CI):

    python -m bench.benchmarks.probe_gpu

Probes a ResNet-20 and a 30-block BN-ReLU MLP on cuda and on cpu with the same seed and batch,
and prints, per model and device: the device the probe reports, seconds, first/last gradient
ratio at init, dead fraction, lr ceiling, and the largest relative difference between the two
devices' per-layer weight-gradient norms at init (float32 kernels differ, so expect ~1e-3,
not 0). It also runs `bnlint --device cuda` on examples/resnet_cifar.py and checks it exits
0 or 1 with the probe on cuda.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from bnlint.api import probe

ROOT = Path(__file__).resolve().parents[2]


def models() -> dict[str, tuple[nn.Module, torch.Tensor]]:
    from examples import resnet_cifar
    torch.manual_seed(0)
    mlp = nn.Sequential(*[m for _ in range(30)
                          for m in (nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU())])
    return {"resnet20": (resnet_cifar.resnet20(), torch.randn(64, 3, 32, 32)),
            "BN-ReLU MLP x30": (mlp, torch.randn(64, 256))}


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("no CUDA device here: this script exercises the probe's cuda path")
    print(f"# probe on {torch.cuda.get_device_name()} vs cpu (torch {torch.__version__})\n")
    print("| model | device | seconds | grad ratio | dead | lr ceiling | max rel. diff vs cpu |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (model, x) in models().items():
        runs = {dev: probe(model, x, device=dev, steps=20, budget=60) for dev in ("cpu", "cuda")}
        cpu = {l["key"]: l["init"].get("weight_grad") for l in runs["cpu"].layers}
        for r in runs.values():
            diffs = [abs(l["init"]["weight_grad"] - cpu[l["key"]]) / cpu[l["key"]]
                     for l in r.layers if l["init"].get("weight_grad") and cpu.get(l["key"])]
            ceiling = r.lr_ceiling["sgd"] if r.lr_ceiling else float("nan")
            print(f"| {name} | {r.device} | {r.seconds:.2f} | {r.grad_ratio:.4g} | "
                  f"{r.dead_fraction or 0:.3f} | {ceiling:.3g} | {max(diffs, default=0):.2e} |")
    proc = subprocess.run([sys.executable, "-m", "bnlint", "examples/resnet_cifar.py",
                           "--device", "cuda", "--format", "json"], cwd=ROOT,
                          capture_output=True, text=True)
    report = json.loads(proc.stdout)
    print(f"\nbnlint --device cuda examples/resnet_cifar.py: exit {proc.returncode}, probe on "
          f"{report['models'][0]['probe']['device']}")


if __name__ == "__main__":
    main()
