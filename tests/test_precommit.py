"""The pre-commit hooks, run by the real pre-commit in a temporary git repository: a staged
broken model fails ``bnlint``, a clean one passes, ``bnlint-fix`` rewrites the file; and the
README's configuration works as written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CLI_ENV, EXAMPLES, ROOT, readme_snippet

pytest.importorskip("pre_commit")
if shutil.which("git") is None:
    pytest.skip("pre-commit needs git", allow_module_level=True)

CLEAN = """
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x)
"""


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def _repo(path: Path) -> Path:
    path.mkdir()
    _git(path, "init", "-q")
    _git(path, "config", "user.email", "test@example.com")
    _git(path, "config", "user.name", "test")
    return path


@pytest.fixture
def env(tmp_path):
    """pre-commit with its cache in the test's folder, finding this environment's bnlint."""
    bin_dir = os.path.dirname(sys.executable)
    return {**CLI_ENV, "PRE_COMMIT_HOME": str(tmp_path / "cache"),
            "PATH": bin_dir + os.pathsep + CLI_ENV.get("PATH", "")}


@pytest.fixture
def hooks(tmp_path):
    """A hook repository holding this checkout's .pre-commit-hooks.yaml (language: system hooks
    need nothing else), committed so pre-commit can clone it."""
    repo = _repo(tmp_path / "hooks")
    shutil.copy(ROOT / ".pre-commit-hooks.yaml", repo)
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "hooks")
    return repo


def _pre_commit(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pre_commit", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)


def test_try_repo_fails_a_broken_model_passes_a_clean_one_and_fixes(tmp_path, hooks, env):
    project = _repo(tmp_path / "project")
    shutil.copy(EXAMPLES / "vgg_bn.py", project / "model.py")  # BNL101 warning, BNL102 fixable
    (project / "train.py").write_text("import torch\nprint(torch.ones(1))\n")  # no model
    _git(project, "add", ".")
    broken = _pre_commit(project, env, "try-repo", str(hooks), "bnlint")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "model.py:32:13: BNL101 warning" in broken.stdout
    assert "train.py" not in broken.stdout.split("hook id: bnlint")[1]

    fixed = _pre_commit(project, env, "try-repo", str(hooks), "bnlint-fix")
    assert fixed.returncode == 1  # files were modified, and BNL101 has no automatic fix
    assert "files were modified by this hook" in fixed.stdout
    assert "Fixed 2 findings in 1 file." in fixed.stdout
    added = [line for line in _git(project, "diff", "model.py").splitlines()
             if line.startswith("+") and not line.startswith("+++")]
    assert len(added) == 2 and all("bias=False" in line for line in added)

    (project / "model.py").write_text(CLEAN)
    _git(project, "add", ".")
    clean = _pre_commit(project, env, "try-repo", str(hooks), "bnlint")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Passed" in clean.stdout


def test_readme_configuration_runs(tmp_path, hooks, env):
    config = yaml.safe_load(readme_snippet("pre-commit", "yaml"))
    (entry,) = config["repos"]
    assert {h["id"] for h in entry["hooks"]} == {
        h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    # The published repository, as this checkout's hooks at a commit pre-commit can clone.
    entry.update(repo=str(hooks), rev=_git(hooks, "rev-parse", "HEAD").strip())
    project = _repo(tmp_path / "project")
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    (project / "model.py").write_text(CLEAN)
    _git(project, "add", ".")
    proc = _pre_commit(project, env, "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("Passed") == 2
