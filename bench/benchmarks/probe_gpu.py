"""The probe's CUDA and NCCL paths, for a machine with a GPU (not run in CI):

    python -m bench.benchmarks.probe_gpu [--device cuda] [--nproc N]

1. In process: probes a ResNet-20 and a 30-block BN-ReLU MLP on the device and on cpu with the
   same seed and batch, and prints per model and device: the device the probe reports,
   seconds, first/last gradient ratio at init, dead fraction, lr ceiling, and the largest
   relative difference between the two devices' per-layer weight-gradient norms at init
   (float32 kernels differ, so expect ~1e-3, not 0).
2. The CLI: `bnlint examples/resnet_cifar.py --device D` in one process, and the probe across
   ranks, `--nproc N --device D` (NCCL on cuda, one GPU per rank, so N defaults to the number
   of GPUs; gloo on cpu), and prints both probes' numbers and their largest relative
   difference per layer.

`--device cpu` runs the same steps with gloo in place of NCCL: a check of the script itself on a
machine without a GPU, not a measurement of the GPU paths.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from bnlint.api import probe
from bnlint.measurement import ProbeResult

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = "examples/resnet_cifar.py"


def models() -> dict[str, tuple[nn.Module, torch.Tensor]]:
    from examples import resnet_cifar
    torch.manual_seed(0)
    mlp = nn.Sequential(*[m for _ in range(30)
                          for m in (nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU())])
    return {"resnet20": (resnet_cifar.resnet20(), torch.randn(64, 3, 32, 32)),
            "BN-ReLU MLP x30": (mlp, torch.randn(64, 256))}


def max_relative_difference(a: dict[str, float | None], b: dict[str, float | None]) -> float:
    """The largest |a - b| / |b| over the keys both hold a nonzero number for."""
    return max((abs(a[k] - v) / abs(v) for k, v in b.items() if v and a.get(k) is not None),
               default=0.0)


def in_process(device: str) -> None:
    print("| model | device | seconds | grad ratio | dead | lr ceiling | max rel. diff vs cpu |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (model, x) in models().items():
        runs: dict[str, ProbeResult] = {dev: probe(model, x, device=dev, steps=20, budget=60)
                                        for dev in dict.fromkeys(("cpu", device))}
        cpu = {s.key: s.init.get("weight_grad") for s in runs["cpu"].layers}
        for r in runs.values():
            diff = max_relative_difference({s.key: s.init.get("weight_grad") for s in r.layers},
                                           cpu)
            ceiling = 2.0 / r.lr_ceiling.lambda_max if r.lr_ceiling else float("nan")
            print(f"| {name} | {r.device} | {r.seconds:.2f} | {r.grad_ratio:.4g} | "
                  f"{r.dead_fraction or 0:.3f} | {ceiling:.3g} | {diff:.2e} |")


def cli_probe(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bnlint", EXAMPLE, "--format", "json", *args],
                          cwd=ROOT, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        sys.exit(f"bnlint {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)["models"][0]["probe"]


def across_ranks(device: str, nproc: int) -> None:
    backend = "nccl" if device == "cuda" else "gloo"
    one = cli_probe("--device", device)
    ranked = cli_probe("--device", device, "--nproc", str(nproc))
    diff = max_relative_difference(
        {s["key"]: s["init"].get("weight_grad") for s in ranked["layers"]},
        {s["key"]: s["init"].get("weight_grad") for s in one["layers"]})
    print(f"\n| bnlint {EXAMPLE} | device | ranks | seconds | grad ratio | lambda_max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, p in (("one process", one), (f"--nproc {nproc} ({backend})", ranked)):
        lam = p["lr_ceiling"]["lambda_max"] if p["lr_ceiling"] else float("nan")
        print(f"| {label} | {p['device']} | {p['ranks']} | {p['seconds']:.2f} | "
              f"{p['grad_ratio']:.6g} | {lam:.6g} |")
    print(f"\nlargest relative difference of a layer's weight-gradient norm at init: {diff:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--nproc", type=int, default=None,
                        help="ranks for the probe across ranks (default: the GPUs, or 2 on cpu)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device here: this script exercises the probe's cuda and NCCL paths "
                 "(--device cpu checks the script itself)")
    nproc = args.nproc or (torch.cuda.device_count() if args.device == "cuda" else 2)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu only"
    print(f"# probe on {name} vs cpu (torch {torch.__version__})\n")
    in_process(args.device)
    across_ranks(args.device, nproc)


if __name__ == "__main__":
    main()
