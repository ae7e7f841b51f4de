"""Config files ([tool.bnlint], .bnlint.yaml), CLI overrides, and in-code suppression."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from conftest import CLI_ENV, ROOT, run_cli

MODEL = """
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3){conv_comment}
            self.bn = nn.BatchNorm2d(8)
            self.drop = nn.Dropout(0.2){drop_comment}
            self.bn2 = nn.BatchNorm2d(8)

        def forward(self, x):
            return self.bn2(self.drop(self.bn(self.conv(x))))
"""


def _codes(proc):
    assert proc.returncode in (0, 1), proc.stderr
    return sorted(f["code"] for m in json.loads(proc.stdout)["models"] for f in m["findings"])


def _model(write_model, conv_comment="", drop_comment=""):
    return write_model(MODEL.format(conv_comment=conv_comment, drop_comment=drop_comment))


def test_defaults_find_both(write_model):
    path = _model(write_model)
    assert _codes(run_cli(path, "--format", "json", "--no-probe")) == ["BNL101", "BNL102"]


def test_pyproject_select_and_cli_override(tmp_path, write_model):
    _model(write_model)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.bnlint]\nselect = ["BNL102"]\nformat = "json"\nprobe = false\n')
    proc = run_cli("model.py", cwd=tmp_path)
    assert _codes(proc) == ["BNL102"] and proc.returncode == 0  # info is below fail-on warning
    assert _codes(run_cli("model.py", "--select", "BNL10", cwd=tmp_path)) == ["BNL101", "BNL102"]


def test_yaml_config_ignore_prefix_and_fail_on(tmp_path, write_model):
    _model(write_model)
    (tmp_path / ".bnlint.yaml").write_text(
        "ignore: [BNL101]\nfail-on: info\nformat: json\nprobe: false\n")
    proc = run_cli("model.py", cwd=tmp_path)
    assert _codes(proc) == ["BNL102"] and proc.returncode == 1


def test_config_found_from_a_subfolder(tmp_path, write_model):
    _model(write_model)
    (tmp_path / ".bnlint.yaml").write_text("select: [BNL101]\nformat: json\nprobe: false\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    assert _codes(run_cli("../model.py", cwd=sub)) == ["BNL101"]


def test_ignore_comment_on_the_building_line(write_model):
    path = _model(write_model, conv_comment="  # bnlint: ignore[BNL102]")
    assert _codes(run_cli(path, "--format", "json", "--no-probe")) == ["BNL101"]


def test_ignore_comment_for_another_code_does_not_suppress(write_model):
    path = _model(write_model, conv_comment="  # bnlint: ignore[BNL101]")
    assert _codes(run_cli(path, "--format", "json", "--no-probe")) == ["BNL101", "BNL102"]


def test_bare_ignore_suppresses_every_code_on_its_line(write_model):
    path = _model(write_model, drop_comment="  # bnlint: ignore")
    assert _codes(run_cli(path, "--format", "json", "--no-probe")) == ["BNL102"]


def test_explain_and_list_rules():
    proc = run_cli("--explain", "bnl101")
    assert proc.returncode == 0
    assert proc.stdout.startswith("BNL101 (dropout-before-batchnorm)")
    assert "arXiv:1801.05134" in proc.stdout
    listed = run_cli("--list-rules").stdout.splitlines()
    assert any(line.startswith("BNL102  bias-before-batchnorm") for line in listed)


def test_values_the_cli_and_config_both_accept(tmp_path, write_model):
    _model(write_model)
    (tmp_path / ".bnlint.yaml").write_text(
        "probe-steps: 0\nprobe-budget: 5\nformat: json\nselect: [BNL1]\n"
        "thresholds: {BNL201: {ratio-warning: 50}}\noptimizer: {name: Adam, lr: 0.001}\n")
    report = json.loads(run_cli("model.py", cwd=tmp_path).stdout)
    assert report["models"][0]["probe"]["steps"] == 0
    assert report["models"][0]["probe"]["optimizer"]["name"] == "adam"


@pytest.mark.parametrize("where", ["config", "cli"])
def test_any_torch_optimizer_with_its_arguments_runs_in_the_probe(tmp_path, write_model, where):
    _model(write_model)
    (tmp_path / ".bnlint.yaml").write_text(
        "probe-steps: 2\nformat: json\nwarmup-steps: 100\n" + (
            "optimizer: {name: RMSprop, lr: 0.001, alpha: 0.9, momentum: 0.5, centered: true}\n"
            if where == "config" else ""))
    args = ["--optimizer", "rmsprop,lr=1e-3,alpha=0.9,momentum=0.5,centered=true"] \
        if where == "cli" else []
    report = json.loads(run_cli("model.py", *args, cwd=tmp_path).stdout)
    probed = report["models"][0]["probe"]["optimizer"]
    assert probed == {"name": "rmsprop", "lr": 0.001, "momentum": 0.5,
                      "args": {"alpha": 0.9, "centered": True}}
    ceiling = report["models"][0]["probe"]["lr_ceiling"]
    assert ceiling["preconditioned"] and ceiling["formula"] == "2(1+m)/lambda_P, momentum m = 0.5"


def test_broken_pyproject_that_is_not_ours_is_skipped(tmp_path, write_model):
    _model(write_model)
    (tmp_path / ".bnlint.yaml").write_text("select: [BNL101]\nformat: json\nprobe: false\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "pyproject.toml").write_text("[project\nname = 'x'\n")
    assert _codes(run_cli("../model.py", cwd=sub)) == ["BNL101"]


def test_output_file_honours_the_umask(tmp_path, write_model):
    path = _model(write_model)
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "bnlint", path, "--no-probe", "--format", "json",
                           "--output-file", out], env=CLI_ENV, cwd=ROOT, capture_output=True,
                          text=True, preexec_fn=lambda: os.umask(0o027))
    assert proc.returncode == 1, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    out.chmod(0o604)  # an existing report keeps its mode
    run_cli(path, "--no-probe", "--format", "json", "--output-file", out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o604


def test_plot_file_honours_the_umask(tmp_path, write_model):
    pytest.importorskip("matplotlib")
    path = _model(write_model)
    out = tmp_path / "probe.png"
    proc = subprocess.run([sys.executable, "-m", "bnlint", path, "--probe-steps", "1",
                           "--plot", out], env=CLI_ENV, cwd=ROOT, capture_output=True,
                          text=True, preexec_fn=lambda: os.umask(0o027))
    assert proc.returncode in (0, 1), proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bnlint-")] == []


def test_help_shows_the_defaults_the_config_and_the_api_use():
    """Each default lives in config.py: the CLI's help, Config and ProbeOptions show the same."""
    from bnlint import config
    from bnlint.probing.run import ProbeOptions
    proc = run_cli("--help")
    help_text = " ".join(proc.stdout.split())
    for option, value in (("--probe-batch", config.PROBE_BATCH),
                          ("--probe-steps", config.PROBE_STEPS),
                          ("--probe-budget", config.PROBE_BUDGET),
                          ("--timeout", config.TIMEOUT)):
        shown = help_text.split(option, 1)[1].split("--", 1)[0]
        assert f"[default: {value}" in shown, (option, shown)
    shown = help_text.split("--probe-budget", 1)[1].split("--", 1)[0]
    assert f"at a fixed {config.PROBE_FLOP_RATE:g} FLOP/s" in shown
    options, cfg = ProbeOptions(), config.Config()
    assert (options.batch, options.steps, options.budget, options.device) == \
        (cfg.probe_batch, cfg.probe_steps, cfg.probe_budget, cfg.device)
    assert (options.flop_rate, options.hvps) == (config.PROBE_FLOP_RATE, config.PROBE_HVPS)
