"""Robustness: random layer stacks from bench/studies/robustness.py (MLPs and CNNs of depth
1..60; BatchNorm before/after/none; ReLU, tanh, GELU, leaky ReLU as modules or functions;
dropout; residual adds; zeroed, constant, tiny, huge and NaN/Inf weights; fx-traceable or not)
must lint without raising, give a report that JSON round-trips, and leave no NaN/Inf
unreported.

``bnlint.lint`` may raise ``InputError`` only for example inputs the model itself cannot run
(the CLI's exit 2, "bad input"): a generated model with its own example inputs is valid and
must never get one, whatever its weights; the same model given inputs of the wrong width must
get exactly that error, never another exception.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from torch import nn

import bnlint
from bench.studies import robustness as rb
from bnlint.config import Config
from bnlint.errors import InputError

# No shrinking: one lint takes up to a second, and a shrink runs hundreds. A failure prints the
# whole spec; rb.build(spec) and rb.model_source(spec) rebuild its model. Derandomized, so CI
# runs the same examples every time (bench/studies/robustness.py draws fresh ones).
SETTINGS = dict(deadline=None, phases=[Phase.explicit, Phase.generate], derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@st.composite
def specs(draw, max_depth: int = rb.MAX_DEPTH, poison_percent: int | None = None):
    """A random model spec, drawn by hypothesis through the bench's generator."""
    spec = rb.generate(rb.Chooser(lambda lo, hi: draw(st.integers(lo, hi))), max_depth)
    if poison_percent is not None and spec.poison is None and \
            draw(st.integers(0, 99)) < poison_percent:
        spec.poison = (draw(st.integers(0, spec.depth - 1)), draw(st.sampled_from(("nan", "inf"))))
    return spec


def lint(spec: rb.Spec, probe: bool) -> tuple[nn.Module, bnlint.ModelReport]:
    """Lint the spec's model (a short probe when ``probe``): the model and its public report."""
    model = rb.build(spec)
    config = rb.lint_config(probe, steps=2, budget=0.5)
    return model, bnlint.lint(model, rb.example_inputs(spec), config=config)


def assert_sound(model: nn.Module, report: bnlint.ModelReport) -> dict:
    """No rule crashed, the report round-trips through JSON, its findings are complete and
    located (the model's class has a source file), every NaN/Inf in the weights or the
    measurements is reported, and bnlint makes no NaN/Inf prediction. Returns the public
    report."""
    public, raw = report.public(), rb.measured(report)
    assert rb.note_problems(public) == []
    assert rb.json_problems(public) == []
    assert rb.finding_problems(public, located=True) == []
    assert rb.unreported_nonfinite(raw, model) == []
    assert rb.nonfinite_predictions(raw) == []
    return public


@settings(max_examples=50, **SETTINGS)
@given(specs())
def test_static_lint_never_raises_and_reports_json(spec):
    model, report = lint(spec, probe=False)
    assert report.trace["method"] == ("hooks" if spec.branch_at is not None else "fx")
    assert_sound(model, report)


@settings(max_examples=25, **SETTINGS)
@given(specs(max_depth=30))
def test_probed_lint_leaves_no_nan_unreported(spec):
    model, report = lint(spec, probe=True)
    assert report.probe is not None, report.notes
    assert_sound(model, report)


@settings(max_examples=10, **SETTINGS)
@given(specs(max_depth=12, poison_percent=100))
def test_poisoned_weight_is_reported(spec):
    """A NaN/Inf in one weight: BNL304 names its layer, and the probe sees it (BNL904)."""
    model, report = lint(spec, probe=True)
    public = assert_sound(model, report)
    flagged = {m for code, m in _expanded(public["findings"]) if code == "BNL304"}
    assert flagged == {f"b{spec.poison[0]}_affine"}


def test_all_finite_reads_elements_not_their_sum():
    """The rules' test for NaN/Inf weights: a sum that overflows (float16's largest value,
    twice) is not a non-finite element; a NaN, an inf or a -inf among finite values is."""
    from bnlint.model.stats import all_finite

    big = torch.full((2, 3), 65504.0, dtype=torch.float16)
    assert torch.isinf(big.sum()) and all_finite(big)
    assert all_finite(torch.zeros(0)) and all_finite(torch.randn(4, 4))
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.randn(4, 4)
        x[2, 1] = bad
        assert not all_finite(x)
        assert not all_finite(nn.Parameter(x))


def test_finite_weights_whose_sum_overflows_are_not_non_finite():
    """BNL304 counts NaN/Inf elements, not a sum: finite float32 weights whose sum overflows
    (to inf) are not flagged; one inf beside them is, and counted alone."""
    def model(poison: bool) -> nn.Module:
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        with torch.no_grad():
            net[0].weight.fill_(3e38)  # finite in float32; the sum of 32 of them overflows
            if poison:
                net[0].weight[0, 0] = float("inf")
        return net

    def non_finite(poison: bool) -> list:
        report = bnlint.lint(model(poison), torch.randn(8, 4), config=Config(probe=False))
        return [f for f in report.findings if f.code == "BNL304"]

    assert not non_finite(False)
    found = non_finite(True)
    assert len(found) == 1 and found[0].module == "0", found
    assert "holds 1 NaN/Inf values in weight" in found[0].message, found[0].message


@settings(max_examples=15, **SETTINGS)
@given(specs(max_depth=12), st.integers(1, 3))
def test_inputs_of_the_wrong_width_are_an_input_error(spec, extra):
    model = rb.build(spec)
    shape = list(rb.input_shape(spec))
    shape[1] += extra
    with pytest.raises(InputError, match="forward pass raised"):
        bnlint.lint(model, torch.randn(shape), config=Config(probe=False))


def _expanded(findings: list[dict]) -> set[tuple[str, str | None]]:
    """(code, module) of every finding, one per module of a merged same-line finding."""
    return {(f["code"], m) for f in findings
            for m in f["evidence"].get("modules") or [f["module"]]}


@settings(max_examples=3, **SETTINGS)
@given(specs(max_depth=10))
def test_cli_json_report_of_a_generated_file(spec):
    """The generated file linted by ``python -m bnlint FILE --format json``: a parseable
    report of the one model, every finding located in the file, the same static findings as
    the API on the same model."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.py"
        path.write_text(rb.model_source(spec))
        proc = run_cli(path, "--format", "json", "--probe-steps", "1", "--probe-budget", "0.5",
                       "--probe-batch", "8")
        lines = len(path.read_text().splitlines())
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert report["errors"] == [] and [m["name"] for m in report["models"]] == ["Generated"]
    (model,) = report["models"]
    assert model["probe"] is not None and rb.note_problems(model) == []
    for f in model["findings"]:
        assert f["path"] == str(path) and 1 <= f["line"] <= lines, f
    _, api = lint(spec, probe=False)
    static = {x for x in _expanded(model["findings"]) if not x[0].startswith("BNL9")}
    assert static == _expanded(api.public()["findings"])


# ------------------------------------------------------ regressions (bugs this file found)


def relu_mlp(*layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), *layers)


def zero_head() -> nn.Sequential:
    model = relu_mlp(nn.Linear(8, 2))
    nn.init.zeros_(model[-1].weight)
    return model


def zero_first() -> nn.Sequential:
    model = relu_mlp(nn.Linear(8, 2))
    nn.init.zeros_(model[0].weight)
    nn.init.zeros_(model[0].bias)
    return model


class ResidualOnZero(nn.Module):
    """Two residual blocks ending in BatchNorm, fed by a layer whose output is 0."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(4, 4, bias=False)
        nn.init.zeros_(self.stem.weight)
        self.fc1, self.bn1 = nn.Linear(4, 4), nn.BatchNorm1d(4)
        self.fc2, self.bn2 = nn.Linear(4, 4), nn.BatchNorm1d(4)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.bn1(self.fc1(x))
        return x + self.bn2(self.fc2(x))


@pytest.mark.parametrize("code, make, width", [
    ("BNL202", ResidualOnZero, 4), ("BNL204", zero_head, 8), ("BNL302", zero_head, 8),
    ("BNL302", zero_first, 8)])
def test_zero_predictions_do_not_crash_a_rule(code, make, width):
    """BNL202/204/302 divided by a predicted RMS or gradient of 0 behind a zeroed layer."""
    report = bnlint.lint(make(), torch.randn(4, width), config=Config(probe=False, select=[code]))
    assert rb.note_problems(report.public()) == []


def one_element_weight() -> nn.Sequential:
    return nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 2))


def infinite_weight() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight[0, 0] = float("inf")
    return model


def one_channel_stack() -> nn.Sequential:
    """20 conv layers of one 1x1 weight each (found by the hypothesis test above)."""
    layers = [m for _ in range(20) for m in (nn.Conv2d(1, 1, 1), nn.ReLU())]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(16, 2))


def test_stack_init_rule_reads_one_element_weights():
    """BNL302 took Var(w) of 1-element weights: NaN, and 'Var(w) = nan/fan_in' in its message."""
    torch.manual_seed(0)
    report = bnlint.lint(one_channel_stack(), torch.randn(8, 1, 4, 4),
                         config=Config(probe=False, select=["BNL302"]))
    assert [f.code for f in report.findings] == ["BNL302"]
    assert rb.finding_problems(report.public(), located=False) == []


class ZeroWidth(nn.Module):
    def __init__(self):
        super().__init__()
        self.empty, self.fc = nn.Linear(8, 0), nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(x) + self.empty(x).sum()


def test_zero_width_layer_is_linted_and_probed():
    """A 0-wide Linear crashed the prediction (fan_in from weight[0]) and the probe saw
    NaN in its empty output's statistics."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: initialising 0-element tensors
        model = ZeroWidth()
    report = bnlint.lint(model, torch.randn(8, 8), config=Config(probe_steps=2))
    assert rb.note_problems(report.public()) == []
    assert report.probe is not None and [f.code for f in report.findings] == []


@pytest.mark.parametrize("make", [one_element_weight, infinite_weight])
def test_weight_scale_rule_never_reports_a_nan_std(make):
    """BNL301 took the std of a 1-element weight, or of one holding Inf: 'std nan ... nanx'."""
    report = bnlint.lint(make(), torch.randn(4, 1), config=Config(probe=False, select=["BNL301"]))
    assert rb.finding_problems(report.public(), located=False) == []
    assert rb.nonfinite_predictions(rb.measured(report)) == []


def test_nan_lr_ceiling_is_not_reported_as_a_number():
    """The power iteration returned NaN for huge weights and `value <= 0` let it through."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.mul_(1e20)
    report = bnlint.lint(model, torch.randn(8, 4), config=Config(probe_steps=1))
    assert rb.unreported_nonfinite(rb.measured(report), model) == []


def infinite_activation() -> tuple[nn.Module, torch.Tensor]:
    """A layer whose output is +-inf, which tanh maps back to +-1: the loss stays finite."""
    model = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.fill_(1e38)
    return model, 10 * torch.randn(8, 1)


def infinite_activation_gradient() -> tuple[nn.Module, torch.Tensor]:
    """Dead ReLUs before a layer of weights 1e30: the gradient RMS at the ReLU overflows."""
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].bias.fill_(-100.0)
        model[2].weight.mul_(1e30)
    return model, torch.randn(8, 4)


@pytest.mark.parametrize("make", [infinite_activation, infinite_activation_gradient])
def test_nonfinite_layer_statistics_are_reported(make):
    """The probe recorded NaN/Inf layer statistics without a finding when the loss and weight
    gradients stayed finite."""
    torch.manual_seed(0)
    model, x = make()
    report = bnlint.lint(model, x, config=Config(probe_steps=1))
    assert rb.unreported_nonfinite(rb.measured(report), model) == []


def test_backward_overflow_names_the_gradient_not_module_none():
    """Only the backward overflowed (finite loss 1e29): BNL904 blamed 'the output of None'."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3))
    with torch.no_grad():
        model[2].weight.mul_(1e30)
    report = bnlint.lint(model, torch.randn(8, 4), config=Config(probe_steps=1))
    assert rb.finding_problems(report.public(), located=False) == []
    assert any(f.code == "BNL904" for f in report.findings)


def test_gradient_prediction_for_huge_weights_is_null_not_nan():
    """Weights around 1e20 gave NaN predicted gradients in the report."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.mul_(1e20)
    report = bnlint.lint(model, torch.randn(4, 4), config=Config(probe_steps=1))
    assert rb.nonfinite_predictions(rb.measured(report)) == []


def test_warmup_suggestion_when_the_first_ratio_is_unmeasured():
    """suggest.py formatted probe.grad_ratio (None when the last layer's gradient is 0 at
    init) for a temporal explosion: TypeError."""
    from bnlint.probing.advice import suggestions
    result = bnlint.probe(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)),
                          torch.randn(8, 4), steps=2)
    history = tuple(dataclasses.replace(h, grad_ratio=ratio)
                    for h, ratio in zip(result.history, (None, 100.0, 1.0)))
    result = dataclasses.replace(result, grad_ratio=None, history=history)  # as measured there
    advice = suggestions(result, [], Config(), threshold=70.0)
    assert advice["warmup"]["steps"] == 2 and "fell from 100" in advice["warmup"]["source"]
    # a first layer a norm reads: the fall is its own weight's growth, no warm-up is suggested
    assert "warmup" not in suggestions(result, [], Config(), threshold=70.0,
                                       first_normalised=True)


class NanWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)
        with torch.no_grad():
            self.fc.weight[0, 0] = float("nan")

    def forward(self, x):
        return self.fc(x)


def test_json_report_holds_no_nan_literals():
    """NaN losses and statistics went into the JSON as NaN, which is not JSON (RFC 8259)."""
    report = bnlint.lint(NanWeight(), torch.randn(4, 8), config=Config(probe_steps=1))
    json.dumps(report.public(), allow_nan=False)


def _reject(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


def test_cli_json_is_strict_json(write_model):
    path = write_model("import torch\nfrom torch import nn\n\n\n" + inspect.getsource(NanWeight))
    proc = run_cli(path, "--format", "json", "--probe-steps", "1")
    assert proc.returncode == 1, proc.stderr
    json.loads(proc.stdout, parse_constant=_reject)


def test_an_overflowing_measurement_confirms_nothing():
    """bench/studies/robustness.py (seed 0, model 3): the probe's chain ratio overflowed to inf and
    BNL201's message said 'measured grad_ratio = inf ... confirmed'."""
    spec = rb.bench_spec(0, 3)
    outcome = rb.lint_one(3, spec, rb.lint_config(probe=True, steps=2, budget=30))
    assert not outcome.error and outcome.problems["finding"] == []
    assert "BNL201" in outcome.codes
