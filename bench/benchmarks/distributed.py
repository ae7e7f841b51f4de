"""The probe across ranks on a model too large for one process (`bnlint --nproc`):

    python -m bench.benchmarks.distributed [--limit-gib 3] [--blocks 12] [--width 4096]

Writes a model file, a plain stack of ``--blocks`` Linear(width, width) -> BatchNorm1d -> ReLU
blocks (float32), and runs the CLI on it three times, each in a fresh process tree:

1. ``bnlint model.py`` under a per-process address-space limit (``RLIMIT_AS``, set in the CLI
   before it starts and inherited by every process it starts): the single-process probe,
   which holds the parameters, their gradients and the optimizer state (and the
   Hessian-vector products' vectors) in one process, fails;
2. ``bnlint model.py --nproc 4`` under the same per-process limit: each rank holds a quarter;
3. ``bnlint model.py`` without the limit, to measure what one process needs.

and a fourth time, ``bnlint --nproc 4`` on a model of one such block: the peak of a rank
there is the fixed overhead, what a rank holds besides its share of the model (torch, gloo,
bnlint, and what scales with one block rather than with the model: the unsharded parameters
and gradients of the FSDP unit being computed, one module at full size while it is
initialised, one parameter's random start for the Hessian). The target is a rank's peak at
most the single process's over 4 plus that overhead.

Every process of each run is sampled from /proc every 0.1 s: its peak resident memory
(VmHWM) and peak address space (VmPeak, what RLIMIT_AS bounds). The table gives the peak of
the one linting process (the worker) or of each rank, and the wall time of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

MODEL = '''
import torch
from torch import nn


def stack():
    return nn.Sequential(*[m for _ in range({blocks})
                           for m in (nn.Linear({width}, {width}), nn.BatchNorm1d({width}),
                                     nn.ReLU())])


def example_inputs():
    return torch.randn(16, {width})
'''

GIB = 1 << 30


def _status(pid: int) -> dict[str, int]:
    """VmHWM and VmPeak of a process, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmPeak"):
            found[key] = int(value.split()[0]) * 1024
    return found


def _role(pid: int) -> str | None:
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    if b"spawn_main" in cmdline:
        return "rank"
    if b"bnlint.isolation.server" in cmdline:  # the fork server and its children
        return "worker"
    return None


class Sampler(threading.Thread):
    """Peak memory of every process whose environment carries ``marker``, by pid."""

    def __init__(self, marker: str):
        super().__init__(daemon=True)
        self.marker, self.peaks, self.roles = marker.encode(), {}, {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                pid = int(entry.name)
                try:
                    if self.marker not in (entry / "environ").read_bytes():
                        continue
                    status, role = _status(pid), _role(pid)
                except OSError:
                    continue
                if role:
                    self.roles[pid] = role
                    peak = self.peaks.setdefault(pid, {"VmHWM": 0, "VmPeak": 0})
                    for key, value in status.items():
                        peak[key] = max(peak[key], value)


def run(model: Path, limit: int | None, nproc: int | None, budget: float) -> dict:
    """One CLI run: exit code, report, wall time and the peaks of its linting processes."""
    marker = f"BNLINT_BENCH={uuid.uuid4().hex}"
    name, value = marker.split("=")
    env = {**os.environ, "OMP_NUM_THREADS": "1", name: value}
    command = [sys.executable, "-m", "bnlint", str(model), "--format", "json", "--probe-steps",
               "2", "--probe-batch", "16", "--timeout", "1800", "--probe-budget", str(budget)]
    if nproc:
        command += ["--nproc", str(nproc)]

    def limited() -> None:
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    sampler = Sampler(marker)
    sampler.start()
    start = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, preexec_fn=limited)
    seconds = time.monotonic() - start
    sampler.stopping.set()
    sampler.join()
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    peaks = [(sampler.roles[pid], p) for pid, p in sorted(sampler.peaks.items())]
    return {"code": proc.returncode, "report": report, "seconds": seconds, "peaks": peaks,
            "stderr": proc.stderr}


def outcome(result: dict) -> str:
    """What the run ended with: its error, the probe's skip note, or the probe's device."""
    report = result["report"]
    if report.get("errors"):
        return "error: " + report["errors"][0]["message"][:110]
    for model in report.get("models", []):
        probe = model.get("probe")
        if probe is None:
            skipped = [n for n in model.get("notes", []) if n.startswith("probe skipped")]
            return (skipped or ["no probe"])[0][:120]
        ceiling = probe["lr_ceiling"]
        hessian = (f"lambda_max {ceiling['lambda_max']:.3g} after {ceiling['iterations']} "
                   "Hessian-vector products") if ceiling else next(
            (n for n in probe["notes"] if n.startswith("lr ceiling")), "")
        return f"probed: {probe['ranks']} rank(s), {probe['steps']} steps; {hessian}"
    return f"exit {result['code']}: {result['stderr'].strip().splitlines()[-1][:110]}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit-gib", type=float, default=3.0)
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--nproc", type=int, default=4)
    parser.add_argument("--budget", type=float, default=120.0, help="--probe-budget")
    args = parser.parse_args()
    limit = int(args.limit_gib * GIB)
    params = args.blocks * (args.width * args.width + 3 * args.width)
    with tempfile.TemporaryDirectory() as folder:
        model, block = Path(folder) / "model.py", Path(folder) / "block.py"
        model.write_text(textwrap.dedent(MODEL.format(blocks=args.blocks, width=args.width)))
        block.write_text(textwrap.dedent(MODEL.format(blocks=1, width=args.width)))
        runs = {"1 process, limited": run(model, limit, None, args.budget),
                f"{args.nproc} ranks, limited": run(model, limit, args.nproc, args.budget),
                "1 process, no limit": run(model, None, None, args.budget),
                f"{args.nproc} ranks, 1 block (overhead)": run(block, limit, args.nproc,
                                                                args.budget)}
    print(f"# The probe across ranks: {args.blocks} blocks of Linear({args.width}) -> BN -> "
          f"ReLU, {params / 1e6:.0f}M parameters ({params * 4 / GIB:.2f} GiB float32)\n")
    print(f"- per-process limit: RLIMIT_AS = {args.limit_gib:g} GiB; probe batch 16, 2 steps, "
          f"--probe-budget {args.budget:g}")
    print(f"- machine: {platform.machine()}, {os.cpu_count()} CPUs; torch "
          f"{__import__('torch').__version__}, Python {platform.python_version()}\n")
    print("| run | outcome | process | peak RSS (GiB) | peak address space (GiB) | wall (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, result in runs.items():
        for i, (role, peak) in enumerate(result["peaks"] or [("-", {"VmHWM": 0, "VmPeak": 0})]):
            print(f"| {name if i == 0 else ''} | {outcome(result) if i == 0 else ''} | {role} "
                  f"{i if role == 'rank' else ''} | {peak['VmHWM'] / GIB:.2f} | "
                  f"{peak['VmPeak'] / GIB:.2f} | {result['seconds']:.0f} |")
    single = max((p["VmHWM"] for _, p in runs["1 process, no limit"]["peaks"]), default=0)
    ranks = [p["VmHWM"] for role, p in runs[f"{args.nproc} ranks, limited"]["peaks"]
             if role == "rank"]
    overhead = max((p["VmHWM"] for role, p in
                    runs[f"{args.nproc} ranks, 1 block (overhead)"]["peaks"] if role == "rank"),
                   default=0)
    if single and ranks and overhead:
        target = single / args.nproc + overhead
        print(f"\nlargest rank {max(ranks) / GIB:.2f} GiB; target: single process / "
              f"{args.nproc} + overhead = {single / args.nproc / GIB:.2f} + "
              f"{overhead / GIB:.2f} = {target / GIB:.2f} GiB: "
              f"{'met' if max(ranks) <= target else 'NOT met'}")


if __name__ == "__main__":
    main()
