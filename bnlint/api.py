"""The Python API behind ``bnlint.lint``, ``bnlint.probe`` and ``bnlint.fix``.

``fix`` repairs a copy of the model where the findings say, and proves it with the probe
before and after. The repairs come from the findings' rules (``fix.repair`` in the rule YAML
names one in :data:`bnlint.fixes.repairs.REPAIRS`), applied in a fixed order: structure, then
initialisation, then activation shaping. The user's model is never changed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import engine
from .config import Config
from .discover.targets import Targets
from .findings import ModelReport
from .fixes import repairs as repair
from .measurement import ProbeResult
from .model.build import build
from .nn import Standardize
from .probing.run import ProbeOptions, run_probe
from .rules import catalog


def _targets(targets: torch.Tensor | Targets | None) -> Targets | None:
    """Targets given to the API as a tensor, wrapped with their spread."""
    if targets is None or isinstance(targets, Targets):
        return targets
    return Targets.given(targets, "argument")


def lint(model: nn.Module, inputs: Any, targets: torch.Tensor | None = None,
         config: Config | None = None, **kwargs: Any) -> ModelReport:
    """Lint ``model`` with example ``inputs`` (a tensor or tuple); ``targets`` may be a tensor
    of regression targets. See :func:`bnlint.engine.lint` for the keyword arguments."""
    return engine.lint(model, inputs, _targets(targets), config, **kwargs)


def probe(model: nn.Module, inputs: Any, targets: torch.Tensor | None = None,
          **options: Any) -> ProbeResult:
    """Probe ``model`` with example ``inputs`` (and regression/class ``targets``); options are
    those of :class:`~bnlint.probing.run.ProbeOptions` (device, batch, steps, budget,
    optimizer, hvps, flop_rate, seed, synthetic_inputs, inferred_inputs). The result holds
    the plan it ran (``result.plan``) and, if the budget cut it short, ``result.cut``."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    return run_probe(build(model, inputs), inputs, _targets(targets), ProbeOptions(**options))


_SUMMARY = ("grad_ratio", "act_grad_ratio", "dead_fraction")


def _summary(probe: ProbeResult) -> dict[str, Any]:
    data = {k: getattr(probe, k) for k in _SUMMARY}
    data.update(loss_start=probe.history[0].loss, loss_end=probe.history[-1].loss,
                steps=probe.steps, nan=probe.nan)
    return data


@dataclass
class FixReport:
    """What ``fix`` changed and what the probe measured before and after."""
    rewrites: list[repair.Rewrite]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    standardizer: Standardize | None = None
    findings: list[str] = field(default_factory=list)  # codes of the findings repaired

    @property
    def preserves_function(self) -> bool:
        return all(r.preserves_function for r in self.rewrites)

    def __str__(self) -> str:
        lines = []
        for r in self.rewrites:
            kept = "keeps the function" if r.preserves_function else "changes the function"
            lines.append(f"{r.repair} ({kept}): {r.description}; {len(r.modules)} module(s)")
            lines.extend(f"  skipped {s}" for s in r.skipped)
        if self.standardizer is not None:
            lines.append("targets: train on fix_report.standardizer(y); predict with "
                         "fix_report.standardizer.inverse(model(x))")
        if self.before and self.after:
            for key in _SUMMARY:
                b, a = self.before[key], self.after[key]
                if b is not None or a is not None:
                    lines.append(f"{key}: {_fmt(b)} -> {_fmt(a)}")
        return "\n".join(lines) or "nothing to repair"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def fix(model: nn.Module, inputs: Any, targets: torch.Tensor | None = None, *,
        config: Config | None = None, probe: bool = True,
        **probe_options: Any) -> tuple[nn.Module, FixReport]:
    """Return a repaired copy of ``model`` and a :class:`FixReport`.

    ``targets``: regression targets, which enable the target repairs and the standardiser.
    ``probe``: measure before and after, with the probe settings of ``config`` (device,
    batch, steps, budget, optimizer) and ``probe_options`` (as for :func:`bnlint.probe`) over
    them."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    wrapped = _targets(targets)
    config = config or Config()
    rules = catalog.load(config.rules_dir)
    static = Config(**{**config.to_dict(), "probe": False, "optimizer": config.optimizer})
    report = engine.lint(model, inputs, wrapped, static, rules=rules)
    wanted: dict[str, list[str]] = {}
    asked: set[str] = set()
    for f in report.findings:
        name = rules[f.code].fix.repair if rules[f.code].fix else None
        if name:
            modules = f.evidence.modules or ([f.module] if f.module else [])
            wanted.setdefault(name, []).extend(modules)
            asked.add(f.code)
    graph = build(model, inputs)
    fixed = copy.deepcopy(graph.gm if graph.gm is not None else model)
    rewrites = []
    for name in catalog.REPAIRS:
        if name not in wanted:
            continue
        if name == "drop_bias":
            rewrites.append(repair.drop_bias(graph, fixed, list(dict.fromkeys(wanted[name]))))
        else:
            rewrites.append(repair.REPAIRS[name](graph, fixed))
    standardizer = Standardize.from_targets(targets) if targets is not None else None
    before = after = None
    if probe:
        options = ProbeOptions.from_config(config, **probe_options)
        before = _summary(run_probe(graph, inputs, wrapped, options))
        after = _summary(run_probe(build(fixed, inputs), inputs, wrapped, options))
    return fixed, FixReport([r for r in rewrites if r.modules or r.skipped], before, after,
                            standardizer, sorted(asked))
