"""The 2xx/3xx/4xx rules end to end: what each example gets from `bnlint examples/`, severity
that follows the predicted effect, user thresholds, and models whose weights cannot be read."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import bnlint
from bnlint.config import Config

FAMILIES = ("BNL2", "BNL3", "BNL4")


def _findings(report, name):
    return [f for m in report["models"] if Path(m["path"]).name == name for f in m["findings"]]


def _one(report, name, code):
    hits = [f for f in _findings(report, name) if f["code"] == code]
    assert len(hits) == 1, _findings(report, name)
    return hits[0]


def test_plain_cnn_gets_the_chain_finding_with_its_ends_and_ratio(examples_json):
    f = _one(examples_json, "plain_cnn30.py", "BNL201")
    ratio = f["evidence"]["predicted"]["grad_ratio"]
    print("plain_cnn30 predicted ratio", ratio, "measured", f["evidence"].get("measured"))
    assert f["severity"] in ("warning", "error") and ratio > 70
    assert (f["evidence"]["first_module"], f["evidence"]["last_module"]) == ("body.0", "body.87")
    assert f["module"] == "body.0" and f["evidence"]["blocks"] == 30
    assert "body.0" in f["message"] and "body.87" in f["message"]
    assert f"{ratio:.3g}x" in f["message"]


def test_residual_examples_get_nothing_at_warning_or_above(examples_json):
    for name in ("resnet_cifar.py", "resnet56.py"):
        ours = [f for f in _findings(examples_json, name) if f["code"].startswith(FAMILIES)]
        assert all(f["severity"] == "info" for f in ours), ours
    assert not [f for f in _findings(examples_json, "resnet_cifar.py")
                if f["code"].startswith(FAMILIES)]  # zero-init residual: nothing to suggest
    info = _one(examples_json, "resnet56.py", "BNL202")
    predicted = info["evidence"]["predicted"]
    assert predicted["forward_rms_ratio"] >= 2 * predicted["zero_init"]["forward_rms_ratio"]


def test_regressor_with_final_relu_and_tiny_targets_gets_the_target_findings(examples_json):
    relu = _one(examples_json, "mlp_regressor.py", "BNL401")
    assert relu["severity"] == "error" and relu["evidence"]["regression"]
    scale = _one(examples_json, "mlp_regressor.py", "BNL402")
    assert scale["severity"] == "warning" and scale["evidence"]["targets_std"] < 0.1
    assert scale["module"] == "net.8"  # the output layer


def test_deep_default_init_mlp_gets_the_vanishing_init_finding(examples_json):
    f = _one(examples_json, "deep_mlp.py", "BNL302")
    predicted = f["evidence"]["predicted"]
    assert predicted["grad_ratio"] < 1e-3 and predicted["signal_ratio"] < 1e-3
    assert predicted["forward_rms_ratio"] < 1
    assert "PyTorch's default init" in f["message"] and "0.408" in f["message"]


def _plain(depth, width=16):
    torch.manual_seed(0)
    return nn.Sequential(*[m for _ in range(depth) for m in (
        nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU())], nn.Linear(width, 2))


def _codes(report, prefix="BNL"):
    return {f.code: f for f in report.findings if f.code.startswith(prefix)}


def test_severity_follows_the_predicted_ratio_and_thresholds_are_tunable():
    x = torch.randn(32, 16)
    assert "BNL201" not in _codes(bnlint.lint(_plain(10), x))
    assert _codes(bnlint.lint(_plain(30), x))["BNL201"].severity == "warning"
    deep = _codes(bnlint.lint(_plain(60), x))["BNL201"]
    assert deep.severity == "error" and deep.evidence.predicted["grad_ratio"] >= 1e4
    config = Config(thresholds={"BNL201": {"ratio_warning": 1e9, "ratio_error": 1e12}})
    assert "BNL201" not in _codes(bnlint.lint(_plain(60), x, config=config))


def test_meta_model_skips_weight_rules_and_says_so():
    from bnlint.model import sites
    with sites.recording():  # as the CLI builds models: their construction lines are known
        model = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(16, 16), nn.ReLU())],
                              nn.Linear(16, 2)).to("meta")
    report = bnlint.lint(model, torch.randn(8, 16, device="meta"))
    found = _codes(report)
    assert found["BNL300"].severity == "info"
    assert "BNL302" in found["BNL300"].message and "BNL403" in found["BNL300"].message
    assert not {c for c in found if c.startswith("BNL3") and c != "BNL300"}
    assert found["BNL300"].path == __file__  # located at the first meta layer's construction


def test_dead_relu_measurement_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
    nn.init.constant_(model[1].bias, -5.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    found = _codes(bnlint.lint(model, torch.randn(32, 16)))
    assert found["BNL403"].evidence.facts["example_batch"]["dead_fraction"] > 0.9
    assert found["BNL403"].evidence.predicted["dead_fraction"] > 0.9
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
