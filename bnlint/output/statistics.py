"""``--statistics``: how many findings each rule has, as ruff prints them (most frequent first;
``[*]`` marks a rule with findings that ``--fix`` fixes)."""

from __future__ import annotations

from typing import Any

from ..findings import Report


def counts(report: Report) -> list[dict[str, Any]]:
    """One entry per rule code: code, name, count, and how many of them have a safe fix."""
    by_code: dict[str, dict[str, Any]] = {}
    for f in report.findings:
        entry = by_code.setdefault(f.code, {"code": f.code, "name": f.name, "count": 0,
                                            "fixable": 0})
        entry["count"] += 1
        entry["fixable"] += bool(f.fix and f.fix.diff and f.fix.applicability == "safe")
    return sorted(by_code.values(), key=lambda e: (-e["count"], e["code"]))


def text(report: Report) -> str:
    entries = counts(report)
    if not entries:
        return "No findings.\n"
    width = len(str(entries[0]["count"]))
    return "".join(f"{e['count']:>{width}}\t{e['code']}\t{'[*]' if e['fixable'] else '   '} "
                   f"{e['name']}\n" for e in entries)
