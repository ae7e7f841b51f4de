"""The floor plan holds: bnlint's stages import only downwards, in pipeline order (the
import-linter contract in pyproject.toml), and a backward import breaks the check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import ROOT

LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def _lint_imports(root) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT_IMPORTS, "--config", str(root / "pyproject.toml")], cwd=root,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_package_keeps_its_layers():
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "KEPT" in proc.stdout


def test_a_backward_import_breaks_the_layers(tmp_path):
    """The model graph importing the engine (a stage above it) is reported, with the line."""
    shutil.copytree(ROOT / "bnlint", tmp_path / "bnlint",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    graph = tmp_path / "bnlint" / "model" / "graph.py"
    graph.write_text(graph.read_text() + "\n\ndef _planted():\n    from ..engine import lint\n"
                     "    return lint\n")
    proc = _lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "bnlint.model is not allowed to import bnlint.engine" in proc.stdout
    assert "bnlint.model.graph -> bnlint.engine" in proc.stdout
