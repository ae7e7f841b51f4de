"""Lint one model: trace it, run the enabled rules, locate, suppress and attach fixes."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from . import catalog, checks, sites, suppress
from .catalog import Rule
from .checks import Context, Hit
from .config import Config
from .discover import Targets
from .errors import InputError
from .fix import source
from .graph import ModelGraph, build
from .report import Finding, Fix, ModelReport
from .sites import Site


def _model_site(model: nn.Module, path: str | None, line: int | None) -> Site | None:
    if path is None:
        try:
            path = inspect.getsourcefile(type(model))
            line = inspect.getsourcelines(type(model))[1]
        except (OSError, TypeError):
            return None
    return Site(path, line or 1, 1, line or 1, 1) if path else None


def _positioned(edit: dict[str, Any], hit: Hit, site: Site) -> dict[str, Any]:
    """An edit anchored at the call that built the hit's module, with the argument's position."""
    edit = {**edit, "path": site.path, "line": site.line, "col": site.col}
    if edit["action"] == "set_kwarg" and hit.layer is not None and hit.layer.obj is not None:
        params = list(inspect.signature(type(hit.layer.obj).__init__).parameters)[1:]
        if edit["name"] in params:
            edit["position"] = params.index(edit["name"])
    return edit


def _fix(rule: Rule, hit: Hit, site: Site | None, graph: ModelGraph,
         flagged: dict[str, set[int]]) -> Fix | None:
    if not rule.fix:
        return None
    description = (hit.fix_description or rule.fix.get("description") or rule.use_instead
                   ).format(**hit.fields).strip()
    fix = Fix(rule.fix["applicability"], description)
    if not hit.edits or site is None:
        return fix
    others = [m for m in graph.model.modules()
              if sites.site_of(m) == site and id(m) not in flagged[rule.code]]
    if others:  # the same line builds modules this finding does not cover: editing it is wrong
        fix.applicability = "display-only"
        fix.description += (f" (Not patched: line {site.line} also builds modules that do not "
                            "have this problem.)")
        return fix
    fix.edits = [_positioned(e, hit, site) for e in hit.edits]
    try:
        fix.diff = source.diff(fix.edits) or None
    except InputError:
        fix.edits, fix.diff = [], None
    return fix


def run_rules(ctx: Context, rules: dict[str, Rule], model_site: Site | None) -> list[Finding]:
    hits: list[tuple[Rule, Hit]] = []
    for rule in rules.values():
        if not ctx.config.enabled(rule.code):
            continue
        find = checks.finder(rule)
        if find is None:
            raise InputError(f"rule {rule.code} has no pattern and no built-in finder.",
                             path=rule.path, hint="Give a rule from --rules-dir a pattern.")
        seen = set()
        for hit in find(ctx, rule):
            key = hit.layer.key or hit.layer.name if hit.layer else None
            if key not in seen:
                seen.add(key)
                hits.append((rule, hit))
    flagged: dict[str, set[int]] = {}
    for rule, hit in hits:
        if hit.layer is not None and hit.layer.obj is not None:
            flagged.setdefault(rule.code, set()).add(id(hit.layer.obj))
    findings = []
    for rule, hit in hits:
        site = hit.site or (hit.layer.site if hit.layer else None)
        where = site or model_site
        if where and suppress.is_suppressed(rule.code, where.path, where.line, where.end_line):
            continue
        findings.append(Finding(
            code=rule.code, name=rule.name, category=rule.category,
            severity=hit.severity or rule.severity,
            message=rule.message.format(**hit.fields).strip(),
            path=where.path if where else None, line=where.line if where else None,
            column=where.col if where else None, module=hit.layer.key if hit.layer else None,
            evidence=hit.evidence, fix=_fix(rule, hit, site, ctx.graph, flagged),
            end_line=where.end_line if where else None,
            end_column=where.end_col if where else None))
    return _merge_same_site(sorted(findings, key=Finding.sort_key))


def _merge_same_site(findings: list[Finding]) -> list[Finding]:
    """One finding per rule and source site: a line that builds many flagged modules (a helper
    called in a loop) is reported once, naming them all."""
    merged: dict[tuple, Finding] = {}
    for f in findings:
        key = (f.code, f.path, f.line, f.column)
        first = merged.setdefault(key, f)
        if first is not f:
            first.evidence.setdefault("modules", [first.module]).append(f.module)
    for f in merged.values():
        others = f.evidence.get("modules", [])[1:]
        if others:
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            f.message += f" The same line builds {len(others)} more like it: {shown}."
    return list(merged.values())


def lint(model: nn.Module, inputs: Any, targets: Targets | None = None,
         config: Config | None = None, *, name: str | None = None, path: str | None = None,
         line: int | None = None, rules: dict[str, Rule] | None = None) -> ModelReport:
    """Lint ``model`` with example ``inputs`` (a tensor or tuple of tensors)."""
    config = config or Config()
    rules = rules if rules is not None else catalog.load(config.rules_dir)
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    graph = build(model, inputs)
    model_site = _model_site(model, path, line)
    ctx = Context(graph, model, inputs, targets, config)
    findings = run_rules(ctx, rules, model_site)
    return ModelReport(name or type(model).__name__,
                       model_site.path if model_site else None,
                       model_site.line if model_site else None, graph.summary(), findings)
