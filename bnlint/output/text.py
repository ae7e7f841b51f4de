"""The text report, grouped as pytest's: per file and model, one ruff-like line per finding
(path:line:col: CODE severity: message), then the model's probe on one line named by its
pytest-style id (``path::Model``), its notes and suggestions indented under it; the probe
settings the models share once, and a closing count."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import click

from ..findings import Finding, ModelReport, Report
from ..measurement import ProbeResult
from .paths import relative

_COLOURS = {"error": "red", "warning": "yellow", "info": "blue"}
_INDENT = "  "


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 or word == "info" else f"{n} {word}s"


def _percent(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _num(x: float | None, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:.3g}{unit}"


def node_id(model: ModelReport) -> str:
    """``path::Model`` as pytest names a test; the model's name alone when built outside a
    file (a test, a notebook)."""
    return f"{relative(model.path)}::{model.name}" if model.path else model.name


def _optimizer(p: ProbeResult) -> str:
    o = p.optimizer
    momentum = f", momentum {o['momentum']:g}" if o.get("momentum") else ""
    return f"{str(o['name']).upper()} lr {o['lr']:g}{momentum}"


# What every probed model may share, shown once below the models when most share it.
_SHARED: dict[str, Callable[[ProbeResult], str]] = {
    "device": lambda p: p.device, "optimizer": _optimizer, "targets": lambda p: p.loss,
    "budget": lambda p: (f"a budget of {p.plan.budget:g} s ({p.plan.budget_flops:.2g} FLOPs "
                         f"at {p.plan.flop_rate:.2g} FLOP/s)") if p.plan else ""}


def _shared(models: Iterable[ModelReport]) -> dict[str, str]:
    """The most common value of each :data:`_SHARED` setting over the probed models."""
    probes = [m.probe for m in models if m.probe]
    return {k: Counter(f(p) for p in probes).most_common(1)[0][0]
            for k, f in _SHARED.items()} if probes else {}


def _trend(first: float | None, last: float | None, steps: int, show) -> str:
    """``a -> b`` over the steps, or ``a`` alone when no training step ran."""
    return f"{show(first)} -> {show(last)}" if steps else show(first)


def _ceiling(model: ModelReport) -> str | None:
    """The lr ceiling against the lr it bounds: a range when Lanczos did not converge, and
    whether it is a finding (BNL905) or why not."""
    p = model.probe
    c = p.lr_ceiling if p else None
    if c is None:
        return None
    low, high = c.span()
    shown = f"{high:.3g}" if c.converged else f"{low:.2g}..{high:.2g}"
    lr = model.suggestions.get("lr_ceiling", {}).get("lr", p.optimizer["lr"])
    unconverged = "" if c.converged else \
        f" (Lanczos unconverged after {_plural(c.iterations, 'product')})"
    if lr <= low:
        return f"lr ceiling {shown} > lr {lr:g}{unconverged}"
    if lr <= high:
        return f"lr ceiling {shown} around lr {lr:g}{unconverged}"
    reported = "BNL905" if any(f.code == "BNL905" for f in model.findings) \
        else "BNL905 deselected or suppressed"
    return f"lr ceiling {shown} < lr {lr:g}: {reported}{unconverged}"


def _run(p: ProbeResult, shared: dict[str, str]) -> str:
    """How the probe ran: device where it differs, the processes sharing it, batch (of the
    asked one), image size, steps (of those planned), seconds."""
    parts = [p.device] if p.device != shared.get("device") else []
    if p.ranks > 1:
        parts.append(f"{p.ranks} ranks")
    plan = p.plan
    asked = f" of {plan.requested_batch}" if plan and p.batch != plan.requested_batch else ""
    parts.append(f"batch {p.batch}{asked}")
    if plan and plan.resolution:
        parts[-1] += " at " + "x".join(map(str, plan.resolution))
    if plan and p.steps < plan.steps:
        parts.append(f"{p.steps} of {_plural(plan.steps, 'step')}")
    elif not p.steps:
        parts.append("no training step")
    else:
        parts.append(_plural(p.steps, "step"))
    parts.append(f"{p.seconds:.1f} s")
    return ", ".join(parts)


def probe_line(model: ModelReport, shared: dict[str, str] | None = None) -> str | None:
    """The probe of a model in one line (None when it did not run): how it ran, then each
    measured quantity named for what it spans, from initialisation to the last step."""
    p = model.probe
    if not p:
        return None
    shared = shared or {}
    first, last = p.history[0], p.history[-1]
    span = f" ({p.first_module}/{p.last_module})" if p.first_module and p.last_module else ""
    ratio = _trend(first.grad_ratio, last.grad_ratio, p.steps, lambda x: _num(x, "x"))
    if span and "n/a" in ratio:  # the ratio is undefined only when its denominator is
        ratio += " (the last layer's weight gradient was 0 or not finite)"
    parts = [f"gradient ratio first/last layer{span} {ratio}"]
    if first.dead_fraction is not None:
        dead = _trend(first.dead_fraction, last.dead_fraction, p.steps, _percent)
        parts.append(f"dead ReLU {dead}")
    parts.append(f"loss {_trend(first.loss, last.loss, p.steps, _num)}")
    ceiling = _ceiling(model)
    if ceiling:
        parts.append(ceiling)
    if p.nan:
        parts.append(f"NaN first in {p.first_nonfinite.key}" if p.first_nonfinite else "NaN")
    for key in ("optimizer", "targets", "budget"):
        value = _SHARED[key](p)
        if value and value != shared.get(key):
            parts.append(value)
    return f"probe ({_run(p, shared)}): " + "; ".join(parts)


def suggestion_lines(model: ModelReport) -> list[str]:
    """The model's suggestions (warm-up, optimizer), snippets indented under their reason;
    the lr ceiling is on the probe line and, when it bites, a finding (BNL905)."""
    lines = []
    for what, s in model.suggestions.items():
        if what == "lr_ceiling":
            continue
        lines.append(f"suggest {what}: {s['source']}")
        lines.extend("    " + line for line in s.get("snippet", "").splitlines())
    return lines


def note_lines(model: ModelReport) -> list[str]:
    """Why the probe planned less than asked, what it noted, and the model's notes."""
    p = model.probe
    plan = [f"plan: {r}" for r in (p.plan.reasons if p and p.plan else ())]
    return [*plan, *(f"note: {n}" for n in (p.notes if p else ())),
            *(f"note: {n}" for n in model.notes)]


def _where(path: str | None, line: int | None, column: int | None, model: str) -> str:
    """``path:line:col:`` as far as known; a model built outside a file (a test, a notebook)
    is named instead."""
    if not path:
        return f"{model}:"
    return ":".join([relative(path), *(str(n) for n in (line, column) if n)]) + ":"


def _from_files(n: int, cached: int = 0) -> str:
    if not n:
        return ""
    unchanged = f" ({cached} unchanged, from the cache)" if cached else ""
    return f" from {_plural(n, 'file')}{unchanged}"


def _settings(shared: dict[str, str], probed: int) -> str:
    """The probe settings most models shared, said once."""
    targets = shared["targets"]
    budget = f" within {shared['budget']}" if shared["budget"] else ""
    return (f"Probed {_plural(probed, 'model')} on {shared['device']} with "
            f"{shared['optimizer']}{budget}; {targets[0].lower() + targets[1:]}"
            + (" (a model's probe line says where it differs)." if probed > 1 else "."))


def _closing(report: Report) -> str | None:
    s = report.summary()
    files = _from_files(s["files"], len(report.cached))
    if s["findings"]:
        counts = ", ".join(_plural(s[k], k) for k in ("error", "warning", "info") if s[k])
        line = (f"Found {_plural(s['findings'], 'finding')} ({counts}) in "
                f"{_plural(s['models'], 'model')}{files}.")
        if s["fixable"]:
            line += f" [*] {s['fixable']} fixable with --fix (see them with --diff)."
        if s["unsafe_fixable"]:
            line += (f" {s['unsafe_fixable']} more with --unsafe-fixes: they change what the "
                     "model computes.")
        return line
    if not report.errors:
        return f"All clean: {_plural(s['models'], 'model')}{files}, no findings."
    return None


def text(report: Report, colour: bool) -> str:
    def style(s: str, **kw: Any) -> str:
        return click.style(s, **kw) if colour else s

    shared = _shared(report.models)
    probed = [m for m in report.models if m.probe]
    width = max((len(node_id(m)) for m in probed), default=0)
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
        summary = probe_line(model, shared)
        under = note_lines(model) + suggestion_lines(model)
        if summary:
            lines.append(_INDENT + style(node_id(model).ljust(width), bold=True) + "  "
                         + style(summary, dim=True))
        elif under:
            lines.append(_INDENT + style(node_id(model), bold=True))
        lines.extend(style(2 * _INDENT + line, dim=True) for line in under)
    if probed:
        lines.append(style(_settings(shared, len(probed)), dim=True))
    closing = _closing(report)
    if closing:
        lines.append(closing)
    return "\n".join(lines) + "\n"
