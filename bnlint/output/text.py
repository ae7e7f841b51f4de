"""The text report, ruff-like: one line per finding (path:line:col: CODE severity: message),
the probe's summary and suggestions under each model, and a closing count."""

from __future__ import annotations

from typing import Any

import click

from ..findings import Finding, ModelReport, Report
from ..measurement import ProbeResult
from .paths import relative

_COLOURS = {"error": "red", "warning": "yellow", "info": "blue"}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 or word == "info" else f"{n} {word}s"


def _percent(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def probe_line(model: ModelReport) -> str | None:
    """One line summing up the probe of a model (None when it did not run)."""
    p = model.probe
    if not p:
        return None
    first, last = p.history[0], p.history[-1]
    if p.steps:
        parts = [f"grad ratio first/last {_num(first.grad_ratio)} at init -> "
                 f"{_num(last.grad_ratio)} after {p.steps} steps ({model.explosion})",
                 f"dead ReLU units {_percent(first.dead_fraction)} -> "
                 f"{_percent(last.dead_fraction)}",
                 f"loss {_num(first.loss)} -> {_num(last.loss)} ({p.loss})"]
    else:  # nothing trained: show the initialisation only
        parts = [f"at init only (no training step): grad ratio first/last "
                 f"{_num(first.grad_ratio)}", f"dead ReLU units "
                 f"{_percent(first.dead_fraction)}", f"loss {_num(first.loss)} "
                 f"({p.loss})"]
    if p.lr_ceiling:
        parts.append(f"lr ceiling {_num(p.lr_ceiling.bound)} vs lr {p.optimizer['lr']:g}")
    if p.nan:
        parts.append(f"NaN first in {p.first_nonfinite.key}")
    notes = [*(f"plan: {reason}" for reason in (p.plan.reasons if p.plan else ())), *p.notes]
    return f"  {_probe_head(model.name, p)}: " + "; ".join(parts) + \
        "".join(f"\n  note: {n}" for n in notes)


def _probe_head(name: str, p: ProbeResult) -> str:
    """``probe NAME (device, batch, seconds; the plan)``."""
    plan = p.plan
    if plan is None:
        return f"probe {name} ({p.device}, batch {p.batch}, {p.seconds:.1f} s)"
    asked = f" of {plan.requested_batch}" if p.batch != plan.requested_batch else ""
    size = f" at {'x'.join(map(str, plan.resolution))}" if plan.resolution else ""
    return (f"probe {name} ({p.device}, batch {p.batch}{asked}{size}, {p.seconds:.1f} s of "
            f"{plan.budget:g}; planned {_plural(plan.steps, 'step')}, "
            f"{_plural(plan.hvps, 'Hessian-vector product')}, {plan.flops:.2g} FLOPs)")


def suggestion_lines(model: ModelReport) -> list[str]:
    """The model's learning-rate suggestions, snippets indented under their reason."""
    lines = []
    for what, s in model.suggestions.items():
        if what == "lr_ceiling":  # the probe line shows it; say more only when it bites
            if s["configured"] and s["lr"] > s["value"]:
                lines.append(f"  lr {s['lr']:g} is above the ceiling {s['value']:.3g} "
                             f"({s['source']})")
            continue
        lines.append(f"  suggest {what}: {s['source']}")
        lines.extend("      " + line for line in s.get("snippet", "").splitlines())
    return lines


def _where(path: str | None, line: int | None, column: int | None, model: str) -> str:
    """``path:line:col:`` as far as known; a model built outside a file (a test, a notebook)
    is named instead."""
    if not path:
        return f"{model}:"
    return ":".join([relative(path), *(str(n) for n in (line, column) if n)]) + ":"


def _from_files(n: int) -> str:
    return f" from {_plural(n, 'file')}" if n else ""


def text(report: Report, colour: bool) -> str:
    def style(s: str, **kw: Any) -> str:
        return click.style(s, **kw) if colour else s

    def finding(f: Finding, model: str, suffix: str = "") -> str:
        where = style(_where(f.path, f.line, f.column, model), bold=True)
        code = style(f.code, fg=_COLOURS[f.severity], bold=True)
        fixable = " [*]" if f.fix and f.fix.diff and f.fix.applicability == "safe" else ""
        return f"{where} {code}{fixable} {f.severity}: {f.text()}{suffix}"

    lines = [finding(f, "") for f in sorted(report.file_findings, key=Finding.sort_key)]
    several = {m.path for m in report.models if sum(x.path == m.path for x in report.models) > 1}
    for model in report.models:
        for f in model.findings:
            lines.append(finding(f, model.name,
                                 f" [{model.name}]" if model.path in several else ""))
        summary = probe_line(model)
        if summary:
            lines.append(style(summary, dim=True))
        lines.extend(style(line, dim=True) for line in suggestion_lines(model))
        lines.extend(style(f"  note ({model.name}): {n}", dim=True) for n in model.notes)
    s = report.summary()
    if s["findings"]:
        counts = ", ".join(_plural(s[k], k) for k in ("error", "warning", "info") if s[k])
        line = (f"Found {_plural(s['findings'], 'finding')} ({counts}) in "
                f"{_plural(s['models'], 'model')}{_from_files(s['files'])}.")
        if s["fixable"]:
            line += f" [*] {s['fixable']} fixable with --fix (see them with --diff)."
        if s["unsafe_fixable"]:
            line += (f" {s['unsafe_fixable']} more with --unsafe-fixes: they change what the "
                     "model computes.")
        lines.append(line)
    elif not report.errors:
        lines.append(f"All clean: {_plural(s['models'], 'model')}{_from_files(s['files'])}, "
                     "no findings.")
    return "\n".join(lines) + "\n"
