"""SARIF 2.1.0 for GitHub code scanning: the rules, one result per finding, fixes included."""

from __future__ import annotations

import os
import re
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
