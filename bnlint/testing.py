"""Testing with bnlint: :func:`assert_trainable` for the user's own tests, and the harness that
runs a rule's VALID / INVALID example cases (the ``tests:`` list in its YAML).

A case is ``{model: <expression or code defining class Model>, input_shape: [...],
targets: <expression>?, config: {...}?}``; ``torch``, ``nn`` and ``F`` are in scope. A valid
case must not trigger the rule, an invalid one must.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import config as config_mod
from .config import Config, from_mapping
from .discover.targets import Targets
from .engine import RULE_FAILED, lint
from .findings import ModelReport, Report
from .model import sites
from .output import text
from .rules import catalog
from .rules.catalog import Rule


def configured(config: Config | None = None, **settings: Any) -> Config:
    """``config`` (default: the defaults) with ``settings``, config keys in snake_case
    (``probe=False``, ``ignore=["BNL102"]``), checked as a config file's are."""
    validated = from_mapping({k.replace("_", "-"): v for k, v in settings.items()},
                             "bnlint settings")
    return dataclasses.replace(config or Config(),
                               **{k: getattr(validated, k) for k in settings})


def assert_trainable(model: nn.Module, inputs: Any, targets: torch.Tensor | None = None, *,
                     select: str | list[str] | None = None,
                     fail_on: str = config_mod.FAIL_ON_DEFAULT, config: Config | None = None,
                     **settings: Any) -> ModelReport:
    """Lint ``model`` with example ``inputs`` (a tensor or tuple; ``targets`` as for
    :func:`bnlint.lint`), probe included, and raise an AssertionError that lists the findings
    as ``bnlint`` prints them when one is at or above ``fail_on``. ``select``: rule codes or
    prefixes; ``config``: settings to start from (the ``bnlint`` pytest fixture passes the
    project's); ``settings``: any config key in snake_case (``probe=False``,
    ``ignore=["BNL102"]``, ``optimizer={"name": "adam", "lr": 1e-3}``). Returns the report."""
    __tracebackhide__ = True  # pytest shows the caller's line, not this function's
    cfg = configured(config, fail_on=fail_on, **({"select": select} if select else {}),
                     **settings)
    rules = catalog.load(cfg.rules_dir)
    config_mod.check_rules(cfg, rules)
    report = lint(model, inputs, None if targets is None else Targets.given(targets, "argument"),
                  cfg, rules=rules)
    whole = Report(models=[report], files=int(report.path is not None))
    if whole.exit_code(cfg.fail_on):
        raise AssertionError(f"bnlint: {report.name} is not ready to train "
                             f"(fail_on={cfg.fail_on!r}):\n" + text.text(whole, colour=False))
    return report


def build_case(case: dict[str, Any]) -> tuple[nn.Module, torch.Tensor, Targets | None]:
    scope: dict[str, Any] = {"torch": torch, "nn": nn, "F": F}
    torch.manual_seed(0)
    with sites.recording():
        source = case["model"]
        if "class Model" in source:
            exec(source, scope)
            model = scope["Model"]()
        else:
            model = eval(source, scope)
    inputs = torch.randn(case["input_shape"])
    targets = None
    if "targets" in case:
        t = eval(case["targets"], {**scope, "x": inputs}).float()
        targets = Targets(t, float(t.std()), "case")
    return model, inputs, targets


def run_case(rule: Rule, case: dict[str, Any], rules: dict[str, Rule]) -> ModelReport:
    """Lint a case's model with only ``rule`` selected."""
    model, inputs, targets = build_case(case)
    config = from_mapping({"probe": False, **case.get("config", {}), "select": [rule.code]},
                          f"{rule.path} case")
    report = lint(model, inputs, targets, config, name=f"{rule.code} case", rules=rules)
    failed = [n for n in report.notes if n.startswith(RULE_FAILED)]
    if failed:
        raise AssertionError(failed[0])
    return report


def case_fires(rule: Rule, case: dict[str, Any], rules: dict[str, Rule]) -> bool:
    return any(f.code == rule.code for f in run_case(rule, case, rules).findings)
