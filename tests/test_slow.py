"""Slow checks, kept out of the default run (`pytest -m slow` runs them): the default
`bnlint examples/` with the probe, and every benchmark script in its quick form, so that
they do not rot between the runs that fill bench/RESULTS.md."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import CLI_ENV, ROOT, run_cli

from bench.studies.realbugs.manifest import CASES

pytestmark = pytest.mark.slow


def test_examples_with_the_default_probe():
    proc = run_cli("examples/", "--format", "json", timeout=900)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    by_file = {}
    for model in report["models"]:
        assert model["probe"] is not None, model["notes"]
        by_file.setdefault(model["path"].split("/")[-1], []).extend(model["findings"])
    for clean in ("resnet_cifar.py", "densenet.py", "early_exit.py"):
        assert all(f["severity"] == "info" for f in by_file[clean]), by_file[clean]


@pytest.mark.parametrize("script, args", [
    ("benchmarks.speed", ["--repeats", "1", "--depths", "10,100"]),
    ("benchmarks.probe_overhead", ["--repeats", "1", "--steps", "3"]),
    ("benchmarks.probe_plan", ["--budget", "2"]),
    ("benchmarks.fixes", ["--sizes", "5"]),
    ("calibration.gradient_flow", ["--quick"]),
    ("calibration.papers", ["--quick"]),
    ("studies.lalc", ["--quick"]),
    ("studies.detection", ["--quick"]),
    ("studies.robustness", ["--n", "10"]),
])
def test_bench_script_runs_and_prints_a_table(script, args):
    proc = subprocess.run([sys.executable, "-m", f"bench.{script}", *args], cwd=ROOT, env=CLI_ENV,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| --- |" in proc.stdout or "|---|" in proc.stdout


def test_realbugs_quick_lints_the_quick_cases_and_prints_the_totals():
    proc = subprocess.run([sys.executable, "-m", "bench.studies.realbugs", "--quick"], cwd=ROOT,
                          env=CLI_ENV, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    quick = [case.name for case in CASES if case.quick]
    assert len(quick) == 3
    for name in quick:
        row = next(line for line in proc.stdout.splitlines() if line.startswith(f"| {name} |"))
        assert "bnlint error" not in row, row
    assert "| static only |" in proc.stdout and "| static + probe |" in proc.stdout
