"""SARIF 2.1.0 for GitHub code scanning: the rules, one result per finding, fixes included,
within the limits code scanning accepts (the most severe results kept, and the run says what
was left out)."""

from __future__ import annotations

import gzip
import os
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..findings import SEVERITY_RANK, VERSION, Finding, Report
from ..rules.catalog import Rule
from .json_report import dumps
from .paths import relative

INFORMATION_URI = "https://github.com/bnlint/bnlint"
_SARIF_LEVELS = {"error": "error", "warning": "warning", "info": "note"}
# GitHub code scanning rejects a run with more results, or an upload larger than this once
# gzipped (docs.github.com, code-security: "SARIF results exceed limit", "SARIF results file is
# too large"); a result may have 1,000 locations (bnlint gives one). The upload action gzips
# at zlib's default level, 6.
MAX_RESULTS = 25_000
MAX_GZIP_BYTES = 10 * 1000 * 1000
GZIP_LEVEL = 6


def _uri(path: str) -> dict[str, str]:
    """An artifact location: relative to %SRCROOT% (the working directory) when under it,
    else a file:// URI; percent-encoded (RFC 3986: spaces, #, %, non-ASCII as UTF-8)."""
    rel = relative(path)
    if rel == path and os.path.isabs(path):
        return {"uri": Path(path).as_uri()}
    return {"uri": quote(Path(rel).as_posix()), "uriBaseId": "%SRCROOT%"}


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
    # the problems in the user's code first (no model holds them), then each model's findings
    pairs = [(f, f.message) for f in report.file_findings if f.code in rules] + [
        (f, m.name) for m in report.models for f in m.findings if f.code in rules]
    findings = [f for f, _ in pairs]
    results = [_sarif_result(f, codes.index(f.code), name) for f, name in pairs]
    notes = [{"level": "error", "message": {"text": e.render()}} for e in report.errors]
    # The most severe first, in report order within a severity: the ones a cut keeps.
    ranked = sorted(range(len(findings)), key=lambda i: -SEVERITY_RANK[findings[i].severity])

    def cut(count: int) -> str:
        """The document with the ``count`` most severe results."""
        kept = sorted(ranked[:count])
        return dumps({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {"name": "bnlint", "version": VERSION,
                                    "informationUri": INFORMATION_URI,
                                    "rules": [_sarif_rule(r) for r in rules.values()]}},
                "columnKind": "unicodeCodePoints",  # findings and fixes count characters
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
                "results": [results[i] for i in kept],
                "invocations": [{"executionSuccessful": not report.errors,
                                 "toolExecutionNotifications": notes + _left_out(
                                     [findings[i] for i in ranked[count:]], count)}],
            }],
        })

    count = min(len(findings), MAX_RESULTS)
    text = cut(count)
    if _gzipped_size(text) > MAX_GZIP_BYTES:  # the most results that fit, by bisection
        low, high = 0, count - 1
        while low < high:
            mid = (low + high + 1) // 2
            if _gzipped_size(cut(mid)) <= MAX_GZIP_BYTES:
                low = mid
            else:
                high = mid - 1
        text = cut(low)
    return text


def _gzipped_size(text: str) -> int:
    return len(gzip.compress(text.encode("utf-8"), compresslevel=GZIP_LEVEL))


def _left_out(findings: list[Finding], kept: int) -> list[dict[str, Any]]:
    """The notification saying which results were left out to fit code scanning's limits."""
    if not findings:
        return []
    levels = Counter(_SARIF_LEVELS[f.severity] for f in findings)
    codes = Counter(f.code for f in findings)
    return [{"level": "warning", "message": {"text": (
        f"{len(findings)} results left out to stay within GitHub code scanning's limits "
        f"({MAX_RESULTS} results per run, {MAX_GZIP_BYTES // 1000 // 1000} MB gzipped); the "
        f"{kept} most severe are kept. Left out by level: "
        + ", ".join(f"{level} {n}" for level, n in sorted(levels.items())) + "; by rule: "
        + ", ".join(f"{code} {n}" for code, n in sorted(codes.items())) + ".")}}]
