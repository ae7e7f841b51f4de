"""What bnlint found: Finding, ModelReport and Report (plain data, JSON-ready, no torch)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import InputError

VERSION = "0.1.0"


def finite_json(value: Any) -> Any:
    """The value with every NaN/Inf float replaced by None (JSON null): JSON (RFC 8259) has
    no literal for them, and strict parsers reject Python's NaN/Infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class Replacement:
    """New text for a span of a file: 1-based lines and columns counted in characters, the end
    exclusive (SARIF's deletedRegion); an empty span is an insertion."""
    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    text: str


@dataclass(frozen=True)
class Fix:
    """A repair for one finding. A source patch holds its ``replacements`` in the user's file
    and ``diff``, the unified diff rendered from them (JSON's ``fix.diff``)."""
    applicability: str  # safe | unsafe | display-only
    description: str
    replacements: tuple[Replacement, ...] = ()
    diff: str | None = None

    def public(self) -> dict[str, Any]:
        return {"applicability": self.applicability, "description": self.description,
                "diff": self.diff}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fix:
        return cls(**{**data, "replacements": tuple(Replacement(**r)
                                                    for r in data.get("replacements", ()))})


@dataclass
class Finding:
    code: str
    name: str
    category: str
    severity: str
    message: str
    path: str | None
    line: int | None
    column: int | None
    module: str | None
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: Fix | None = None
    end_line: int | None = None
    end_column: int | None = None

    def sort_key(self) -> tuple:
        return (self.path or "", self.line or 0, self.column or 0, self.code, self.module or "")

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["fix"] = self.fix.public() if self.fix else None
        return data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        data = dict(data)
        if data.get("fix"):
            data["fix"] = Fix.from_dict(data["fix"])
        return cls(**data)


@dataclass
class ModelReport:
    name: str
    path: str | None
    line: int | None
    trace: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    probe: dict[str, Any] | None = None
    suggestions: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """The model's part of the JSON report (NaN/Inf as null)."""
        return finite_json({"name": self.name, "path": self.path, "line": self.line,
                            "trace": self.trace, "findings": [f.public() for f in self.findings],
                            "probe": self.probe, "suggestions": self.suggestions,
                            "notes": self.notes})

    def to_dict(self) -> dict[str, Any]:
        """Everything, for the worker-to-parent channel (fix replacements included)."""
        data = self.public()
        data["findings"] = finite_json([f.to_dict() for f in self.findings])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelReport:
        data = dict(data)
        data["findings"] = [Finding.from_dict(f) for f in data.get("findings", [])]
        return cls(**data)


@dataclass
class Report:
    models: list[ModelReport] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    files: int = 0

    @property
    def findings(self) -> list[Finding]:
        return [f for m in self.models for f in m.findings]

    def summary(self) -> dict[str, Any]:
        counts = dict.fromkeys(SEVERITY_RANK, 0)
        for f in self.findings:
            counts[f.severity] += 1
        # One per rule and line: models built by the same code report it each, one edit fixes it.
        patched = list({(f.code, f.path, f.line, f.column): f.fix.applicability
                        for f in self.findings if f.fix and f.fix.diff}.values())
        return {"files": self.files, "models": len(self.models),
                "findings": len(self.findings), **counts,
                "fixable": patched.count("safe"), "unsafe_fixable": patched.count("unsafe"),
                "errors": len(self.errors)}

    def exit_code(self, fail_on: str) -> int:
        """0: nothing at or above ``fail_on``; 1: findings; 2: an input error occurred."""
        if self.errors:
            return 2
        if fail_on == "never":
            return 0
        bar = SEVERITY_RANK[fail_on]
        return 1 if any(SEVERITY_RANK[f.severity] >= bar for f in self.findings) else 0

    def public(self) -> dict[str, Any]:
        return {"version": VERSION, "models": [m.public() for m in self.models],
                "errors": [e.to_dict() for e in self.errors], "summary": self.summary()}
