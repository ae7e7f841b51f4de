"""Render a report in the format asked for."""

from __future__ import annotations

from ..findings import Report
from ..rules.catalog import Rule
from . import github, html, json_report, sarif, text


def render(report: Report, fmt: str, rules: dict[str, Rule], colour: bool) -> str:
    if fmt == "json":
        return json_report.to_json(report)
    if fmt == "sarif":
        return sarif.sarif(report, rules)
    if fmt == "github":
        return github.github(report)
    if fmt == "html":
        return html.html(report)
    return text.text(report, colour)
