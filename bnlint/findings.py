"""What bnlint found: Finding (with its Evidence and Fix), ModelReport and Report (plain data,
JSON-ready, no torch). A finding is built once, from its rule's message template; what the
probe's measurement says of it is a :class:`Verdict` in its evidence, which :meth:`Finding.text`
renders after the message."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import InputError
from .measurement import ProbeResult

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
    exclusive (SARIF's deletedRegion); an empty span is an insertion. ``old`` is what it was
    made against: the span's text, or for an insertion the whole line it goes into (with its
    newline); it is applied only where the file still holds that there."""
    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    text: str
    old: str = ""


@dataclass(frozen=True)
class KeyChange:
    """How a source fix changes the model's ``state_dict``, derived from the built model: the
    keys it ``removed`` and ``added``, and ``folded``: (bias key, running-mean key) for a bias
    dropped before a BatchNorm, which an old checkpoint folds into the running mean
    (``state[mean] -= state.pop(bias)``) so the model computes what it did in eval mode."""
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    folded: tuple[tuple[str, str], ...] = ()

    def sentence(self) -> str:
        """What the fix's description says of it."""
        def keys(names: tuple[str, ...]) -> str:
            return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4
                                           else "")
        parts = [f"removes {keys(self.removed)}" if self.removed else "",
                 f"adds {keys(self.added)}" if self.added else ""]
        return ("It changes the state_dict keys: " + " and ".join(p for p in parts if p)
                + " (--fix says how to load an old checkpoint).")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyChange:
        return cls(tuple(data["removed"]), tuple(data["added"]),
                   tuple(tuple(pair) for pair in data["folded"]))


@dataclass(frozen=True)
class Fix:
    """A repair for one finding. A source patch holds its ``replacements`` in the user's file
    and ``diff``, the unified diff rendered from them (JSON's ``fix.diff``); ``state_dict``
    how it changes the model's state_dict keys, when it does."""
    applicability: str  # safe | unsafe | display-only
    description: str
    replacements: tuple[Replacement, ...] = ()
    diff: str | None = None
    state_dict: KeyChange | None = None

    def public(self) -> dict[str, Any]:
        return {"applicability": self.applicability, "description": self.description,
                "diff": self.diff,
                "state_dict": asdict(self.state_dict) if self.state_dict else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fix:
        keys = data.get("state_dict")
        return cls(**{**data, "replacements": tuple(Replacement(**r)
                                                    for r in data.get("replacements", ())),
                      "state_dict": KeyChange.from_dict(keys) if keys else None})


@dataclass(frozen=True)
class Verdict:
    """What the probe's measurement says of a static finding: the measured value of the
    quantity its rule names (``measured:`` in the rule YAML), on which side of the rule's
    threshold it fell, and the severity a contradiction lowered to info, if it did."""
    key: str
    value: float
    device: str
    side: str            # above | below: where the measurement must be to confirm
    threshold: float
    confirmed: bool
    lowered_from: str | None = None

    def sentence(self, span: str | None = None, predicted: float | None = None,
                 how: str = "predicted") -> str:
        """How reports say it, after the finding's message ("" for an unconfirmed info): the
        quantity named for what it ``span``s (``body.0..body.87``), at initialisation, where
        the probe measures it, beside the static pass's value (``predicted``, or as ``how``
        says it got it)."""
        if not self.confirmed and not self.lowered_from:
            return ""
        unit = "x" if self.key.endswith("ratio") else ""
        said = (f"{_QUANTITIES.get(self.key, self.key)}{f' over {span}' if span else ''} at "
                f"initialisation: "
                + (f"{predicted:.3g}{unit} {how}, " if predicted is not None else "")
                + f"{self.value:.3g}{unit} measured on {self.device}, ")
        said = said[0].upper() + said[1:]
        if self.confirmed:
            return said + f"{self.side} the threshold {self.threshold:g}: confirmed."
        return (said + f"not {self.side} the threshold {self.threshold:g}: lowered from "
                f"{self.lowered_from} to info.")


# What a verdict's key measures, as its sentence names it.
_QUANTITIES = {"grad_ratio": "first/last weight-gradient ratio",
               "forward_rms_ratio": "last/first output RMS ratio",
               "dead_fraction": "dead fraction"}


_EVIDENCE_FIELDS = ("predicted", "measured", "modules")


@dataclass(frozen=True)
class Evidence:
    """Why a finding was reported: ``facts`` the rule found (the numbers its message quotes,
    rule by rule), ``predicted`` the quantities bnlint predicted statically, ``measured`` the
    probe's values (of the predicted quantities, or what a measured rule judged), ``verdict``
    the measurement's confirmation or contradiction, ``modules`` every module the finding's
    line builds with the problem (one edit fixes them all)."""
    facts: Mapping[str, Any] = field(default_factory=dict)
    predicted: Mapping[str, Any] = field(default_factory=dict)
    measured: Mapping[str, Any] = field(default_factory=dict)
    verdict: Verdict | None = None
    modules: tuple[str, ...] = ()

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Evidence:
        """From a finder's evidence mapping: its predicted/measured/modules keys go to those
        fields, the rest are facts."""
        return cls(facts={k: v for k, v in values.items() if k not in _EVIDENCE_FIELDS},
                   predicted=dict(values.get("predicted") or {}),
                   measured=dict(values.get("measured") or {}),
                   modules=tuple(values.get("modules") or ()))

    def static(self, key: str) -> Any:
        """The static pass's value of ``key``, which raised the finding: the one it measured
        on the example batch (``example_batch``, BNL403's dead share), else its prediction."""
        measured = self.facts.get("example_batch")
        if isinstance(measured, Mapping) and key in measured:
            return measured[key]
        return self.predicted.get(key)

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form: the facts, and each other field that is set (``confirmed``
        repeats the verdict's, for consumers that only need that)."""
        data = dict(self.facts)
        data.update({name: value for name, value in (("predicted", dict(self.predicted)),
                                                     ("measured", dict(self.measured)),
                                                     ("modules", list(self.modules))) if value})
        if self.verdict is not None:
            data.update(verdict=asdict(self.verdict), confirmed=self.verdict.confirmed)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        verdict = data.get("verdict")
        facts = {k: v for k, v in data.items() if k not in ("verdict", "confirmed")}
        return dataclasses.replace(cls.of(facts),
                                   verdict=Verdict(**verdict) if verdict else None)


@dataclass(frozen=True)
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
    evidence: Evidence = field(default_factory=Evidence)
    fix: Fix | None = None
    end_line: int | None = None
    end_column: int | None = None

    def sort_key(self) -> tuple:
        return (self.path or "", self.line or 0, self.column or 0, self.code, self.module or "")

    def text(self) -> str:
        """The message as reports show it: the rule's message, then what the measurement
        said of it."""
        v = self.evidence.verdict
        if v is None:
            return self.message
        first, last = (self.evidence.facts.get(k) for k in ("first_module", "last_module"))
        static = self.evidence.static(v.key)
        on_batch = static is not self.evidence.predicted.get(v.key)
        verdict = v.sentence(f"{first}..{last}" if first and last else None,
                             static if isinstance(static, (int, float)) else None,
                             "on the example batch" if on_batch else "predicted")
        return f"{self.message} {verdict}" if verdict else self.message

    def public(self) -> dict[str, Any]:
        data = self.to_dict()
        data["message"] = self.text()
        data["fix"] = self.fix.public() if self.fix else None
        return data

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["evidence"] = self.evidence.to_dict()
        data["fix"] = asdict(self.fix) if self.fix else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        data = dict(data)
        data["evidence"] = Evidence.from_dict(data.get("evidence") or {})
        if data.get("fix"):
            data["fix"] = Fix.from_dict(data["fix"])
        return cls(**data)


@dataclass(frozen=True)
class InputsUsed:
    """The example inputs a model was linted with: their shapes and how they were chosen."""
    shapes: tuple[tuple[int, ...], ...]
    how: str


@dataclass
class ModelReport:
    """One model's report. ``explosion`` is BNL901's reading of the probe's gradient-ratio
    trajectory (none, temporal, persistent, late, or unknown after no training step), when the
    probe ran."""
    name: str
    path: str | None
    line: int | None
    trace: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    probe: ProbeResult | None = None
    suggestions: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    explosion: str | None = None
    inputs: InputsUsed | None = None

    def _probe_dict(self) -> dict[str, Any] | None:
        if self.probe is None:
            return None
        return {**self.probe.to_dict(), "explosion": self.explosion}

    def public(self) -> dict[str, Any]:
        """The model's part of the JSON report (NaN/Inf as null)."""
        return finite_json({"name": self.name, "path": self.path, "line": self.line,
                            "trace": self.trace,
                            "inputs": asdict(self.inputs) if self.inputs else None,
                            "findings": [f.public() for f in self.findings],
                            "probe": self._probe_dict(), "suggestions": self.suggestions,
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
        probe = data.pop("probe", None)
        data["explosion"] = probe.get("explosion") if probe else None
        data["probe"] = ProbeResult.from_dict(probe) if probe else None
        inputs = data.get("inputs")
        data["inputs"] = InputsUsed(tuple(map(tuple, inputs["shapes"])), inputs["how"]) \
            if inputs else None
        return cls(**data)


@dataclass
class Report:
    """The run's models, its ``file_findings`` (problems in the user's code that no model
    holds: a file that does not import, a model that could not be built or run, the 0xx
    family) and ``errors`` (bnlint's usage errors: exit 2). ``cached``: the files whose
    results came from the cache (the text report says how many; the documents are the same
    either way)."""
    models: list[ModelReport] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    files: int = 0
    file_findings: list[Finding] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [*self.file_findings, *(f for m in self.models for f in m.findings)]

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
        """0: nothing at or above ``fail_on``; 1: findings (problems in the user's code
        among them); 2: a usage error occurred."""
        if self.errors:
            return 2
        if fail_on == "never":
            return 0
        bar = SEVERITY_RANK[fail_on]
        return 1 if any(SEVERITY_RANK[f.severity] >= bar for f in self.findings) else 0

    def public(self) -> dict[str, Any]:
        return {"version": VERSION, "models": [m.public() for m in self.models],
                "findings": [f.public() for f in sorted(self.file_findings,
                                                        key=Finding.sort_key)],
                "errors": [e.to_dict() for e in self.errors], "summary": self.summary()}
