"""SARIF 2.1.0 for GitHub code scanning: the rules, one result per finding, fixes included."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..findings import VERSION, Finding, Report
from ..rules.catalog import Rule
from .json_report import dumps
from .paths import relative

INFORMATION_URI = "https://github.com/bnlint/bnlint"
_SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}


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


def _fixes(f: Finding) -> list[dict[str, Any]]:
    """The finding's source patch as a SARIF fix: per file, its replacements (1-based lines
    and columns; an insertion deletes an empty region)."""
    changes: dict[str, list[dict[str, Any]]] = {}
    for r in f.fix.replacements:
        changes.setdefault(r.path, []).append({
            "deletedRegion": {"startLine": r.line, "startColumn": r.col,
                              "endLine": r.end_line, "endColumn": r.end_col},
            "insertedContent": {"text": r.text}})
    return [{"description": {"text": f.fix.description},
             "artifactChanges": [{"artifactLocation": _uri(path), "replacements": replaced}
                                 for path, replaced in changes.items()]}]


def _sarif_result(f: Finding, index: int, model: str) -> dict[str, Any]:
    region = {"startLine": f.line or 1, "startColumn": f.column or 1}
    if f.end_line:
        region.update(endLine=f.end_line, endColumn=f.end_column or 1)
    result: dict[str, Any] = {
        "ruleId": f.code, "ruleIndex": index, "level": _SARIF_LEVELS[f.severity],
        "message": {"text": f.text()},
        "locations": [{"physicalLocation": {"artifactLocation": _uri(f.path or ""),
                                            "region": region}}],
        "partialFingerprints": {"bnlint/v1": f"{f.code}:{model}:{f.module or ''}"},
        "properties": {"severity": f.severity, "category": f.category,
                       "evidence": f.evidence.to_dict()},
    }
    if f.module:
        result["locations"][0]["logicalLocations"] = [{"fullyQualifiedName": f.module,
                                                       "kind": "member"}]
    if f.fix and f.fix.replacements:
        result["fixes"] = _fixes(f)
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
            "columnKind": "unicodeCodePoints",  # as Python counts a str (fix replacements)
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
            "results": [_sarif_result(f, codes.index(f.code), f.message)
                        for f in report.file_findings if f.code in rules]
            + [_sarif_result(f, codes.index(f.code), m.name) for m in report.models
               for f in m.findings if f.code in rules],
            "invocations": [{"executionSuccessful": not report.errors,
                             "toolExecutionNotifications": [
                                 {"level": "error", "message": {"text": e.render()}}
                                 for e in report.errors]}],
        }],
    }
    return dumps(doc)
