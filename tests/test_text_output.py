"""The text report line by line: a clean model, a finding the probe confirmed, and a probe cut
by its budget. Numbers are matched by pattern (they are the model's, not the test's); no
wall-clock figure is asserted beyond its shape."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import re
import subprocess
import sys

from conftest import CLI_ENV, ROOT, run_cli

from bnlint.findings import ModelReport
from bnlint.measurement import LrCeiling, ProbeResult, ProbeStep
from bnlint.output import text

NUM = r"-?\d[\d.]*(?:e[+-]\d+)?"  # a number as the report prints it (%.3g)
SECONDS = r"\d+\.\d s"
SETTINGS = (r"Probed 1 model on cpu with SGD lr 0\.01, momentum 0\.9 within a budget of 30 s "
            r"\(3e\+11 FLOPs at 1e\+10 FLOP/s\); synthetic targets: random class labels, "
            r"cross-entropy\.")

CLEAN = """
    import torch.nn as nn

    def mlp():
        return nn.Sequential(nn.Linear(16, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(),
                             nn.Linear(32, 4))
"""

# 30 plain Linear -> BatchNorm -> ReLU blocks: BNL201 predicts the explosion, the probe measures it.
CHAIN = """
    import torch.nn as nn

    def chain():
        return nn.Sequential(*[m for _ in range(30)
                               for m in (nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU())],
                             nn.Linear(32, 4))

    def example_inputs():
        import torch
        return (torch.randn(64, 32),)
"""


def _lines(proc) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "\x1b[" not in proc.stdout  # no colour off a terminal
    return proc.stdout.splitlines()


def test_clean_model_prints_its_probe_line_named_by_file_and_model(write_model):
    path = write_model(CLEAN)
    proc = run_cli(path, "--probe-steps", "2")
    assert proc.returncode == 0, proc.stderr
    probe, settings, closing = _lines(proc)
    assert re.fullmatch(
        rf"  {re.escape(str(path))}::mlp  probe \(batch 64, 2 steps, {SECONDS}\): "
        rf"gradient ratio first/last layer \(0/3\) {NUM}x -> {NUM}x; dead ReLU \d+% -> \d+%; "
        rf"loss {NUM} -> {NUM}; lr ceiling {NUM} > lr 0\.01", probe), probe
    assert re.fullmatch(SETTINGS, settings), settings
    assert closing == "All clean: 1 model from 1 file, no findings."


def test_confirmed_finding_names_its_span_and_the_probe_line_follows(write_model):
    path = write_model(CHAIN)
    proc = run_cli(path, "--probe-steps", "2", "--select", "BNL201,BNL901")
    assert proc.returncode == 1, proc.stderr
    bnl201, bnl901, probe, *under, settings, closing = _lines(proc)
    where = re.escape(str(path)) + r":\d+:\d+:"
    chain = re.fullmatch(
        rf"{where} BNL201 warning: 30 plain Linear -> BatchNorm -> ReLU blocks, 0 to 87, .*"
        rf"First/last weight-gradient ratio over 0\.\.87 at initialisation: ({NUM})x "
        rf"predicted, ({NUM})x measured on cpu, above the threshold 70: confirmed\.", bnl201)
    assert chain, bnl201
    assert float(chain[1]) > 70 and float(chain[2]) > 70
    assert re.fullmatch(
        rf"{where} BNL901 (warning|error): Measured on cpu: the weight gradient of 0 is {NUM}x "
        rf"that of 90 (at training step 1|after 2 training steps) \(it was {NUM}x at "
        rf"initialisation\); after 2 training steps it was still {NUM}x while the mean sample "
        rf"correlation went {NUM} -> {NUM} \(Paik & Choi, arXiv:2304\.11692\)\.", bnl901), bnl901
    # The probe line's ratio spans the first and last affine layers, not BNL201's chain.
    assert re.fullmatch(
        rf"  {re.escape(str(path))}::chain  probe \(batch 64, 2 steps, {SECONDS}\): "
        rf"gradient ratio first/last layer \(0/90\) {NUM}x -> {NUM}x; dead ReLU \d+% -> \d+%; "
        rf"loss {NUM} -> {NUM}; lr ceiling {NUM} < lr 0\.01: BNL905 deselected or suppressed",
        probe), probe
    assert under[0].startswith("    suggest optimizer: ") and "LALC(" in under[-1], under
    assert re.fullmatch(SETTINGS, settings), settings
    assert closing.startswith("Found 2 findings (")


def test_probe_cut_by_its_budget_says_so_and_claims_nothing_of_steps_not_run(write_model):
    path = write_model(CHAIN)
    args = (path, "--probe-budget", "0.001", "--select", "BNL201,BNL901,BNL905")
    lines = _lines(run_cli(*args))
    # Its first layer is BatchNorm-fed: BNL901 does not judge the ratio at initialisation alone
    assert not any(re.search(r":\d+:\d+: BNL901 ", line) for line in lines), lines
    assert any(line.startswith("    note: BNL901 not judged: the first/last gradient ratio was ")
               and line.endswith("shows after a training step, and the probe measured none")
               for line in lines), lines
    probe = next(i for i, line in enumerate(lines) if "::chain  probe" in line)
    assert re.fullmatch(
        rf"  {re.escape(str(path))}::chain  probe \(batch \d+ of 64, 0 of \d+ steps?, "
        rf"{SECONDS}\): gradient ratio first/last layer \(0/90\) {NUM}x; dead ReLU \d+%; "
        rf"loss {NUM}", lines[probe]), lines[probe]
    notes = [line for line in lines[probe + 1:] if line.startswith("    ")]
    assert any(re.fullmatch(r"    note: the probe budget of 0\.001 s ran out after 0 of \d+ "
                            r"training steps.*", n) for n in notes), notes
    assert any(n.startswith("    note: the probe's trajectory ") and "BNL901" in n
               for n in notes), notes
    assert "persistent" not in "\n".join(lines)
    report = json.loads(run_cli(*args, "--format", "json").stdout)
    model = report["models"][0]
    assert model["probe"]["steps"] == 0 and model["probe"]["explosion"] == "unknown"


def _on_a_terminal(path, env: dict[str, str]) -> str:
    """The CLI's stdout when it is a terminal (a pseudo-terminal here)."""
    leader, follower = pty.openpty()
    proc = subprocess.run([sys.executable, "-m", "bnlint", str(path), "--no-probe"], cwd=ROOT,
                          stdout=follower, stderr=subprocess.PIPE, env={**CLI_ENV, **env},
                          timeout=300)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr
    return out.decode()


def test_colour_only_on_a_terminal_and_never_with_no_color(write_model):
    path = write_model(CLEAN.replace("bias=False", "bias=True"))  # BNL102: one info finding
    assert "\x1b[" in _on_a_terminal(path, {"NO_COLOR": ""})  # empty: not set (no-color.org)
    plain = _on_a_terminal(path, {"NO_COLOR": "1"})
    assert "BNL102" in plain and "\x1b[" not in plain


def _probed(ceiling: LrCeiling, findings=()) -> ModelReport:
    """A model whose probe ran two SGD steps at lr 0.01 and estimated ``ceiling``."""
    steps = tuple(ProbeStep(i, 2.3 - 0.1 * i, 1.5, 0.0, 0.1) for i in range(3))
    probe = ProbeResult(device="cpu", batch=64, steps=2, seconds=0.5, grad_ratio=1.5,
                        act_grad_ratio=1.0, dead_fraction=0.0, nan=False,
                        first_nonfinite=None, layers=(), history=steps, lr_ceiling=ceiling,
                        loss="synthetic targets: random class labels, cross-entropy",
                        optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9},
                        first_module="fc1", last_module="fc2")
    return ModelReport("net", "net.py", 1, {}, list(findings), probe)


def _ceiling(lambda_max: float, **measured) -> LrCeiling:
    """SGD with heavy-ball momentum 0.9: the ceiling 3.8 / lambda_max."""
    return LrCeiling(lambda_max=lambda_max, factor=3.8, preconditioned=False, step=0,
                     formula="2(1+m)/((1-d) lambda_max), heavy-ball momentum m = 0.9",
                     **measured)


def test_an_unconverged_lr_ceiling_is_a_range_from_the_ritz_value_and_its_residual():
    # lambda = 1000 +- 250 after 10 products: the ceiling 3.8/lambda spans 3.8/1250 .. 3.8/1000
    ceiling = _ceiling(1000.0, iterations=10, converged=False, configured_lr=0.01, residual=250.0)
    line = text.probe_line(_probed(ceiling))
    assert "; lr ceiling 0.003..0.0038 < lr 0.01: BNL905 deselected or suppressed (Lanczos " \
           "unconverged after 10 products)" in line, line
    converged = _ceiling(1000.0, iterations=6, converged=True, configured_lr=0.01, residual=1.0)
    assert "; lr ceiling 0.0038 < lr 0.01: BNL905 deselected or suppressed;" in \
        text.probe_line(_probed(converged))
    around = _ceiling(100.0, iterations=10, converged=False, configured_lr=0.01, residual=900.0)
    assert "; lr ceiling 0.0038..0.038 around lr 0.01 (Lanczos" in text.probe_line(
        _probed(around))


def test_a_ratio_the_probe_could_not_take_says_why():
    ceiling = _ceiling(10.0, iterations=6, converged=True, configured_lr=0.01)
    model = _probed(ceiling)
    history = model.probe.history
    model.probe = dataclasses.replace(model.probe, history=(
        *history[:-1], dataclasses.replace(history[-1], grad_ratio=None)))
    assert ": gradient ratio first/last layer (fc1/fc2) 1.5x -> n/a (the last layer's weight " \
           "gradient was 0 or not finite); " in text.probe_line(model)
