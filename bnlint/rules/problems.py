"""Problems in the user's code as findings: a :class:`UserCodeError` (an import, constructor or
forward that raised, a hang, a model not built) becomes a finding of its 0xx rule, located
where the error is."""

from __future__ import annotations

from ..config import Config
from ..errors import UserCodeError
from ..findings import Finding, Report
from .catalog import Rule


def finding(error: UserCodeError, rule: Rule) -> Finding:
    """The finding that reports ``error`` under ``rule`` (its message template takes the
    error's ``problem`` and ``hint``)."""
    message = rule.message.format(problem=error.message, hint=error.hint or "").strip()
    return Finding(code=rule.code, name=rule.name, category=rule.category,
                   severity=rule.severity, message=message, path=error.path,
                   line=error.line, column=1 if error.line else None, module=None)


def add(report: Report, error: UserCodeError, path: str, rules: dict[str, Rule],
        config: Config) -> None:
    """Add ``error`` (met while linting the file at ``path``) to ``report``'s file findings: a
    file or model that could not be linted whatever the selection (as ruff reports a syntax
    error), a "not linted" note only if its rule is selected; once, when several models meet
    the same problem (the file's example inputs, say)."""
    error.path = error.path or path  # e.g. raised inside torch
    if rules[error.code].severity == "error" or config.enabled(error.code):
        found = finding(error, rules[error.code])
        if found not in report.file_findings:  # one file value that fails each of its models
            report.file_findings.append(found)
