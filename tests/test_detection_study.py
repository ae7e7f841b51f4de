"""The detection study's bookkeeping (bench/studies/detection.py): the Wilson interval of its
summary and the comparison of a run's training labels with the recorded ones."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from bench.studies import detection, detection_labels
from bench.studies.detection_models import Variant
from bench.studies.detection_models import suite as calibration_suite
from bench.studies.holdout_models import suite as holdout_suite
from bench.studies.validation_models import suite as validation_suite


@pytest.mark.parametrize("k, n, low, high", [
    # Wilson (1927) score interval, z = 1.96; values from its closed form, to 4 digits.
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (5, 10, 0.2366, 0.7634),
    (14, 21, 0.4537, 0.8281),
])
def test_wilson_interval(k, n, low, high):
    lo, hi = detection.wilson(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_variant_names_are_unique_across_the_three_sets():
    names = [v.name for suite in (calibration_suite, validation_suite, holdout_suite)
             for v in suite()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name, momentum, args, cls", [
    ("sgd", 0.0, {"weight_decay": 1.0, "nesterov": False}, torch.optim.SGD),
    ("rmsprop", 0.9, {"weight_decay": 0.5}, torch.optim.RMSprop),
    ("adagrad", 0.9, {}, torch.optim.Adagrad),
])
def test_variant_optimizer_is_what_training_runs_and_bnlint_is_told(name, momentum, args, cls):
    v = Variant("v", "f", "-", "cls", lambda: nn.Linear(2, 2), lr=0.3, optimizer=name,
                momentum=momentum, opt_args=args)
    opt = detection.make_optimizer(v, nn.Linear(2, 2).parameters())
    assert type(opt) is cls
    assert opt.defaults["lr"] == 0.3
    assert all(opt.defaults[k] == value for k, value in args.items())
    told = detection.bnlint_optimizer(v)
    assert (told.name, told.lr, told.args) == (name, 0.3, args)
    assert told.momentum == (momentum if name == "sgd" else 0.0)
    if name == "sgd":
        assert opt.defaults["momentum"] == momentum


def _row(name: str, label: str, other: str) -> SimpleNamespace:
    outcome = lambda lab: SimpleNamespace(label=lab)  # noqa: E731
    return SimpleNamespace(variant=SimpleNamespace(name=name), outcome=outcome(label),
                           others=[(1, outcome(other))])


def test_label_check_warns_on_a_changed_label(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(detection_labels, "HERE", tmp_path)
    protocol = detection.protocol(detection.STEPS)
    record = {"recorded": "2026-01-01T00:00:00+00:00", "torch": "x", "protocol": protocol,
              "variants": {"a": {"label": "fine", "other_seeds": {"1": {"label": "fine"}}},
                           "b": {"label": "no-fit", "other_seeds": {"1": {"label": "dead"}}}}}
    (tmp_path / "validation_labels.json").write_text(json.dumps(record))

    same = detection_labels.check("validation", [_row("a", "fine", "fine")], protocol)
    assert same == ["Labels: all 2 training labels of this run match validation_labels.json "
                    "(recorded 2026-01-01T00:00:00+00:00, torch x)."]

    lines = detection_labels.check("validation", [_row("a", "fine", "fine"),
                                                  _row("b", "fine", "dead")], protocol)
    assert any(line.startswith("WARNING: 1 training label(s)") for line in lines)
    assert "b (seed 0): recorded no-fit, now fine" in lines
    assert "WARNING" in capsys.readouterr().err

    other = detection.protocol(detection.STEPS + 1)
    assert "differs in steps" in detection_labels.check("validation", [], other)[0]


def test_recorded_mode_scores_bnlint_against_the_record_without_training(
        tmp_path, monkeypatch, capsys):
    """--recorded takes each variant's label from SET_labels.json (here a record saying the
    fine temperature-zero-log net did not fit) and trains nothing."""
    monkeypatch.setattr(detection_labels, "HERE", tmp_path)
    monkeypatch.setattr(detection, "train", lambda *a: pytest.fail("--recorded trained"))
    record = {"variants": {"temperature-zero-log": {
        "label": "no-fit", "evidence": "recorded here",
        "other_seeds": {"1": {"label": "fine"}, "2": {"label": "no-fit"}}}}}
    (tmp_path / "validation_labels.json").write_text(json.dumps(record))
    detection.main(["--recorded", "--suite", "validation", "--only", "temperature-zero-log"])
    out = capsys.readouterr().out
    row = "| temperature-zero-log | temperature | - | **no-fit** | recorded here | fine, no-fit |"
    assert row in out
    assert "bnlint static+probe: false positives: none; misses: temperature-zero-log" in out


def test_recorded_mode_without_a_record_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(detection_labels, "HERE", tmp_path)
    with pytest.raises(SystemExit) as exit_:
        detection.main(["--recorded", "--suite", "validation", "--only", "siren"])
    assert exit_.value.code == 2
    assert "--recorded: no labels on record for the validation set" in capsys.readouterr().err
    (tmp_path / "validation_labels.json").write_text(json.dumps({"variants": {}}))
    with pytest.raises(SystemExit):
        detection.main(["--recorded", "--suite", "validation", "--only", "siren"])
    assert "--recorded: siren not in validation_labels.json" in capsys.readouterr().err
