"""Bad input never produces a traceback: a one-paragraph message naming the file (and line
where known) and what to do, and nothing of the user's written. bnlint's own usage errors (an
option, the config, a path) exit 2; a problem in the user's code is a finding of its 0xx rule
at the line that raised, exit 1 (ruff's convention)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap

import numpy
import pytest
from conftest import CLI_ENV, EXAMPLES, ROOT, line_of, run_cli

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


def _reports(proc, code, *needles):
    """The run reports a problem in the user's code: a ``code`` finding (error severity, exit
    1), no traceback, each needle in the report."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert f" {code} error: " in proc.stdout, proc.stdout
    for needle in needles:
        assert needle in proc.stdout, (needle, proc.stdout)


def test_missing_path(tmp_path):
    _fails(run_cli(tmp_path / "nope.py"), "nope.py: no such file or folder")


def test_syntax_error(write_model):
    path = write_model("import torch\ndef broken(:\n    pass\n")
    _reports(run_cli(path), "BNL002", f"{path}:2:1: BNL002 error: SyntaxError",
             "Fix the syntax error")


def test_import_error(write_model):
    path = write_model("import torch\nimport not_a_real_package_xyz\n")
    _reports(run_cli(path), "BNL002",
             f"{path}:2:1: BNL002 error: importing the file raised ModuleNotFoundError",
             "not_a_real_package_xyz", "Install not_a_real_package_xyz")


def _notes(proc, *needles):
    """The run says what it could not lint: a BNL005 info note (exit 0), each needle in it."""
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and " BNL005 info: not linted: " in proc.stdout
    for needle in needles:
        assert needle in proc.stdout, (needle, proc.stdout)


def test_no_model_found(write_model):
    path = write_model("import torch\nx = torch.zeros(3)\n")
    _notes(run_cli(path), "not linted: no model found", "Define the model in this file")


def test_constructor_needs_args(write_model):
    path = write_model("""
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.fc = nn.Linear(4, width)

            def forward(self, x):
                return self.fc(x)
    """)
    line = line_of(path, "class Net")
    for args in ((), ("--model", "Net")):
        proc = run_cli(path, *args)
        assert proc.returncode == 0, proc.stderr
        assert f"{path}:{line}:1: BNL005 info: not linted: Net needs width; give it with " \
               "--model 'Net(...)'" in proc.stdout
    proc = run_cli(path, "--model", "Net(3)", "--no-probe", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert [m["name"] for m in json.loads(proc.stdout)["models"]] == ["Net"]


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
    # on inputs bnlint inferred, a failing forward is a note (the guess may be wrong)...
    _notes(run_cli(path), f"{path}:{line}:1: BNL005 info: not linted: the forward pass raised "
                          "ValueError: bad input size", "inferred inputs of shape (16, 4)",
           "--input-shape")
    # ... on inputs the user gave, an error in the code
    _reports(run_cli(path, "--input-shape", "8,4"), "BNL004",
             f"{path}:{line}:1: BNL004 error: the forward pass raised ValueError: bad input size")


def test_wrong_input_shape_names_the_failing_line(write_model):
    path = write_model(GOOD)
    line = line_of(path, "return self.fc(x)")
    _reports(run_cli(path, "--input-shape", "8,5"), "BNL004",
             f"{path}:{line}:1: BNL004 error: the forward pass raised RuntimeError: mat1 and mat2 "
             "shapes cannot be multiplied", "(8, 5)")


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
    proc = run_cli(path)
    assert proc.returncode == 0, proc.stderr
    assert "BNL005 info: not linted: cannot infer example inputs for Net" in proc.stdout
    assert "--input-shape 8,3,32,32" in proc.stdout and "example_inputs()" in proc.stdout
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
    _reports(run_cli(path, "--timeout", "3"), "BNL003",
             f"{path}:{line_of(path, 'class Net')}:",
             "timed out after 3 s while building model Net", "raise --timeout")


def test_hang_in_one_file_does_not_stop_the_others(write_model):
    slow = write_model("import time, torch\ntime.sleep(600)\n", name="slow.py")
    good = write_model(GOOD, name="good.py")
    proc = run_cli(slow, good, "--timeout", "3", "--format", "json", "--no-probe")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    [problem] = report["findings"]
    assert (problem["code"], problem["severity"], problem["path"]) == ("BNL002", "error",
                                                                       str(slow))
    assert "timed out after 3 s while importing the file" in problem["message"]
    assert [m["name"] for m in report["models"]] == ["Net"]


def test_process_killed_by_model_code(write_model):
    path = write_model("import os, torch\nos._exit(3)\n")
    _reports(run_cli(path), "BNL002",
             "linting process exited with code 3 while importing the file")


def test_sys_exit_at_import(write_model):
    path = write_model("import sys, torch\nsys.exit('no')\n")
    _reports(run_cli(path), "BNL002", f"{path}:2:1: BNL002 error: importing the file raised "
             "SystemExit", "__main__")


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
           "missing does not exist. Create the folder or choose another path.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py", "report.json"]


@pytest.mark.parametrize("args,needle", [
    (["--input-shape", "8,x"], "--input-shape"),
    (["--select", "BNL1", "--fail-on", "bogus"], "Invalid value for '--fail-on'"),
])
def test_bad_options(write_model, args, needle):
    path = write_model(GOOD)
    _fails(run_cli(path, *args), needle)


def test_config_and_rule_files_that_are_not_utf8(tmp_path, write_model):
    path = write_model(GOOD)
    (tmp_path / "bin.yaml").write_bytes(b"select: [BNL1]\n# caf\xe9\n")
    _fails(run_cli(path, "--config", tmp_path / "bin.yaml"),
           "bin.yaml:2: the config file is not UTF-8 text", "Save it as UTF-8")
    (tmp_path / "pyproject.toml").write_bytes(b"[tool.bnlint]\n# \xff\n")
    _fails(run_cli("model.py", cwd=tmp_path), "pyproject.toml:2: the config file is not UTF-8")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "BNL777.yaml").write_bytes(b"code: BNL777\n# \xff\n")
    _fails(run_cli("--list-rules", "--rules-dir", rules),
           "BNL777.yaml:2: the rule file is not UTF-8 text")


@pytest.mark.parametrize("toml,line,needle", [
    ('[tool.bnlint\nselect = ["BNL1"]\n', 1, "Expected ']'"),
    ('[tool.bnlint]\nselect = ["BNL1"]\nselect = ["BNL2"]\n', 3, "Cannot overwrite a value"),
])
def test_malformed_pyproject_is_an_error(tmp_path, write_model, toml, line, needle):
    write_model(GOOD)
    (tmp_path / "pyproject.toml").write_text(toml)
    _fails(run_cli("model.py", "--no-probe", cwd=tmp_path),
           f"pyproject.toml:{line}: invalid TOML", needle)


@pytest.mark.parametrize("args,config,needle", [
    (["--select", "BNL999"], None, "--select names unknown rule code BNL999"),
    (["--select", "BNL1O1"], None, "Did you mean BNL101?"),
    (["--ignore", "BNL1,XYZ"], None, "--ignore names unknown rule code XYZ"),
    ([], "select: [BNL9999]\n", "config key 'select' names unknown rule code BNL9999"),
    ([], "thresholds: {BNL999: {x: 1}}\n", "'thresholds' names unknown rule code BNL999"),
    ([], "thresholds: {BNL201: {nope: 3}}\n",
     "BNL201's unknown threshold nope. BNL201's thresholds: ratio_warning"),
    ([], "optimizer: {name: rmsprp}\n",
     "'optimizer.name': unknown optimizer 'rmsprp'. Did you mean rmsprop? Known optimizers: sgd"),
    ([], "optimizer: {name: sgd, momentum: 5}\n", "'optimizer.momentum' must be a number in"),
    ([], "optimizer: {name: adam, lr: 0.001, momentum: 0.9}\n",
     "Adam takes no argument 'momentum'. Adam's arguments: lr, betas, eps"),
    ([], "optimizer: {name: adam, betas: [0.9]}\n", "'optimizer.betas' must be two numbers"),
    ([], "optimizer: {name: sgd, lr: 0.1, nesterov: true}\n",
     "'optimizer.nesterov' must be used with momentum > 0 and no dampening"),
    (["--optimizer", "radam,lr=1e-3,alpha=0.9"], None,
     "--optimizer: RAdam takes no argument 'alpha'. RAdam's arguments: lr, betas"),
    (["--optimizer", "adam lr=1e-3"], None, "does not read as NAME[,KEY=VALUE...]"),
    (["--optimizer", "sgd,lr=-1"], None, "--optimizer's lr must be a positive finite number"),
    ([], "probe-batch: 1\n", "'probe-batch' must be an integer >= 2"),
])
def test_unknown_codes_and_bad_values_fail_before_linting(tmp_path, write_model, args, config,
                                                          needle):
    path = write_model(GOOD)
    if config:
        (tmp_path / ".bnlint.yaml").write_text(config)
    proc = run_cli(path, "--no-probe", *args, cwd=tmp_path)
    _fails(proc, needle)
    assert (".bnlint.yaml: " in proc.stderr) == bool(config)


def test_rules_dir_codes_are_known(tmp_path, write_model):
    path = write_model(GOOD)
    rules = tmp_path / "rules"
    rules.mkdir()
    rule = (ROOT / "bnlint" / "rules" / "BNL108.yaml").read_text()
    (rules / "BNL199.yaml").write_text(rule.replace("BNL108", "BNL199").replace(
        "repeated-relu", "repeated-relu-again"))
    assert run_cli(path, "--no-probe", "--rules-dir", rules, "--select", "BNL199").returncode == 0
    _fails(run_cli(path, "--no-probe", "--select", "BNL199"), "unknown rule code BNL199")


@pytest.mark.parametrize("shape", ["abc", "8,-3,32,32"])
def test_bad_input_shape_option_is_worded_for_the_cli(write_model, shape):
    proc = run_cli(write_model(GOOD), "--input-shape", shape)
    _fails(proc, f"--input-shape '{shape}' is not a shape", "positive integers")
    assert "config" not in proc.stderr and "[[" not in proc.stderr


def test_diff_prints_the_problems_in_the_code(write_model):
    bad = write_model(GOOD.replace("nn.Linear(4, 2)", "nn.Linear(4, 2 / 3)"))
    proc = run_cli(bad, EXAMPLES / "vgg_bn.py", "--diff", "--no-probe")
    assert proc.returncode == 1, proc.stderr
    assert f"bnlint: error: {bad}:{line_of(bad, '2 / 3')}: BNL003 building Net() raised " \
        "TypeError" in proc.stderr
    assert "+++ b/" in proc.stdout and "bias=False" in proc.stdout


@pytest.mark.parametrize("source,error,model", [
    # the failing frame is torch's own: F.linear on integers, the call with too few inputs
    ("import torch\nfrom torch import nn\nEXAMPLE_INPUTS = torch.ones(4, 4, dtype=torch.long)\n"
     "model = nn.Sequential(nn.Linear(4, 2))\n", "RuntimeError", "model ="),
    ("import torch\nEXAMPLE_INPUTS = torch.ones(4, 4)\n"
     + textwrap.dedent(GOOD.replace("forward(self, x)", "forward(self, x, y)")), "TypeError",
     "class Net"),
])
def test_errors_raised_inside_torch_name_the_model(write_model, source, error, model):
    path = write_model(source)
    proc = run_cli(path, "--no-probe", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    [problem] = json.loads(proc.stdout)["findings"]
    assert problem["code"] == "BNL004" and problem["path"] == str(path)
    assert problem["line"] == line_of(path, model)
    assert problem["message"].startswith(f"the forward pass raised {error}")


def test_model_returning_none_names_the_file(write_model):
    path = write_model(GOOD.replace("return self.fc(x)", "self.fc(x)"))
    _fails(run_cli(path, "--probe-steps", "0", "--probe-budget", "5"),
           f"{path}:{line_of(path, 'class Net')}: the model's output holds no tensor")


def test_empty_example_batch(write_model):
    path = write_model("import torch\nEXAMPLE_INPUTS = torch.randn(0, 4)\n" + textwrap.dedent(GOOD))
    _fails(run_cli(path, "--no-probe"), f"{path}: example inputs have a batch of 0 samples",
           "at least 1 sample", "batch of 2 or more")


def test_output_and_plot_are_checked_before_linting(tmp_path, write_model):
    path = write_model(GOOD)
    proc = run_cli(path, "--plot", tmp_path / "out.png", "--no-probe")
    _fails(proc, "--plot draws the probe's measurements, but the probe is off")
    assert proc.stdout == ""
    proc = run_cli(path, "--output-file", tmp_path / "missing" / "r.json")
    _fails(proc, "r.json: cannot write the report: the folder", "does not exist")
    assert proc.stdout == "" and "probe" not in proc.stderr


@pytest.mark.parametrize("targets,needle", [
    (numpy.zeros((16, 3)), "have shape (16, 3), 3 value(s) per sample, but the model's output "
                           "of shape (16, 2) has 2"),
    (numpy.arange(16) % 5, "have shape (16,), 1 value(s) per sample, but the model's output of "
                           "shape (16, 2) has 2 per sample, and they are not class labels from "
                           "0 to 1"),
])
def test_targets_that_fit_neither_output_nor_labels(tmp_path, write_model, targets, needle):
    npy = tmp_path / "t.npy"
    numpy.save(npy, targets)
    path = write_model(GOOD)
    _fails(run_cli(path, "--no-probe", "--targets", npy), f"t.npy: targets {needle}")
    inline = write_model(f"import numpy, torch\nEXAMPLE_TARGETS = torch.from_numpy("
                         f"numpy.load({str(npy)!r}))\n" + textwrap.dedent(GOOD), "inline.py")
    _fails(run_cli(inline, "--no-probe"), f"{inline}: example targets {needle}")


@pytest.mark.parametrize("head", [b"\xef\xbb\xbf", b"# -*- coding: latin-1 -*-\n# caf\xe9\n"])
def test_files_python_can_read_are_linted_in_their_encoding(tmp_path, head):
    """A BOM or a coding line: Python runs the file, so bnlint reads it the same way (and a
    suppression comment in it still counts)."""
    body = textwrap.dedent("""\
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.bn = nn.BatchNorm1d(4)  # bnlint: ignore[BNL105]

            def forward(self, x):
                return self.bn(self.fc(x))
        """).encode()
    path = tmp_path / "model.py"
    path.write_bytes(head + body)
    proc = run_cli(path, "--no-probe", "--format", "json")
    codes = [f["code"] for f in json.loads(proc.stdout)["models"][0]["findings"]]
    assert proc.returncode == 0 and codes == ["BNL102"], proc.stderr


LAZY_AND_COMPILED = """
    import torch
    import torch.nn as nn


    class LazyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.LazyLinear(16)
            self.bn = nn.BatchNorm1d(16)
            self.head = nn.Linear(16, 2)

        def forward(self, x):
            return self.head(torch.relu(self.bn(self.fc(x))))


    compiled = torch.compile(LazyNet())
"""


def test_lazy_and_compiled_models_are_linted(write_model):
    """Lazy modules are initialised by one forward pass; torch.compile's wrapper is unwrapped.
    Both crashed before (a lazy parameter has no shape; dynamo under fx)."""
    path = write_model(LAZY_AND_COMPILED + "    EXAMPLE_INPUTS = torch.randn(8, 10)\n")
    for name in ("LazyNet", "compiled"):
        proc = run_cli(path, "--no-probe", "--format", "json", "--model", name)
        assert proc.returncode == 0, proc.stderr
        [m] = json.loads(proc.stdout)["models"]
        assert [(f["code"], f["line"]) for f in m["findings"]] == \
            [("BNL102", line_of(path, "nn.LazyLinear(16)"))]


def test_lazy_first_layer_needs_example_inputs(write_model):
    path = write_model(LAZY_AND_COMPILED)
    proc = run_cli(path, "--no-probe", "--model", "LazyNet")
    assert proc.returncode == 0, proc.stderr
    assert "BNL005 info: not linted: cannot infer example inputs for LazyNet: its first layer " \
           "(LazyLinear) is lazy, so its input size is not known until it runs" in proc.stdout
    assert "--input-shape" in proc.stdout


# ------------------------------------ hardening (issue 11): what adversarial inputs reached


def _rule_dir(tmp_path, replace: dict[str, str]):
    """A --rules-dir holding BNL108 copied as BNL199, with ``replace`` applied to its YAML."""
    rules = tmp_path / "rules"
    rules.mkdir()
    text = (ROOT / "bnlint" / "rules" / "BNL108.yaml").read_text()
    text = text.replace("BNL108", "BNL199").replace("repeated-relu", "repeated-relu-again")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    (rules / "BNL199.yaml").write_text(text)
    return rules, rules / "BNL199.yaml"


MESSAGE = "{m1.what} is applied to the output of"  # in BNL108's message


@pytest.mark.parametrize("field", [
    "{m0.__class__.__init__.__globals__[os].environ}", "{m0.obj.weight}", "{m0[0]}",
    "{m0!r}", "{m0.label:{m1.__class__}}"])
def test_rule_templates_name_fields_only(tmp_path, field):
    """A message template reached os.environ through attribute access on a matched layer."""
    rules, path = _rule_dir(tmp_path, {MESSAGE: field + " " + MESSAGE})
    proc = run_cli("--list-rules", "--rules-dir", rules)
    _fails(proc, f"{path}:{line_of(path, field)}: invalid rule file: message template field",
           "may only name a field")
    assert "environ" not in proc.stdout


def test_rule_template_naming_a_missing_field_is_the_rule_files_error(tmp_path, write_model):
    rules, path = _rule_dir(tmp_path, {MESSAGE: "{m7.label} " + MESSAGE})
    model = write_model("import torch.nn as nn\n"
                        "model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.ReLU())\n")
    _fails(run_cli(model, "--no-probe", "--rules-dir", rules, "--select", "BNL199"),
           f"{path}: rule BNL199's template cannot be filled: KeyError")


@pytest.mark.parametrize("edit,needle", [
    ("{action: write_repair, function: os.system}", "write_repair takes nothing else"),
    ("{action: write_repair}", "write_repair needs a fix.repair in he_init, orthogonal_init"),
    ("{action: set_kwarg, name: bias, value: \"__import__('os').getcwd()\"}",
     "must be a Python literal"),
    ("{action: set_kwarg, name: 'x; import os', value: 'True'}", "keyword argument's name"),
])
def test_rule_fixes_write_only_literals_and_bnlints_repairs(tmp_path, edit, needle):
    rules, path = _rule_dir(tmp_path, {"edit: {action: remove_op}": f"edit: {edit}"})
    _fails(run_cli("--list-rules", "--rules-dir", rules),
           f"{path}:{line_of(path, 'edit:')}: invalid rule file: fix.edit", needle)


@pytest.mark.parametrize("value", [".nan", ".inf", "-1"])
def test_thresholds_must_be_finite_and_not_negative(tmp_path, write_model, value):
    rules, path = _rule_dir(tmp_path, {"references:": f"thresholds: {{limit: {value}}}\n"
                                                      "references:"})
    _fails(run_cli("--list-rules", "--rules-dir", rules),
           f"{path}:{line_of(path, 'limit')}: invalid rule file: threshold limit = ",
           "must be a finite number >= 0")
    model = write_model(GOOD)
    (tmp_path / ".bnlint.yaml").write_text(f"thresholds: {{BNL201: {{ratio_warning: {value}}}}}\n")
    _fails(run_cli(model, "--no-probe", cwd=tmp_path),
           ".bnlint.yaml: config key 'thresholds' must be a mapping", "finite numbers >= 0")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_seconds_must_be_finite(tmp_path, write_model, value):
    model = write_model(GOOD)
    for option in ("--probe-budget", "--timeout"):
        _fails(run_cli(model, option, value), f"Invalid value for '{option}'",
               "positive, finite number of seconds")
    (tmp_path / ".bnlint.yaml").write_text(f"probe-budget: .{value.replace('-', '')}\n")
    _fails(run_cli(model, cwd=tmp_path), "'probe-budget' must be a positive finite number")


NESTED = """
    import torch.nn as nn


    class Deep(nn.Module):
        def __init__(self):
            super().__init__()
            body = nn.Linear(4, 4)
            for _ in range(5000):
                body = nn.Sequential(body)
            self.body = body

        def forward(self, x):
            return self.body(x)
"""

RECURSIVE = """
    import torch.nn as nn


    class Recursive(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x, depth=5000):
            return self.fc(x) if depth == 0 else self.forward(x, depth - 1)
"""


def test_a_5000_deep_nesting_is_an_input_error(write_model):
    path = write_model(NESTED)
    for args in ((), ("--model", "Deep")):
        _fails(run_cli(path, *args), f"{path}:{line_of(path, 'class Deep')}: model Deep nests "
               "its modules 5001 levels deep", "Build a deep stack flat")


def test_a_forward_recursing_5000_deep_is_located(write_model):
    path = write_model(RECURSIVE)
    _reports(run_cli(path, "--input-shape", "8,4"), "BNL004",
             f"{path}:{line_of(path, 'self.forward(x, depth - 1)')}:1: BNL004 error: the forward "
             "pass raised RecursionError", "write the recursion as a loop")
    _notes(run_cli(path), "not linted: the forward pass raised RecursionError")


def test_a_huge_input_shape_is_an_input_error(tmp_path, write_model):
    path = write_model(GOOD)
    for shape in ("100000,100000,100000", "99999999999999999999,4"):
        _fails(run_cli(path, "--input-shape", shape), "--input-shape: an input of shape",
               "bnlint allocates for one example input")
    (tmp_path / ".bnlint.yaml").write_text("input-shape: [100000, 100000, 100000]\n")
    _fails(run_cli(path, cwd=tmp_path), ".bnlint.yaml: config key 'input-shape': an input")


def test_example_inputs_this_machine_cannot_allocate_are_an_input_error(tmp_path):
    """Past the size check, an allocation can still fail (a machine with little memory):
    torch's own error becomes an input error."""
    import types

    import torch

    from bnlint.discover.inputs import example_inputs
    from bnlint.discover.models import FoundModel
    from bnlint.errors import InputError
    found = FoundModel("model", torch.nn.Linear(4, 2), 1)
    with pytest.raises(InputError, match="cannot allocate example inputs of shape"):
        example_inputs(types.ModuleType("m"), found, tmp_path / "m.py", [[2**40, 2**30]], None,
                       16)


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_document_formats_report_an_error_before_linting(tmp_path, write_model, fmt):
    """Missing path, bad config: CI still gets a valid document, with the error in it."""
    schema = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
    model = write_model(GOOD)
    (tmp_path / "bad.yaml").write_text("fail-on: sometimes\n")
    for args, needle in (([tmp_path / "missing.py"], "no such file or folder"),
                         ([model, "--config", tmp_path / "bad.yaml"], "'fail-on' must be")):
        proc = run_cli(*args, "--format", fmt)
        _fails(proc, needle)
        doc = json.loads(proc.stdout)
        if fmt == "json":
            assert doc["models"] == [] and needle in doc["errors"][0]["message"]
            assert doc["summary"]["errors"] == 1
        else:
            import jsonschema
            jsonschema.validate(doc, schema)
            (notice,) = doc["runs"][0]["invocations"][0]["toolExecutionNotifications"]
            assert needle in notice["message"]["text"]
    out = tmp_path / "report.json"
    proc = run_cli(tmp_path / "missing.py", "--format", fmt, "--output-file", out)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "no such file or folder" in out.read_text()
