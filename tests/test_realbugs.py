"""The real-bug study's plumbing (bench/studies/realbugs): the failure criteria that label the
training runs, the manifest against its files and committed labels, and the settings the runner
hands to the bnlint CLI. Training and linting the cases is slow: see tests/test_slow.py."""

from __future__ import annotations

import json

import pytest
import yaml

from bench.studies.realbugs.__main__ import config_text
from bench.studies.realbugs.label import failures
from bench.studies.realbugs.manifest import CASES, CASES_DIR, CONFIGURABLE, KINDS, LABELS
from bnlint.config import OPTIMIZERS, from_mapping


def run(loss=(2.0,) * 5 + (0.5,) * 5, **metrics):
    return {"loss": list(loss), "params_finite": True, **metrics}


@pytest.mark.parametrize("given, expected", [
    (run(accuracy=0.9, chance=0.1, output_std=1.0), []),
    (run(relative_mse=0.1, output_std=1.0), []),
    (run(loss=(2.0, float("nan")) * 5, accuracy=0.9, chance=0.1), ["non-finite"]),
    ({**run(accuracy=0.9, chance=0.1), "params_finite": False}, ["non-finite"]),
    (run(accuracy=0.14, chance=0.1), ["at chance"]),
    (run(accuracy=0.0, chance=1.0), ["at chance"]),
    (run(relative_mse=0.6), ["no fit"]),
    (run(relative_mse=float("nan")), ["no fit"]),
    (run(loss=(1.0,) * 10, accuracy=0.9, chance=0.1), ["loss not falling"]),
    (run(loss=(1.0,) * 5 + (3.0,) * 5, relative_mse=0.1), ["loss not falling"]),
    (run(loss=(-1.0,) * 5 + (-1.05,) * 5), ["loss not falling"]),
    (run(accuracy=0.9, chance=0.1, output_std=0.0), ["constant output"]),
])
def test_failures_name_the_criteria_a_run_meets(given, expected):
    assert failures(given) == expected


def test_every_case_has_its_two_files_known_kinds_and_a_label():
    labels = json.loads(LABELS.read_text())["cases"]
    assert len({case.name for case in CASES}) == len(CASES)
    for case in CASES:
        for version in ("buggy", "fixed"):
            assert (CASES_DIR / f"{case.name}_{version}.py").is_file(), case.name
        assert set(case.kinds) <= set(KINDS), case.name
        label = labels[case.name]
        assert label["reproduced"] == bool(label["buggy"]["failures"]), case.name
        assert label["fix_trains"] == (not label["fixed"]["failures"]), case.name
        assert label["buggy"]["steps"] == label["fixed"]["steps"] == case.steps, case.name
    quick = [case for case in CASES if case.quick]
    assert len(quick) == 3
    assert all(labels[c.name]["reproduced"] and labels[c.name]["fix_trains"] for c in quick)


def test_the_runner_passes_each_programs_optimizer_when_the_config_accepts_it():
    assert set(CONFIGURABLE) <= set(OPTIMIZERS)
    for case in CASES:
        for version in ("buggy", "fixed"):
            opt = case.optimizer_of(version)
            config = from_mapping(yaml.safe_load(config_text(opt)), "runner settings")
            if opt["name"] in CONFIGURABLE:
                assert (config.optimizer.name, config.optimizer.lr) == (opt["name"], opt["lr"])
                assert config.optimizer.args.get("nesterov", False) == opt.get("nesterov", False)
            else:
                assert config.optimizer is None, (case.name, version)
