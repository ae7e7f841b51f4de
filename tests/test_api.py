"""The Python API: bnlint.lint / probe / fix stay functions whatever bnlint imports, and
importing bnlint alone does not import torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
from conftest import run_cli

import bnlint
import bnlint.api
import bnlint.engine
import bnlint.probing.run


def test_api_names_are_functions_after_the_modules_load():
    assert all(callable(f) and type(f).__name__ == "function"
               for f in (bnlint.lint, bnlint.probe, bnlint.fix))


def test_importing_bnlint_does_not_import_torch():
    code = "import sys, bnlint, bnlint.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_targets_from_an_npy_file(write_model, tmp_path):
    path = write_model("""
        import torch.nn as nn
        model = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1), nn.ReLU())
    """)
    np.save(tmp_path / "y.npy", (1e-3 * np.sin(np.linspace(-3, 3, 64))).astype("float32"))
    proc = run_cli(path, "--no-probe", "--targets", tmp_path / "y.npy", "--select", "BNL40")
    assert proc.returncode == 1, proc.stderr
    assert "BNL401 error" in proc.stdout and "BNL402 warning" in proc.stdout


def test_lint_api_reports_findings_with_modules():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
    report = bnlint.lint(model, torch.randn(8, 4), config=bnlint.engine.Config(probe=False))
    assert {(f.code, f.module) for f in report.findings} >= {("BNL101", "1")}
