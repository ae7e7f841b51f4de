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


def test_realworld_bench_on_a_tiny_corpus(tmp_path):
    """bench/studies/realworld.py --quick on three small repositories: a package file with a
    relative import, a file that writes a marker when imported and has a factory, and a file
    that imports a package that does not exist. Checked: what the bench measures itself
    (importability, the marker as the import's side effect, the factory call seen by the
    tracer, a function the model's traced forward calls not counted as bnlint's, the corpus left
    unchanged), not bnlint's verdicts, which issue 10 changes."""
    corpus = tmp_path / "corpus"
    files = {
        "repo_a/pkg/__init__.py": "",
        "repo_a/pkg/consts.py": "WIDTH = 8\n",
        "repo_a/pkg/net.py": "from torch import nn\n\nfrom .consts import WIDTH\n\n\n"
                             "class Net(nn.Module):\n    def __init__(self):\n"
                             "        super().__init__()\n        self.fc = nn.Linear(WIDTH, 2)\n\n"
                             "    def forward(self, x):\n        return self.fc(x)\n",
        "repo_b/side.py": "import torch\nfrom torch import nn\n\n"
                          "open('imported.marker', 'w').close()\n\n\n"
                          "def shift(x):\n    return x + 1\n\n\ntorch.fx.wrap('shift')\n\n\n"
                          "class Shift(nn.Module):\n    def forward(self, x):\n"
                          "        return shift(x)\n\n\n"
                          "def model():\n"
                          "    return nn.Sequential(nn.Linear(4, 4), Shift(), nn.ReLU())\n",
        "repo_c/missing.py": "import torch\nimport not_a_module_bnlint_test  # noqa: F401\n",
    }
    for rel, text in files.items():
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        (corpus / rel).write_text(text)
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "bench.studies.realworld", "--corpus",
                           str(corpus), "--quick", "--json", str(out)], cwd=ROOT, env=CLI_ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| --- |" in proc.stdout
    results = {r["label"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"repo_a/pkg/net.py", "repo_b/side.py", "repo_c/missing.py"}
    assert results["repo_a/pkg/net.py"]["importable"]
    assert not results["repo_c/missing.py"]["importable"]
    side = results["repo_b/side.py"]
    assert side["import_effects"] == ["+repo_b/imported.marker"]
    assert "+repo_b/imported.marker" not in side["lint_effects"]
    assert side["traced"]
    assert {"function": "model", "verdict": "factory"}.items() <= next(
        c for c in side["calls"] if c["function"] == "model").items()
    # shift() runs inside the model's forward (an fx.wrap leaf the traced graph calls): not a
    # call bnlint made, so not counted as one
    assert [c["function"] for c in side["calls"]] == ["model"]
    assert sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*")
                  if p.is_file()) == sorted(files)
    again = subprocess.run([sys.executable, "-m", "bench.studies.realworld", "--tables", str(out)],
                           cwd=ROOT, env=CLI_ENV, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "| repo_b/side.py |" in again.stdout


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
