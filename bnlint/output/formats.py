"""Output formats: text (ruff-like), json, sarif (2.1.0) and github (workflow annotations)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import click

from ..findings import VERSION, Finding, ModelReport, Report, finite_json
from ..rules.catalog import Rule

INFORMATION_URI = "https://github.com/bnlint/bnlint"
_COLOURS = {"error": "red", "warning": "yellow", "info": "blue"}
_SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}
_GITHUB_LEVELS = {"error": "error", "warning": "warning", "info": "notice"}


def relative(path: str | None) -> str:
    """A path relative to the working directory when it lies under it."""
    if not path:
        return ""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


# ---------------------------------------------------------------- text


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
    first, last = p["history"][0], p["history"][-1]
    if p["steps"]:
        parts = [f"grad ratio first/last {_num(first['grad_ratio'])} at init -> "
                 f"{_num(last['grad_ratio'])} after {p['steps']} steps ({p['explosion']})",
                 f"dead ReLU units {_percent(first['dead_fraction'])} -> "
                 f"{_percent(last['dead_fraction'])}",
                 f"loss {_num(first['loss'])} -> {_num(last['loss'])} ({p['loss']})"]
    else:  # nothing trained: show the initialisation only
        parts = [f"at init only (no training step): grad ratio first/last "
                 f"{_num(first['grad_ratio'])}", f"dead ReLU units "
                 f"{_percent(first['dead_fraction'])}", f"loss {_num(first['loss'])} "
                 f"({p['loss']})"]
    if p["lr_ceiling"]:
        ceiling = p["lr_ceiling"].get("with_momentum", p["lr_ceiling"]["sgd"])
        parts.append(f"lr ceiling {_num(ceiling)} vs lr {p['optimizer']['lr']:g}")
    if p["nan"]:
        parts.append(f"NaN first in {p['first_nonfinite']['key']}")
    head = f"probe {model.name} ({p['device']}, batch {p['batch']}, {p['seconds']:.1f} s)"
    return f"  {head}: " + "; ".join(parts) + "".join(f"\n  note: {n}" for n in p["notes"])


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


def text(report: Report, colour: bool) -> str:
    def style(s: str, **kw: Any) -> str:
        return click.style(s, **kw) if colour else s

    lines = []
    several = {m.path for m in report.models if sum(x.path == m.path for x in report.models) > 1}
    for model in report.models:
        for f in model.findings:
            where = style(f"{relative(f.path)}:{f.line}:{f.column}:", bold=True)
            code = style(f.code, fg=_COLOURS[f.severity], bold=True)
            fixable = " [*]" if f.fix and f.fix.diff and f.fix.applicability == "safe" else ""
            suffix = f" [{model.name}]" if model.path in several else ""
            lines.append(f"{where} {code}{fixable} {f.severity}: {f.message}{suffix}")
        summary = probe_line(model)
        if summary:
            lines.append(style(summary, dim=True))
        lines.extend(style(line, dim=True) for line in suggestion_lines(model))
        lines.extend(style(f"  note ({model.name}): {n}", dim=True) for n in model.notes)
    s = report.summary()
    if s["findings"]:
        counts = ", ".join(_plural(s[k], k) for k in ("error", "warning", "info") if s[k])
        line = (f"Found {_plural(s['findings'], 'finding')} ({counts}) in "
                f"{_plural(s['models'], 'model')} from {_plural(s['files'], 'file')}.")
        if s["fixable"]:
            line += f" [*] {s['fixable']} fixable with --fix (see them with --diff)."
        if s["unsafe_fixable"]:
            line += (f" {s['unsafe_fixable']} more with --unsafe-fixes: they change what the "
                     "model computes.")
        lines.append(line)
    elif not report.errors:
        lines.append(f"All clean: {_plural(s['models'], 'model')} from "
                     f"{_plural(s['files'], 'file')}, no findings.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- json


def dumps(value: Any) -> str:
    return json.dumps(finite_json(value), indent=2, allow_nan=False) + "\n"


def to_json(report: Report) -> str:
    return dumps(report.public())


# ---------------------------------------------------------------- github


def _escape(value: str, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return value.replace(":", "%3A").replace(",", "%2C") if prop else value


def github(report: Report) -> str:
    out = []
    for f in report.findings:
        props = f"file={_escape(relative(f.path), True)},line={f.line},col={f.column}"
        if f.end_line:
            props += f",endLine={f.end_line}"
        props += f",title={_escape(f'{f.code} {f.name}', True)}"
        out.append(f"::{_GITHUB_LEVELS[f.severity]} {props}::{_escape(f.message)}")
    for e in report.errors:
        props = f"file={_escape(relative(e.path), True)}" if e.path else ""
        if e.path and e.line:
            props += f",line={e.line}"
        out.append(f"::error {props}::{_escape(e.render())}".replace("::error ::", "::error::"))
    return "\n".join(out) + ("\n" if out else "")


# ---------------------------------------------------------------- sarif


def _uri(path: str) -> dict[str, str]:
    rel = relative(path)
    if rel == path and os.path.isabs(path):
        return {"uri": Path(path).as_uri()}
    return {"uri": Path(rel).as_posix(), "uriBaseId": "%SRCROOT%"}


def _sarif_rule(rule: Rule) -> dict[str, Any]:
    markdown = (f"**{rule.summary}**\n\n{rule.why}\n\n**Example**\n\n```python\n{rule.example}\n"
                f"```\n\n**Use instead**\n\n```python\n{rule.use_instead}\n```\n\n"
                f"References: {', '.join(rule.references)}")
    return {
        "id": rule.code, "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.why},
        "help": {"text": f"{rule.why}\n\nUse instead:\n{rule.use_instead}", "markdown": markdown},
        "defaultConfiguration": {"level": _SARIF_LEVELS[rule.severity]},
        "properties": {"tags": [rule.category], "references": rule.references},
    }


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


def diff_replacements(diff: str) -> dict[str, list[dict[str, Any]]]:
    """SARIF replacements from a unified diff: each hunk replaces its old lines with its new."""
    out: dict[str, list[dict[str, Any]]] = {}
    path, lines = None, diff.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("+++ "):
            path = line[4:].strip()
            path = path[2:] if path.startswith("b/") else path
        match = _HUNK.match(line)
        if match and path is not None:
            start, count = int(match.group(1)), int(match.group(2) or 1)
            new: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].startswith(("@@", "--- ")):
                if lines[i].startswith((" ", "+")):
                    new.append(lines[i][1:])
                i += 1
            region = ({"startLine": start, "startColumn": 1, "endLine": start + count,
                       "endColumn": 1} if count else
                      {"startLine": start + 1, "startColumn": 1, "endLine": start + 1,
                       "endColumn": 1})
            out.setdefault(path, []).append({"deletedRegion": region,
                                             "insertedContent": {"text": "".join(new)}})
            continue
        i += 1
    return out


def _sarif_result(f: Finding, index: int, model: str) -> dict[str, Any]:
    region = {"startLine": f.line or 1, "startColumn": f.column or 1}
    if f.end_line:
        region.update(endLine=f.end_line, endColumn=f.end_column or 1)
    result: dict[str, Any] = {
        "ruleId": f.code, "ruleIndex": index, "level": _SARIF_LEVELS[f.severity],
        "message": {"text": f.message},
        "locations": [{"physicalLocation": {"artifactLocation": _uri(f.path or ""),
                                            "region": region}}],
        "partialFingerprints": {"bnlint/v1": f"{f.code}:{model}:{f.module or ''}"},
        "properties": {"severity": f.severity, "category": f.category,
                       "evidence": f.evidence},
    }
    if f.module:
        result["locations"][0]["logicalLocations"] = [{"fullyQualifiedName": f.module,
                                                       "kind": "member"}]
    if f.fix and f.fix.diff:
        changes = [{"artifactLocation": _uri(p), "replacements": r}
                   for p, r in diff_replacements(f.fix.diff).items()]
        result["fixes"] = [{"description": {"text": f.fix.description},
                            "artifactChanges": changes}]
    return result


def sarif(report: Report, rules: dict[str, Rule]) -> str:
    codes = list(rules)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "bnlint", "version": VERSION,
                                "informationUri": INFORMATION_URI,
                                "rules": [_sarif_rule(r) for r in rules.values()]}},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
            "results": [_sarif_result(f, codes.index(f.code), m.name) for m in report.models
                        for f in m.findings if f.code in rules],
            "invocations": [{"executionSuccessful": not report.errors,
                             "toolExecutionNotifications": [
                                 {"level": "error", "message": {"text": e.render()}}
                                 for e in report.errors]}],
        }],
    }
    return dumps(doc)


def render(report: Report, fmt: str, rules: dict[str, Rule], colour: bool) -> str:
    if fmt == "json":
        return to_json(report)
    if fmt == "sarif":
        return sarif(report, rules)
    if fmt == "github":
        return github(report)
    return text(report, colour)
