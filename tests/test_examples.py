"""`bnlint examples/` end to end: located findings on the broken examples, none at warning or
above on the clean ones, and JSON / SARIF output that honour their contracts."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import EXAMPLES, ROOT, line_of, run_cli

CLEAN = ["resnet_cifar.py", "densenet.py", "early_exit.py"]
BROKEN = {"vgg_bn.py": {"BNL101", "BNL102"}, "audio_cnn1d.py": {"BNL103", "BNL104", "BNL401"},
          "mlp_regressor.py": {"BNL401"}}


def _findings(report, name):
    return [f for m in report["models"] if Path(m["path"]).name == name for f in m["findings"]]


def _located(report, name, code, module=None):
    hits = [f for f in _findings(report, name)
            if f["code"] == code and module in (None, f["module"])]
    assert len(hits) == 1, hits
    return hits[0]


def test_clean_examples_have_nothing_at_warning_or_above(examples_json):
    for name in CLEAN:
        bad = [f for f in _findings(examples_json, name) if f["severity"] != "info"]
        assert not bad, (name, bad)


def test_broken_examples_have_their_findings(examples_json):
    for name, codes in BROKEN.items():
        assert codes <= {f["code"] for f in _findings(examples_json, name)}, name


def test_finding_in_helper_points_at_the_conv_inside_sequential(examples_json):
    f = _located(examples_json, "vgg_bn.py", "BNL102", module="features.0.0")
    path = EXAMPLES / "vgg_bn.py"
    assert f["line"] == line_of(path, "nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)")
    assert f["column"] == path.read_text().splitlines()[f["line"] - 1].index("nn.Conv2d") + 1
    assert len(f["evidence"]["modules"]) == 6  # the six convs that helper builds


def test_dropout_finding_points_at_its_sequential_element(examples_json):
    f = _located(examples_json, "vgg_bn.py", "BNL101")
    assert f["line"] == line_of(EXAMPLES / "vgg_bn.py", "nn.Dropout(0.5)")
    assert f["module"] == "classifier.3"


def test_functional_relu_finding_points_at_the_forward_line(examples_json):
    f = _located(examples_json, "audio_cnn1d.py", "BNL401")
    path = EXAMPLES / "audio_cnn1d.py"
    assert f["line"] == line_of(path, "return F.relu(self.out(x))")
    assert f["column"] == path.read_text().splitlines()[f["line"] - 1].index("F.relu") + 1


def test_attribute_module_finding_points_at_its_assignment(examples_json):
    f = _located(examples_json, "audio_cnn1d.py", "BNL103")
    assert f["line"] == line_of(EXAMPLES / "audio_cnn1d.py", "self.bn1b = nn.BatchNorm1d(64)")
    assert f["module"] == "bn1b"


def test_untraceable_model_is_linted_through_hooks(examples_json):
    model = next(m for m in examples_json["models"] if m["name"] == "EarlyExitCNN")
    assert model["trace"]["method"] == "hooks" and not model["trace"]["ok"]
    assert 0 < model["trace"]["coverage"] <= 1
    f = _located(examples_json, "early_exit.py", "BNL001")
    assert "control flow" in f["message"] and f["severity"] == "info"
    line = line_of(EXAMPLES / "early_exit.py", "if early.softmax")
    text = (EXAMPLES / "early_exit.py").read_text().splitlines()[line - 1]
    assert (f["line"], f["column"]) == (line, text.index("early.softmax") + 1)  # the condition


def test_json_has_every_field_of_the_contract(examples_json):
    assert {"version", "models", "summary"} <= set(examples_json)
    for model in examples_json["models"]:
        assert {"name", "path", "trace", "findings", "probe", "suggestions"} <= set(model)
        assert {"ok", "method", "coverage"} <= set(model["trace"])
        for f in model["findings"]:
            assert {"code", "name", "category", "severity", "message", "path", "line", "column",
                    "module", "evidence", "fix"} <= set(f)
            assert f["fix"] is None or {"applicability", "description", "diff"} <= set(f["fix"])
    findings = [f for m in examples_json["models"] for f in m["findings"]]
    assert examples_json["summary"]["findings"] == len(findings)
    for severity in ("error", "warning", "info"):
        assert examples_json["summary"][severity] == sum(f["severity"] == severity
                                                         for f in findings), severity


def test_sarif_validates_against_the_official_schema():
    proc = run_cli("examples/", "--format", "sarif", "--no-probe")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    schema = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(doc, schema)
    run = doc["runs"][0]
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} >= {"BNL101", "BNL102"}
    fixed = [r for r in run["results"] if r.get("fixes")]
    assert fixed and all(r["fixes"][0]["artifactChanges"][0]["replacements"] for r in fixed)
    prints = [(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
               r["partialFingerprints"]["bnlint/v1"]) for r in run["results"]]
    assert len(set(prints)) == len(prints)  # one result per fingerprint, even across models


def _plural(n, word):
    return f"{n} {word}{'s' if n != 1 and word != 'info' else ''}"


def test_text_output_is_ruff_like_with_a_summary(examples_json):
    proc = run_cli("examples/vgg_bn.py", "--fail-on", "error", "--no-probe")
    findings = _findings(examples_json, "vgg_bn.py")
    severities = [f["severity"] for f in findings]
    assert "error" not in severities and proc.returncode == 0  # below --fail-on error
    lines = proc.stdout.splitlines()
    dropout = line_of(EXAMPLES / "vgg_bn.py", "nn.Dropout(0.5)")
    assert any(line.startswith(f"examples/vgg_bn.py:{dropout}:13: BNL101 warning:")
               for line in lines), lines
    located = [f"examples/vgg_bn.py:{f['line']}:{f['column']}: {f['code']}" for f in findings]
    assert sorted(line.split(" ", 2)[0] + " " + line.split(" ", 2)[1] for line in lines
                  if line.startswith("examples/vgg_bn.py:")) == sorted(located)
    counts = ", ".join(_plural(severities.count(s), s) for s in ("error", "warning", "info")
                       if s in severities)
    assert lines[-1].startswith(f"Found {_plural(len(findings), 'finding')} ({counts}) in "
                                "1 model from 1 file."), lines[-1]
    assert "\x1b[" not in proc.stdout  # no colour when not on a terminal


@pytest.mark.parametrize("fmt", ["github"])
def test_github_annotations(fmt):
    proc = run_cli("examples/audio_cnn1d.py", "--format", fmt, "--no-probe")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    relu = line_of(EXAMPLES / "audio_cnn1d.py", "return F.relu(self.out(x))")
    assert any(l.startswith(f"::warning file=examples/audio_cnn1d.py,line={relu},") and
               "title=BNL401 relu-on-output::" in l for l in lines), lines


def test_sarif_fingerprints_tell_two_models_built_by_one_line_apart(write_model):
    path = write_model("""
        import torch.nn as nn

        def net(width=8):
            return nn.Sequential(nn.Linear(4, width), nn.BatchNorm1d(width), nn.ReLU(),
                                 nn.Linear(width, 2))

        def wide():
            return net(16)
    """)
    doc = json.loads(run_cli(path, "--format", "sarif", "--no-probe").stdout)
    results = doc["runs"][0]["results"]
    lines = {r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results}
    prints = {r["partialFingerprints"]["bnlint/v1"] for r in results}
    assert len(results) == 2 and len(lines) == 1 and len(prints) == 2
