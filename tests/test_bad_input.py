"""Bad input never produces a traceback: a one-paragraph message naming the file (and line
where known) and what to do, exit code 2, and nothing of the user's written."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from conftest import CLI_ENV, line_of, run_cli

GOOD = """
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x)
"""


def _fails(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr)


def test_missing_path(tmp_path):
    _fails(run_cli(tmp_path / "nope.py"), "nope.py: no such file or folder")


def test_syntax_error(write_model):
    path = write_model("import torch\ndef broken(:\n    pass\n")
    _fails(run_cli(path), f"{path}:2: SyntaxError", "Fix the syntax error")


def test_import_error(write_model):
    path = write_model("import torch\nimport not_a_real_package_xyz\n")
    _fails(run_cli(path), f"{path}:2: importing the file raised ModuleNotFoundError",
           "not_a_real_package_xyz", "Install the missing package")


def test_no_model_found(write_model):
    path = write_model("import torch\nx = torch.zeros(3)\n")
    _fails(run_cli(path), "no model found", "Define the model in this file")


def test_constructor_needs_args(write_model):
    path = write_model("""
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.fc = nn.Linear(4, width)
    """)
    _fails(run_cli(path), "Net(width)", "zero-argument function")
    line = line_of(path, "class Net")
    _fails(run_cli(path, "--model", "Net"), f"{path}:{line}: model Net needs constructor "
                                            "arguments (width)")


def test_unknown_model_name(write_model):
    path = write_model(GOOD)
    _fails(run_cli(path, "--model", "Missing"), "no model named Missing", "Models here: Net")


def test_forward_raises(write_model):
    path = write_model("""
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                raise ValueError("bad input size")
    """)
    line = line_of(path, "raise ValueError")
    _fails(run_cli(path), f"{path}:{line}: the forward pass raised ValueError: bad input size",
           "inferred inputs of shape (16, 4)", "--input-shape")


def test_wrong_input_shape_names_the_failing_line(write_model):
    path = write_model(GOOD)
    line = line_of(path, "return self.fc(x)")
    _fails(run_cli(path, "--input-shape", "8,5"),
           f"{path}:{line}: the forward pass raised RuntimeError: mat1 and mat2 shapes cannot be "
           "multiplied", "(8, 5)")


def test_shapes_unknown(write_model):
    path = write_model("""
        import torch
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.w = nn.Parameter(torch.randn(4, 4))

            def forward(self, x):
                return x @ self.w
    """)
    _fails(run_cli(path), "cannot infer example inputs for Net", "--input-shape 8,3,32,32",
           "example_inputs()")
    assert run_cli(path, "--input-shape", "8,4").returncode == 0


def test_model_hangs_past_timeout(write_model):
    path = write_model("""
        import time
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                time.sleep(600)
    """)
    _fails(run_cli(path, "--timeout", "3"), "timed out after 3 s while building the models",
           "raise --timeout")


def test_hang_in_one_file_does_not_stop_the_others(write_model):
    slow = write_model("import time, torch\ntime.sleep(600)\n", name="slow.py")
    good = write_model(GOOD, name="good.py")
    proc = run_cli(slow, good, "--timeout", "3", "--format", "json")
    _fails(proc, "slow.py: timed out after 3 s while importing the file")
    assert '"name": "Net"' in proc.stdout


def test_process_killed_by_model_code(write_model):
    path = write_model("import os, torch\nos._exit(3)\n")
    _fails(run_cli(path), "linting process exited with code 3 while importing the file")


def test_sys_exit_at_import(write_model):
    path = write_model("import sys, torch\nsys.exit('no')\n")
    _fails(run_cli(path), f"{path}:2: importing the file raised SystemExit", "__main__")


def test_unknown_config_key(tmp_path, write_model):
    write_model(GOOD)
    (tmp_path / ".bnlint.yaml").write_text("fail-on: warning\nslect: [BNL1]\n")
    _fails(run_cli("model.py", cwd=tmp_path), ".bnlint.yaml: unknown config key 'slect'")


def test_bad_config_value_in_pyproject(tmp_path, write_model):
    write_model(GOOD)
    (tmp_path / "pyproject.toml").write_text('[tool.bnlint]\nfail-on = "sometimes"\n')
    _fails(run_cli("model.py", cwd=tmp_path), "pyproject.toml: config key 'fail-on' must be one of")


def test_bad_targets_file(tmp_path, write_model):
    path = write_model(GOOD)
    _fails(run_cli(path, "--targets", tmp_path / "t.pt"), "t.pt: targets file not found")
    (tmp_path / "t.pt").write_text("not a tensor")
    _fails(run_cli(path, "--targets", tmp_path / "t.pt"), "cannot read targets")


def test_unknown_rule_code_for_explain():
    _fails(run_cli("--explain", "BNL999"), "unknown rule code BNL999")


def test_unwritable_output_file_leaves_nothing_half_written(tmp_path, write_model):
    path = write_model(GOOD)
    out = tmp_path / "report.json"
    out.write_text("previous report")
    # Files may not grow past 16 bytes, so writing the report fails part-way (EFBIG: Python
    # ignores SIGXFSZ); the JSON report is far longer.
    proc = subprocess.run(
        [sys.executable, "-m", "bnlint", str(path), "--format", "json", "--output-file", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=CLI_ENV,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16)))
    _fails(proc, f"{out}: cannot write the report: File too large.")
    assert out.read_text() == "previous report"  # the old report whole, not a truncated new one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py", "report.json"]
    _fails(run_cli(path, "--output-file", tmp_path / "missing" / "r.json"),
           "cannot write the report: No such file or directory.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py", "report.json"]


@pytest.mark.parametrize("args,needle", [
    (["--input-shape", "8,x"], "--input-shape"),
    (["--select", "BNL1", "--fail-on", "bogus"], "Invalid value for '--fail-on'"),
])
def test_bad_options(write_model, args, needle):
    path = write_model(GOOD)
    _fails(run_cli(path, *args), needle)
