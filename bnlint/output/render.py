"""Render a report in the format asked for: the findings, or their ``--statistics``, and what a
``--baseline`` hid."""

from __future__ import annotations

from ..errors import InputError
from ..findings import Report
from ..rules.catalog import Rule
from . import github, html, json_report, sarif, statistics, text
from .baseline import Outcome


def check(fmt: str, want_statistics: bool) -> None:
    """Refuse a combination of options that has no sensible output."""
    if want_statistics and fmt in ("sarif", "html"):
        raise InputError(f"--statistics prints counts per rule, as text or JSON; the "
                         f"{fmt.upper()} report has no place for them.",
                         hint="Use --format text or json with --statistics.")


def carries_baseline(fmt: str, want_statistics: bool) -> bool:
    """Whether the output says what a baseline hid and what of it is gone: the text report
    and statistics, and the JSON report do; JSON statistics (a list of counts, as ruff's), SARIF,
    HTML and GitHub annotations do not (the CLI says it on stderr)."""
    return fmt == "text" or (fmt == "json" and not want_statistics)


def render(report: Report, fmt: str, rules: dict[str, Rule], colour: bool,
           want_statistics: bool = False, baseline: Outcome | None = None) -> str:
    carried = baseline if carries_baseline(fmt, want_statistics) else None
    if fmt == "json":
        if want_statistics:
            return json_report.dumps(statistics.counts(report))
        data = report.public()
        if carried is not None:
            data["baseline"] = carried.public()
        return json_report.dumps(data)
    if fmt == "sarif":
        return sarif.sarif(report, rules)
    if fmt == "github" and not want_statistics:
        return github.github(report)
    if fmt == "html":
        return html.html(report)
    out = statistics.text(report) if want_statistics else text.text(report, colour)
    return out + "".join(line + "\n" for line in (carried.lines() if carried else []))
