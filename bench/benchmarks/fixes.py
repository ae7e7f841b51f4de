"""Source fixes in linear time: the CLI's wall time on one file with N fixable findings.

    python -m bench.benchmarks.fixes [--sizes 20,50,200] [--repeats 1]

The file defines N small models (Linear with a bias -> BatchNorm -> ReLU -> Linear, each of
its own width, so none is a repeat of another), each with one fixable finding (BNL102, the
bias before BatchNorm). Columns: `bnlint FILE --no-probe --format json` (every finding's fix
rendered as a diff) and `bnlint FILE --no-probe --diff` (the fixes merged into one patch,
which a child process imports and builds before it is printed). The file is parsed with
libcst once per run, so the time per finding should stay about flat as N grows.
Wall-clock medians; this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = '''

class Net{i}(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, {width})
        self.bn = nn.BatchNorm1d({width})
        self.head = nn.Linear({width}, 2)

    def forward(self, x):
        return self.head(self.bn(self.fc(x)).relu())
'''


def model_file(n: int) -> str:
    """A file of ``n`` models, each with one fixable finding."""
    return "import torch.nn as nn\n" + "".join(MODEL.format(i=i, width=i + 2) for i in range(n))


def _run(path: Path, *options: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bnlint", str(path), "--no-probe", *options],
                          cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - start, proc


def measure(n: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"models_{n}.py"
        path.write_text(model_file(n))
        lint, diff, fixable, hunks = [], [], 0, 0
        for _ in range(repeats):
            seconds, proc = _run(path, "--format", "json")
            lint.append(seconds)
            report = json.loads(proc.stdout)
            fixable = sum(1 for m in report["models"] for f in m["findings"]
                          if f["fix"] and f["fix"]["diff"])
            seconds, proc = _run(path, "--diff")
            diff.append(seconds)
            hunks = proc.stdout.count("\n+    ") if proc.returncode == 1 else -1
    return {"lint": statistics.median(lint), "diff": statistics.median(diff),
            "fixable": fixable, "patched": hunks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,50,200")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    import torch
    print(f"# bnlint source fixes (torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})\n")
    print("| models (fixable findings, lines patched) | `--no-probe` | per finding "
          "| `--no-probe --diff` | per finding |\n| --- | --- | --- | --- | --- |")
    for n in (int(x) for x in args.sizes.split(",")):
        r = measure(n, args.repeats)
        print(f"| {n} ({r['fixable']}, {r['patched']}) | {r['lint']:.1f} s | "
              f"{1000 * r['lint'] / n:.0f} ms | {r['diff']:.1f} s | "
              f"{1000 * r['diff'] / n:.0f} ms |")


if __name__ == "__main__":
    main()
