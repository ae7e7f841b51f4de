"""Testing with bnlint: :func:`assert_trainable` for the user's own tests, and the harness that
runs a rule's own VALID / INVALID example cases (the ``tests:`` list in its YAML).

A case is ``{model: <expression or code defining class Model>, input_shape: [...],
targets: <expression>?, config: {...}?}``; ``torch``, ``nn`` and ``F`` are in scope. A valid
case must not trigger the rule, an invalid one must. An invalid case may pin the finding
further: ``module`` (the qualified module name a finding names), ``message`` (a fragment of
that finding's message) and, for a rule with a source fix, ``fixed``: the case's code once the
rule's fixes are applied, on which the rule no longer fires.

A case is linted from a file, as the CLI lints a user's: :data:`IMPORTS`, then the case's code
(``model = <expression>`` for an expression), so its findings have source sites and fixes.
``fixed`` is that file, patched, without its first line.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import config as config_mod
from .config import Config, from_mapping
from .discover.targets import Targets
from .engine import RULE_FAILED, first_that_builds, lint
from .findings import Finding, ModelReport, Report
from .fixes import text
from .model import sites
from .output import text as text_report
from .rules import catalog
from .rules.catalog import Rule

IMPORTS = "import torch, torch.nn as nn, torch.nn.functional as F\n"


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
        raise AssertionError(f"bnlint: {report.name} is not ready to train (fail_on="
                             f"{cfg.fail_on!r}):\n" + text_report.text(whole, colour=False))
    return report


def case_source(case: dict[str, Any]) -> str:
    """The file a case is linted from."""
    code = case["model"]
    if "class Model" not in code:
        code = f"model = {code.strip()}\n"
    return IMPORTS + code


def _model(source: str, filename: str) -> tuple[nn.Module, dict[str, Any]]:
    """Run a case's file and build its model: (model, the file's namespace)."""
    scope: dict[str, Any] = {"__name__": "bnlint_case"}
    exec(compile(source, filename, "exec", dont_inherit=True), scope)  # not our __future__
    return (scope["Model"]() if "Model" in scope else scope["model"]), scope


def build_case(case: dict[str, Any], path: Path, source: str | None = None
               ) -> tuple[nn.Module, torch.Tensor, Targets | None]:
    """Write the case's file (or ``source``, the file to use instead) to ``path`` and build
    its model, inputs and targets."""
    source = source or case_source(case)
    path.write_text(source, encoding="utf-8")
    torch.manual_seed(0)
    with sites.recording():
        model, scope = _model(source, str(path))
    inputs = torch.randn(case["input_shape"])
    if "inputs" in case:  # an expression of x, the random batch: real data's statistics
        inputs = eval(case["inputs"], {**scope, "x": inputs}).float()
    targets = None
    if "targets" in case:
        t = eval(case["targets"], {**scope, "x": inputs}).float()
        targets = Targets(t, float(t.std()), "case")
    return model, inputs, targets


def run_case(rule: Rule, case: dict[str, Any], rules: dict[str, Rule],
             source: str | None = None) -> tuple[ModelReport, str]:
    """Lint a case's model (from ``source`` if given) with only ``rule`` selected: the report
    and the file's text."""
    if rule.found_by:
        return _run_discovery_case(rule, case, rules)
    with tempfile.TemporaryDirectory(prefix="bnlint-case-") as folder:
        path = Path(folder) / f"{rule.code.lower()}_case.py"
        model, inputs, targets = build_case(case, path, source)
        config = from_mapping({"probe": False, **case.get("config", {}),
                               "select": [rule.code]}, f"{rule.path} case")
        source = path.read_text(encoding="utf-8")
        name = "Model" if "class Model" in case["model"] else "model"
        line = next(i for i, text in enumerate(source.splitlines(), 1)
                    if text.startswith(("class Model", "model = ")))
        report = lint(model, inputs, targets, config, name=name, path=str(path), line=line,
                      rules=rules)
    failed = [n for n in report.notes if n.startswith(RULE_FAILED)]
    if failed:
        raise AssertionError(failed[0])
    return report, source


def discovered(path: Path, config: Config, rules: dict[str, Rule],
               input_shape: list[int] | None = None) -> list[Finding]:
    """Lint a file in this process as the worker does, and return the findings of the
    problems in its code (the ``found_by: discovery`` rules)."""
    from .discover import inputs, load, models
    from .errors import UserCodeError
    from .rules import problems as problem_findings

    found: list[UserCodeError] = []
    try:
        module = load.load_module(path)
        discovery = models.find_models(module, path, config.model)
        found += discovery.problems
        for model in discovery.models:
            try:
                examples = inputs.example_inputs(module, model, path,
                                                 input_shape and [input_shape],
                                                 config.input_shape, config.batch_size)
                given, graph = first_that_builds(model.model, examples, rules, config)
                lint(model.model, given.tensors, None, config, name=model.name, path=str(path),
                     line=model.line, rules=rules,
                     synthetic_inputs=given.synthetic, inferred_inputs=given.inferred,
                     built=graph)
            except UserCodeError as exc:
                found.append(exc)
    except UserCodeError as exc:
        found.append(exc)
    return [problem_findings.finding(p, rules[p.code]) for p in found]


def _run_discovery_case(rule: Rule, case: dict[str, Any], rules: dict[str, Rule]
                        ) -> tuple[ModelReport, str]:
    """A case of a ``found_by: discovery`` rule: its file (IMPORTS, then its code as it is)
    linted as the worker does; the report holds the problems' findings."""
    with tempfile.TemporaryDirectory(prefix="bnlint-case-") as folder:
        path = Path(folder) / f"{rule.code.lower()}_case.py"
        source = IMPORTS + case["model"]
        path.write_text(source, encoding="utf-8")
        config = from_mapping({"probe": False, **case.get("config", {}),
                               "select": [rule.code]}, f"{rule.path} case")
        findings = discovered(path, config, rules, case.get("input_shape"))
    return ModelReport(path.stem, str(path), 1, {}, findings), source


def case_fires(rule: Rule, case: dict[str, Any], rules: dict[str, Rule]) -> bool:
    return any(f.code == rule.code for f in run_case(rule, case, rules)[0].findings)


def fixed_source(source: str, findings: list[Finding]) -> str:
    """The case's file once the findings' source fixes are applied."""
    return text.Text(source).apply(r for f in findings if f.fix for r in f.fix.replacements)


def check_case(rule: Rule, kind: str, case: dict[str, Any], rules: dict[str, Rule]) -> None:
    """Assert what the case says: a valid case does not fire; an invalid one fires, naming
    ``module`` with ``message`` in the message, and its fixes give ``fixed``."""
    report, source = run_case(rule, case, rules)
    found = [f for f in report.findings if f.code == rule.code]
    if kind == "valid":
        if found:
            raise AssertionError(f"fired on a valid case: {found[0].message}")
        return
    if not found:
        raise AssertionError("did not fire on an invalid case")
    named = [f for f in found if f.module == case["module"]] if "module" in case else found
    if not named:
        raise AssertionError(f"names {[f.module for f in found]}, not {case['module']}")
    if "message" in case and not any(case["message"] in f.message for f in named):
        raise AssertionError(f"no message holds {case['message']!r}: "
                             f"{[f.message for f in named]}")
    if "fixed" in case:
        if not any(f.fix and f.fix.replacements for f in found):
            raise AssertionError("no source fix: "
                                 f"{[f.fix.description if f.fix else None for f in found]}")
        patched = fixed_source(source, found)
        fixed = patched.split("\n", 1)[1]  # less IMPORTS
        if fixed != case["fixed"]:
            raise AssertionError(f"the fix gives\n{fixed}\nnot\n{case['fixed']}")
        again = [f for f in run_case(rule, case, rules, patched)[0].findings
                 if f.code == rule.code]
        if again:  # so a second --fix changes nothing
            raise AssertionError(f"still fires once fixed: {again[0].message}")
