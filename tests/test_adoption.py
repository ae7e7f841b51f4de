"""Adopting bnlint on code that already has findings: --write-baseline / --baseline,
--add-noqa, --statistics, and --allow-no-models (for pre-commit's file lists)."""

from __future__ import annotations

import json

import pytest
from conftest import readme_snippet, run_cli

from bnlint.errors import InputError
from bnlint.rules import suppress

# Two problems: a conv bias before BatchNorm (BNL102) and dropout feeding BatchNorm (BNL101).
BROKEN = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.5)
        self.bn2 = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        x = self.bn2(self.drop(x))
        return self.head(x.mean((2, 3)))
"""


def _lint_json(*args):
    proc = run_cli(*args, "--no-probe", "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    return proc, json.loads(proc.stdout)


def _codes(data):
    return sorted(f["code"] for m in data["models"] for f in m["findings"])


def test_baseline_hides_recorded_findings_survives_edits_and_names_what_is_gone(write_model,
                                                                                 tmp_path):
    path = write_model(BROKEN)
    baseline = tmp_path / "bnlint-baseline.json"
    proc = run_cli(path, "--no-probe", "--write-baseline", baseline)
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(baseline.read_text())["findings"]
    assert sorted(e["code"] for e in entries) == ["BNL101", "BNL102"]
    assert {e["path"] for e in entries} == {"model.py"}  # relative to the baseline's folder

    proc, data = _lint_json(path, "--baseline", baseline)
    assert proc.returncode == 0 and _codes(data) == []
    assert data["baseline"]["hidden"] == 2 and data["baseline"]["gone"] == []

    # Lines added above move every finding; a new problem (a second dropout before a
    # BatchNorm, a warning) is reported and fails the run.
    edited = ("# a comment that moves every line down\n\n" + BROKEN).replace(
        "self.head = nn.Linear(8, 10)",
        "self.drop2 = nn.Dropout(0.1)\n        self.bn3 = nn.BatchNorm1d(8)\n"
        "        self.head = nn.Linear(8, 10)").replace(
        "return self.head(x.mean((2, 3)))",
        "return self.head(self.bn3(self.drop2(x.mean((2, 3)))))")
    path.write_text(edited)
    proc, data = _lint_json(path, "--baseline", baseline)
    assert proc.returncode == 1
    new = [f for m in data["models"] for f in m["findings"]]
    assert [(f["code"], f["module"]) for f in new] == [("BNL101", "drop2")]
    assert data["baseline"]["hidden"] == 2

    # The dropout problem fixed: the baseline says it is gone, in text and on stderr for SARIF.
    path.write_text(edited.replace("self.bn2(self.drop(x))", "self.bn2(x)"))
    proc, data = _lint_json(path, "--baseline", baseline)
    assert [(g["code"], g["module"]) for g in data["baseline"]["gone"]] == [("BNL101", "drop")]
    text = run_cli(path, "--no-probe", "--baseline", baseline)
    assert "1 finding in the baseline is gone" in text.stdout
    assert "model.py: BNL101 drop in Net" in text.stdout
    sarif = run_cli(path, "--no-probe", "--baseline", baseline, "--format", "sarif")
    json.loads(sarif.stdout)  # still pure SARIF
    assert "1 finding in the baseline is gone" in sarif.stderr


def test_baseline_errors_are_located(tmp_path, write_model):
    path = write_model(BROKEN)
    missing = run_cli(path, "--no-probe", "--baseline", tmp_path / "nope.json")
    assert missing.returncode == 2 and "--write-baseline" in missing.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"findings": 1}')
    proc = run_cli(path, "--no-probe", "--baseline", bad)
    assert proc.returncode == 2 and "not a bnlint baseline" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_statistics_count_the_findings_per_code_in_text_and_json(write_model):
    path = write_model(BROKEN.replace("nn.Linear(8, 10)", "nn.Linear(8, 10)\n"
                                      "        self.conv2 = nn.Conv2d(8, 8, 1)"))
    _, data = _lint_json(path)
    counts = {c: _codes(data).count(c) for c in _codes(data)}
    proc = run_cli(path, "--no-probe", "--statistics")
    assert proc.returncode == 1
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert {code: int(n) for n, code, _ in rows} == counts
    fixable = {code for _, code, rest in rows if rest.startswith("[*]")}
    assert fixable == {f["code"] for m in data["models"] for f in m["findings"]
                       if f["fix"] and f["fix"]["diff"] and f["fix"]["applicability"] == "safe"}
    stats = json.loads(run_cli(path, "--no-probe", "--statistics", "--format", "json").stdout)
    assert {e["code"]: e["count"] for e in stats} == counts
    refused = run_cli(path, "--no-probe", "--statistics", "--format", "sarif")
    assert refused.returncode == 2 and "SARIF" in refused.stderr


def test_add_noqa_suppresses_every_finding_idempotently(write_model):
    # A call spread over lines, and a line that already carries another code's directive.
    source = BROKEN.replace(
        "self.conv = nn.Conv2d(3, 8, 3, padding=1)",
        "self.conv = nn.Conv2d(\n            3, 8, 3, padding=1)").replace(
        "self.drop = nn.Dropout(0.5)", "self.drop = nn.Dropout(0.5)  # bnlint: ignore[BNL999]")
    path = write_model(source)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))  # CRLF kept
    proc = run_cli(path, "--no-probe", "--add-noqa")
    assert proc.returncode == 0, proc.stderr
    assert "Added 2 codes" in proc.stderr
    text = path.read_bytes().decode()
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    assert "self.conv = nn.Conv2d(  # bnlint: ignore[BNL102]\r\n" in text
    assert "nn.Dropout(0.5)  # bnlint: ignore[BNL101, BNL999]\r\n" in text
    again = run_cli(path, "--no-probe", "--add-noqa")
    assert "Added 0 codes" in again.stderr and path.read_bytes().decode() == text
    proc, data = _lint_json(path)
    assert proc.returncode == 0 and _codes(data) == []


def test_add_directives_never_breaks_a_file(tmp_path):
    path = tmp_path / "m.py"
    source = ('# -*- coding: latin-1 -*-\nx = """caf\xe9\nline"""\n'
              'y = 1 + \\\n    2\nz = 3  # bnlint: ignore\n')
    path.write_bytes(source.encode("latin-1"))
    # Line 2 ends inside a string, line 4 with a backslash: the directive goes on the next
    # line of each span; line 6's bare ignore already suppresses everything.
    added = suppress.add_directives(str(path), [(2, 3, "BNL101"), (4, 5, "BNL102"),
                                                (6, 6, "BNL103")])
    assert added == 2
    lines = path.read_bytes().decode("latin-1").splitlines()
    assert lines[2] == 'line"""  # bnlint: ignore[BNL101]'
    assert lines[4] == "    2  # bnlint: ignore[BNL102]"
    assert lines[5] == "z = 3  # bnlint: ignore"
    compile(path.read_bytes(), str(path), "exec")
    # A span with no line a comment can end is left alone rather than broken.
    path.write_text('s = """a\nb"""\n')
    assert suppress.add_directives(str(path), [(1, 1, "BNL101")]) == 0
    path.write_text("def broken(:\n")
    with pytest.raises(InputError, match="no longer parses"):
        suppress.add_directives(str(path), [(1, 1, "BNL101")])


def test_allow_no_models_skips_what_a_folder_walk_would(write_model):
    model = write_model(BROKEN)
    script = write_model("import torch\nprint(torch.ones(1))\n", "script.py")
    plain = write_model("X = 1\n", "util.py")
    strict = run_cli(model, script, "--no-probe")
    assert strict.returncode == 1  # BROKEN's own findings; script.py is a note
    assert f"{script}:" in strict.stdout and "BNL005 info: not linted: no model found" \
        in strict.stdout
    proc, data = _lint_json(model, script, plain, "--allow-no-models")
    assert proc.returncode == 1 and proc.stderr == ""
    assert [m["name"] for m in data["models"]] == ["Net"]
    assert data["summary"]["files"] == 2  # util.py never mentions torch: not imported
    none = run_cli(plain, "--allow-no-models", "--no-probe")
    assert none.returncode == 0, none.stderr


def test_exclusive_options_are_refused(write_model):
    path = write_model(BROKEN)
    proc = run_cli(path, "--add-noqa", "--fix")
    assert proc.returncode == 2 and "cannot be used together" in proc.stderr


def test_readme_adoption_commands_run_as_written(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.py").write_text(BROKEN)
    (tmp_path / ".bnlint.yaml").write_text("probe: false\n")  # static rules: quicker
    outcomes = []
    for line in readme_snippet("Adopting bnlint on code with findings", "sh").splitlines():
        program, *args = line.split("#")[0].split()
        assert program == "bnlint"
        proc = run_cli(*args, cwd=tmp_path)
        outcomes.append((args[-1], proc.returncode, proc.stdout))
    assert [code for _, code, _ in outcomes] == [0, 0, 0, 0], outcomes
    assert (tmp_path / "bnlint-baseline.json").is_file()
    assert "# bnlint: ignore[BNL101]" in (tmp_path / "models" / "net.py").read_text()
    assert outcomes[-1][2] == "No findings.\n"  # --statistics once every finding is ignored

