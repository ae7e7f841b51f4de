"""Run a rule's own VALID / INVALID example cases (the ``tests:`` list in its YAML).

A case is ``{model: <expression or code defining class Model>, input_shape: [...],
targets: <expression>?, config: {...}?}``; ``torch``, ``nn`` and ``F`` are in scope. A valid
case must not trigger the rule, an invalid one must.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import from_mapping
from .discover.targets import Targets
from .engine import RULE_FAILED, lint
from .findings import ModelReport
from .model import sites
from .rules.catalog import Rule


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
