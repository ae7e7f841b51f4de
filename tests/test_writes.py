"""What bnlint writes, and where: ``--fix`` writes only what it read (refusing a read-only file
and one that changed meanwhile), through a symlink and keeping hard links; ``--output-file``
and ``--plot`` refuse what is not a regular file and the files being linted; ``--diff`` paths
are relative to the file's git repository, so ``git apply`` takes them at its root."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLI_ENV, ROOT, run_cli

from bnlint import files
from bnlint.errors import InputError
from bnlint.findings import Finding, Fix, ModelReport, Report
from bnlint.fixes import plan as fix_plan
from bnlint.fixes import text as fix_text

BIASED = """
    import torch.nn as nn
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
"""
FIXED = "nn.Linear(4, 4, bias=False)"


def _fails(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


# ------------------------------------------------------------------------------ --fix


def test_fix_refuses_a_read_only_file(write_model):
    path = write_model(BIASED)
    before = path.read_text()
    path.chmod(0o444)
    proc = run_cli(path, "--fix", "--no-probe")
    _fails(proc, f"{path}: cannot write the fixed file: the file is read-only. Make it "
                 "writable (chmod u+w)")
    assert "Fixed 0 findings in 0 files." in proc.stderr
    assert path.read_text() == before and "BNL102" in proc.stdout


def test_fix_refuses_a_file_that_changed_since_it_was_read(write_model):
    """The model file touches itself when imported: the child process that verifies the
    patched source imports it too, after bnlint read the file, so it has changed by the time
    the fix would replace it."""
    path = write_model(BIASED + "    open(__file__, 'a').write('# touched\\n')\n")
    proc = run_cli(path, "--fix", "--no-probe")
    _fails(proc, f"{path}: not writing the fixed file: the file changed since bnlint read it. "
                 "Run bnlint again.")
    assert FIXED not in path.read_text()


def test_write_checks_the_content_right_before_replacing(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("x = 1\n")
    with pytest.raises(InputError, match="changed since bnlint read it"):
        files.write_atomic(str(path), "x = 2\n", unchanged="x = 0\n")
    assert path.read_text() == "x = 1\n" and os.listdir(tmp_path) == ["m.py"]
    files.write_atomic(str(path), "x = 2\n", unchanged="x = 1\n")
    assert path.read_text() == "x = 2\n"


def test_a_replacement_is_applied_only_where_the_text_it_was_made_for_still_is(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("a = nn.Linear(4, 4)\nb = nn.Linear(4, 4)\n")
    text = fix_text.Text(path.read_text())
    bias = text.made(str(path), 2, 19, 2, 19, ", bias=False")  # an insertion: made on line 2
    relu = text.made(str(path), 1, 5, 1, 20, "nn.Identity()")   # a span: made on its text
    assert (bias.old, relu.old) == ("b = nn.Linear(4, 4)\n", "nn.Linear(4, 4)")
    assert text.apply([bias, relu]) == "a = nn.Identity()\nb = nn.Linear(4, 4, bias=False)\n"
    moved = fix_text.Text("# a new first line\n" + path.read_text())
    for r in (bias, relu, dataclasses.replace(bias, line=9, end_line=9)):
        with pytest.raises(fix_text.StaleError):
            moved.apply([r])
    # bnlint --fix: a fix made before the file changed is not applied
    path.write_text("# a new first line\n" + path.read_text())
    finding = Finding("BNL102", "bias-before-batchnorm", "ordering", "info", "", str(path), 2,
                      1, "0", fix=Fix("safe", "", (bias,)))
    patches, warnings = fix_plan.plan(Report([ModelReport("m", str(path), 1, {}, [finding])]),
                                      {}, unsafe=False)
    assert patches == [] and [w.message for w in warnings] == [
        "the file changed since bnlint linted it, so its fixes were not applied."]


def test_fix_writes_the_real_file_behind_a_symlink(write_model, tmp_path):
    real = write_model(BIASED, "real.py")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    proc = run_cli(link, "--fix", "--no-probe")
    assert "Fixed 1 finding in 1 file." in proc.stderr, proc.stderr
    assert link.is_symlink() and FIXED in real.read_text()


def test_fix_keeps_hard_links(write_model, tmp_path):
    """A file with two names is written in place: both names see the fix (a rename would
    leave the other name on the old text)."""
    path = write_model(BIASED)
    other = tmp_path / "other-name.py"
    os.link(path, other)
    inode = path.stat().st_ino
    proc = run_cli(path, "--fix", "--no-probe")
    assert "Fixed 1 finding in 1 file." in proc.stderr, proc.stderr
    assert path.stat().st_ino == inode and path.stat().st_nlink == 2
    assert FIXED in other.read_text() and other.read_text() == path.read_text()
    assert sorted(os.listdir(tmp_path)) == ["model.py", "other-name.py"]  # no temporary left


# ------------------------------------------------------------- --output-file and --plot


@pytest.mark.parametrize("option", ["--output-file", "--plot"])
def test_output_refuses_fifos_devices_and_the_linted_file(write_model, tmp_path, option):
    path = write_model(BIASED)
    name = "out.png" if option == "--plot" else "out.json"
    fifo = tmp_path / name
    os.mkfifo(fifo)
    what = "the plot" if option == "--plot" else "the report"
    _fails(run_cli(path, option, fifo), f"cannot write {what}: {fifo} is a FIFO, not a regular "
                                        "file. Give the path of a regular file.")
    if option == "--output-file":
        _fails(run_cli(path, option, "/dev/null"), "/dev/null is a character device")
        source = path
    else:  # a plot needs a .png or .svg name: the linted file is reached through one
        source = tmp_path / "model.svg"
        source.symlink_to(path)
    before = path.read_text()
    _fails(run_cli(path, option, source), f"cannot write {what} over a file being linted.")
    assert path.read_text() == before


def test_output_file_writes_through_a_symlink(write_model, tmp_path):
    path = write_model(BIASED)
    (tmp_path / "reports").mkdir()
    real = tmp_path / "reports" / "r.json"
    link = tmp_path / "r.json"
    link.symlink_to(real)  # dangling until the report is written
    proc = run_cli(path, "--no-probe", "--format", "json", "--output-file", link)
    assert proc.returncode == 1, proc.stderr
    assert link.is_symlink() and '"BNL102"' in real.read_text()


# ---------------------------------------------------------------------------------- --diff


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_diff_paths_are_relative_to_the_repository_root(write_model, tmp_path):
    repo = tmp_path / "repo"
    folder = repo / "models" / "vision"
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (folder / "net.py").write_text(write_model(BIASED).read_text())
    for cwd, given in ((folder, "net.py"), (repo / "models", "vision/net.py"),
                       (tmp_path, "repo/models/vision/net.py")):
        proc = run_cli(given, "--diff", "--no-probe", cwd=cwd)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout.startswith("--- a/models/vision/net.py\n+++ b/models/vision/net.py\n")
        (tmp_path / "fix.diff").write_text(proc.stdout)
        subprocess.run(["git", "apply", "--check", str(tmp_path / "fix.diff")], cwd=repo,
                       check=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_readme_diff_from_a_subfolder_applies_at_the_root(write_model, tmp_path):
    readme = (ROOT / "README.md").read_text()
    rest = readme[readme.index("**`--diff` paths**"):]
    script = rest[rest.index("```sh\n") + 6:rest.index("```", rest.index("```sh\n") + 6)]
    repo = tmp_path / "repo"
    (repo / "models" / "vision").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    net = repo / "models" / "vision" / "net.py"
    net.write_text(write_model(BIASED).read_text())
    env = {**CLI_ENV, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{CLI_ENV['PATH']}"}
    proc = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert FIXED in net.read_text()
