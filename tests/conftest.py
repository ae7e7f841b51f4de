"""Shared helpers: run the CLI as a user would, and write model files to a temp folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

pytest_plugins = ["pytester"]  # tests/test_pytest_plugin.py runs pytest on its own files

# One intra-op thread, here and in the CLI processes the tests start: these models are small,
# and spare threads only spin (and slow everything down) when the machine is busy.
torch.set_num_threads(1)
# Hugging Face models are built from configs; offline mode makes sure nothing is downloaded.
# The CLI runs without its results cache (each test lints afresh, and no .bnlint_cache is left
# in the repository), also where a test starts bnlint with an environment of its own;
# tests/test_cache.py turns it on.
os.environ["BNLINT_NO_CACHE"] = "1"
CLI_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_cli(*args: str, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bnlint", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout, env=CLI_ENV)


def line_of(path: Path, snippet: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing ``snippet`` (so tests never hard-code lines)."""
    hits = [i for i, text in enumerate(path.read_text().splitlines(), 1) if snippet in text]
    assert len(hits) >= occurrence, f"{snippet!r} not found {occurrence}x in {path}"
    return hits[occurrence - 1]


def readme_snippet(heading: str, lang: str) -> str:
    """The first ```lang block in the README section titled ``heading`` (## to ####), so that a
    test runs the code the README shows and the two cannot drift apart."""
    parts = re.split(r"^(#{2,4} .*)$", (ROOT / "README.md").read_text(), flags=re.M)
    for title, body in zip(parts[1::2], parts[2::2]):
        block = re.search(rf"^```{lang}\n(.*?)^```", body, re.M | re.S)
        if title.lstrip("#").strip() == heading and block:
            return block.group(1)
    raise AssertionError(f"README has no {lang} block in a section titled {heading!r}")


@pytest.fixture
def write_model(tmp_path):
    """Write a model file (dedented) into a temp folder and return its path."""
    def write(source: str, name: str = "model.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source).lstrip())
        return path
    return write


@pytest.fixture(scope="session")
def examples_json():
    """`bnlint examples/ --format json --no-probe` (the static findings), run once."""
    proc = run_cli("examples/", "--format", "json", "--no-probe")
    assert proc.returncode == 1, proc.stderr
    return json.loads(proc.stdout)
