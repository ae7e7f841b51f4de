"""GitHub Actions workflow commands: one ``::warning file=...`` annotation per finding."""

from __future__ import annotations

from ..findings import Report
from .paths import relative

_GITHUB_LEVELS = {"error": "error", "warning": "warning", "info": "notice"}


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
        out.append(f"::{_GITHUB_LEVELS[f.severity]} {props}::{_escape(f.text())}")
    for e in report.errors:
        props = f"file={_escape(relative(e.path), True)}" if e.path else ""
        if e.path and e.line:
            props += f",line={e.line}"
        out.append(f"::error {props}::{_escape(e.render())}".replace("::error ::", "::error::"))
    return "\n".join(out) + ("\n" if out else "")
