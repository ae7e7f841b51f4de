"""Severities the detection study (bench/studies/detection.py) calibrated: errors only where the
model cannot train as built, and no rule crashes on degenerate weights."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn

import bnlint
from bnlint.config import Config, Optimizer
from bnlint.engine import RULE_FAILED, static_examples
from bnlint.rules import catalog


def _regressor():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 1), nn.ReLU())


def _severity(report, code):
    return next(f.severity for f in report.findings if f.code == code)


def test_final_relu_is_an_error_only_for_targets_it_cannot_predict():
    x = torch.linspace(-3, 3, 64).unsqueeze(1)
    static = Config(probe=False)
    positive = bnlint.lint(_regressor(), x, 3 + torch.sin(x), config=static)
    signed = bnlint.lint(_regressor(), x, torch.sin(x), config=static)
    assert _severity(positive, "BNL401") == "warning"
    assert _severity(signed, "BNL401") == "error"
    assert "50% of them are <= 0" in next(f.message for f in signed.findings
                                          if f.code == "BNL401")


def test_zero_hidden_weights_are_reported_without_a_rule_crash():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    with torch.no_grad():
        for i in (2, 4):
            model[i].weight.zero_()
    report = bnlint.lint(model, torch.randn(32, 8), config=Config(probe=False))
    assert not [n for n in report.notes if n.startswith(RULE_FAILED)]
    assert _severity(report, "BNL303") == "error"


def test_a_crashing_rule_costs_only_its_own_findings(monkeypatch):
    from bnlint.rules import base

    def boom(ctx, rule):
        raise RuntimeError("kaboom")
        yield

    monkeypatch.setitem(base.REGISTRY, "BNL105", boom)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
    report = bnlint.lint(model, torch.randn(8, 4), config=Config(probe=False))
    assert any(n.startswith(f"{RULE_FAILED} BNL105: RuntimeError: kaboom") for n in report.notes)
    assert "BNL101" in {f.code for f in report.findings}


def test_batchnorm_momentum_zero_is_a_warning():
    model = nn.Sequential(nn.Linear(8, 8, bias=False), nn.BatchNorm1d(8, momentum=0.0),
                          nn.ReLU(), nn.Linear(8, 2))
    report = bnlint.lint(model, torch.randn(16, 8), config=Config(probe=False))
    assert _severity(report, "BNL305") == "warning"


def test_lr_far_above_the_ceiling_stays_a_warning_even_if_the_probe_sees_no_rise():
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(20)
                            for m in (nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU())],
                          nn.Linear(32, 4))
    config = Config(probe_steps=3, optimizer=Optimizer("sgd", 0.05, 0.9))
    report = bnlint.lint(model, torch.randn(64, 32), config=config)
    finding = next(f for f in report.findings if f.code == "BNL905")
    bound = finding.evidence.measured["lr_ceiling"]
    assert 0.05 / bound >= 10 and finding.severity == "warning"


def test_adams_lr_bound_is_the_preconditioned_one_and_lalcs_has_none():
    """2(1+momentum)/lambda_max bounds SGD's step; Adam's is preconditioned, so its bound is
    (2+2 beta1)/((1-beta1) lambda_P) after the probe's steps; LALC clips its steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))
    adam = bnlint.lint(model, torch.randn(64, 32),
                       config=Config(probe_steps=2, optimizer=Optimizer("adam", 50.0)))
    finding = next(f for f in adam.findings if f.code == "BNL905")
    assert "of adam ((2+2 beta1)/((1-beta1) lambda_P), beta1 = 0.9" in finding.message
    assert finding.evidence.measured["preconditioned"] and finding.evidence.measured["step"] == 2
    lalc = bnlint.lint(model, torch.randn(64, 32),
                       config=Config(probe_steps=2, optimizer=Optimizer("lalc", 50.0)))
    assert "BNL905" not in {f.code for f in lalc.findings}
    assert lalc.probe.lr_ceiling is None and "lr_ceiling" not in lalc.suggestions
    assert any("lalc clips each tensor's step" in note for note in lalc.probe.notes)
    sgd = bnlint.lint(model, torch.randn(64, 32),
                      config=Config(probe_steps=2, optimizer=Optimizer("sgd", 50.0)))
    finding = next(f for f in sgd.findings if f.code == "BNL905")
    assert "BatchNorm" not in finding.message  # no BatchNorm in this model


@pytest.mark.parametrize("scale", [1e-3, 1e5])
def test_target_scale_message_explains_the_side_it_is_on(scale):
    """Small targets: dying ReLUs (arXiv:2005.06195). Large: loss and gradient scale with them."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    config = Config(probe=False, optimizer=Optimizer("sgd", 0.01, 0.9))
    report = bnlint.lint(model, torch.randn(64, 8), torch.randn(64, 1) * scale, config=config)
    message = next(f.message for f in report.findings if f.code == "BNL402")
    small = scale < 1
    assert ("ReLUs die more easily" in message) == small
    assert ("grow with the targets' variance" in message) == (not small)
    assert ("With momentum" in message) == small


class SqueezeExcite(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.pool, self.fc1, self.act = nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c // 4, 1), nn.ReLU()
        self.fc2 = nn.Conv2d(c // 4, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(self.pool(x)))))


def test_dead_relus_after_pooling_random_inputs_are_not_counted():
    """Pooled N(0,1) images barely differ between samples, so an SE branch's ReLU units are off
    for all of them or none: with synthetic inputs those layers are left out of BNL403."""
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Conv2d(64, 64, 1, bias=False), nn.BatchNorm2d(64), nn.Hardswish(),
                            SqueezeExcite(64)) for _ in range(4)]
    model = nn.Sequential(nn.Conv2d(3, 64, 3, bias=False), *blocks, nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(64, 10))
    x = torch.randn(32, 3, 16, 16)
    config = Config(probe=False, select=["BNL403"])
    as_data = bnlint.lint(model, x, config=config)
    assert [f.code for f in as_data.findings] == ["BNL403"]  # the same batch given as data
    synthetic = bnlint.lint(model, x, config=config, synthetic_inputs=True)
    assert synthetic.findings == []


def test_dead_relus_are_not_judged_from_too_few_distinct_examples():
    """Real examples are correlated, so a unit that fires for 1 input in 10 looks dead on 8 of
    them with probability 0.9^8 = 43%: BNL403 judges the user's examples from 32 distinct ones
    (copies of one example count once) and says in the notes how many it needs."""
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(32, 32), nn.ReLU())],
                          nn.Linear(32, 2))
    config = Config(probe=False, select=["BNL403"])
    assert [f.code for f in bnlint.lint(model, torch.randn(32, 32), config=config).findings] \
        == ["BNL403"]
    few = bnlint.lint(model, torch.randn(8, 32), config=config)
    copies = bnlint.lint(model, torch.randn(2, 32).repeat(16, 1), config=config)
    for report, distinct in ((few, 8), (copies, 2)):
        assert report.findings == []
        assert any(f"has {distinct} distinct example(s), and dead units need at least 32" in n
                   for n in report.notes), report.notes
    random = bnlint.lint(model, torch.randn(8, 32), config=config, synthetic_inputs=True)
    assert [f.code for f in random.findings] == ["BNL403"]  # random inputs: 2^-8 by chance


def test_the_static_pass_runs_on_as_many_inferred_examples_as_its_rules_need():
    """Of random inputs bnlint inferred, the static forward (at 224 px, most of a lint) runs on
    the first ``min_batch`` of BNL403, the one rule that reads its activations, or on 2 when
    BNL403 is off; given inputs all run, and the report lists the inputs as they were."""
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(32, 32), nn.ReLU())],
                          nn.Linear(32, 2))
    x = torch.randn(16, 32)
    config = Config(probe=False, select=["BNL403"])
    inferred = bnlint.lint(model, x, config=config, synthetic_inputs=True, inferred_inputs=True)
    given = bnlint.lint(model, x, config=config, synthetic_inputs=True)
    for report, batch in ((inferred, 8), (given, 16)):
        assert [f.code for f in report.findings] == ["BNL403"]
        assert report.findings[0].evidence.facts["example_batch"]["batch"] == batch
        assert f"On the example batch ({batch} examples)" in report.findings[0].message
        assert report.inputs.shapes == ((16, 32),)
    rules = catalog.load(None)
    off = Config(probe=False, ignore=["BNL403"])
    assert static_examples((x,), rules, off)[0].shape == (2, 32)
    assert static_examples((x,), rules, Config(thresholds={"BNL403": {"min_batch": 12}}))[0] \
        .shape == (12, 32)


def _lint_targets(model, x, y, optimizer):
    return [f for f in bnlint.lint(model, x, y, config=Config(probe=False, optimizer=optimizer))
            .findings if f.code == "BNL402"]


def test_large_targets_under_adam_are_not_the_sgd_gradient_warning():
    """Adam's step is about lr whatever the gradient (arXiv:1412.6980 §2.1): the SGD reading of
    large targets does not hold, and a ReLU net (unbounded features) gets no count either."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    x = torch.randn(64, 8)
    assert not _lint_targets(model, x, x[:, :1] * 1000, Optimizer("adam", 1e-3))
    sgd = _lint_targets(model, x, x[:, :1] * 1000, Optimizer("sgd", 1e-3, 0.9))
    assert sgd[0].severity == "warning" and "the step grows with the gradient" in sgd[0].message


def test_adam_step_count_to_reach_large_targets_holds_in_training():
    """Behind tanh features the output is at most sum |w| + |b|, which Adam grows by about lr
    per weight and step: after half the counted steps the output still falls short."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 1))
    x = torch.randn(512, 8)
    y = x[:, :1] * 50 + 100
    found = _lint_targets(model, x[:128], y[:128], Optimizer("adam", 1e-3))
    assert found and found[0].severity == "info"
    count = float(re.search(r"needs at least ([0-9.e+]+) steps", found[0].message).group(1))
    assert 1000 < count < 3000  # (RMS 112 - sum 4) / (1e-3 x 65)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(int(count / 2)):
        batch = torch.randint(0, 512, (64,), generator=gen)
        loss = (model(x[batch]) - y[batch]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert float(model(x).abs().max()) < float(y.pow(2).mean().sqrt())


@pytest.mark.parametrize("configured", [True, False])
@pytest.mark.parametrize("scale, reading", [(1000, "up from"), (3000, "at or above 70%")])
def test_units_dying_during_the_probe_warn_only_at_the_configured_lr(configured, scale,
                                                                     reading):
    """BNL903 on units the probe's steps kill: inputs of scale 1000 make SGD at lr 0.01 kill
    units of the second ReLU layer (2% -> 61%, its rise), of scale 3000 past 70% (its level
    after the steps); when the config names no optimizer the probe ran that lr as its default,
    which the user may not train with, so the finding is info (torchvision's squeezenet1_1 at
    defaults: a squeeze layer 83% dead after 19 steps on random images)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 2))
    torch.manual_seed(0)
    opt = Optimizer("sgd", 0.01, 0.9) if configured else None
    report = bnlint.lint(model, torch.randn(32, 8) * scale,
                         config=Config(optimizer=opt, select=["BNL903"]))
    found = [f for f in report.findings if f.code == "BNL903"]
    assert len(found) == 1 and reading in found[0].message and "after 20" in found[0].message
    assert found[0].severity == ("warning" if configured else "info")
    assert ("its default" in found[0].message) == (not configured)


def test_divergence_at_the_probes_default_lr_over_its_ceiling_is_info():
    """A loss that explodes under the probe's default lr, above the stable-step bound it
    measured, is the lr's (a GAN discriminator trained with Adam at 2e-4 diverges under SGD at
    0.01): info that says so. The same run at a configured lr is the user's: an error."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
    x = 10 * torch.randn(64, 32)
    default = bnlint.lint(model, x, config=Config(probe_steps=6))
    finding = next(f for f in default.findings if f.code == "BNL904")
    assert finding.severity == "info"
    assert "the run is diverging at the probe's default lr 0.01" in finding.message
    assert "give --optimizer" in finding.message
    configured = bnlint.lint(model, x,
                             config=Config(probe_steps=6, optimizer=Optimizer("sgd", 0.01, 0.9)))
    assert _severity(configured, "BNL904") == "error"


class _RareUnits(nn.Module):
    """256 ReLU units that each fire on about 10% of inputs (pre-activation N(-1.3, 1)): off
    on all of 8 examples with probability 0.9^8 = 43%, on all of 64 with 0.1%. Alive."""

    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(16, 256), nn.Linear(256, 2)
        nn.init.normal_(self.fc.weight, std=0.25)
        nn.init.constant_(self.fc.bias, -1.3)

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))


def test_dead_relus_the_probes_larger_batch_finds_alive_are_info():
    """Units off on the static forward's 8 random examples but on for some of the probe's 64
    fresh ones fire rarely, not never (kuangliu's CIFAR LeNet: 28% off on 8, 17% on 64): the
    probe's share of the same layers' units is BNL403's measurement, and below the threshold
    it lowers the warning to info."""
    torch.manual_seed(0)
    x = torch.randn(8, 16)
    static = bnlint.lint(_RareUnits(), x, config=Config(probe=False, select=["BNL403"]),
                         synthetic_inputs=True)
    assert _severity(static, "BNL403") == "warning"
    probed = bnlint.lint(_RareUnits(), x, synthetic_inputs=True,
                         config=Config(probe_steps=0, select=["BNL403"]))
    finding = next(f for f in probed.findings if f.code == "BNL403")
    assert probed.probe.batch == 64 and finding.severity == "info"
    assert finding.evidence.measured["dead_fraction"] < 0.25 <= \
        finding.evidence.facts["example_batch"]["dead_fraction"]
    assert finding.evidence.verdict.lowered_from == "warning"
    assert "on the example batch, " in finding.text() and "lowered from warning to info" in \
        finding.text()
