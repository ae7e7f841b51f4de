"""The rule catalog: one YAML file per rule in rules/, validated when loaded.

A rule's YAML holds what a person reads and tunes (summary, why, example, thresholds...);
its finder is either a ``pattern`` (matched by :mod:`bnlint.checks.patterns`) or a Python
function registered under its code in :mod:`bnlint.checks`.
"""

from __future__ import annotations

import ast
import dataclasses
import keyword
import math
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import SEVERITIES
from ..errors import InputError
from ..files import read_text
from ..measurement import PROBE_PARTS

BUILTIN_RULES = Path(__file__).parent  # the BNL*.yaml pages beside their finders

CATEGORIES = {0: "trace", 1: "ordering", 2: "depth", 3: "init", 4: "targets",
              5: "learning-rate", 9: "measured"}
APPLICABILITY = ("safe", "unsafe", "display-only")
FIX_KINDS = ("source", "graph", "suggestion")
CALL_ACTIONS = ("set_kwarg", "remove_op")  # edits of the call that built a module
MODEL_ACTIONS = ("write_repair",)          # edits of the model's definition
EDIT_ACTIONS = CALL_ACTIONS + MODEL_ACTIONS
# A template (message, fix description) names a field, or a matched layer's label or what:
# ``{ratio:.3g}``, ``{m0.label}``; no other attribute, no index, no conversion, no nested field,
# so a rule file cannot reach past what its finder hands it.
TEMPLATE_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.(label|what))?$")
# Graph repairs a rule may name in fix.repair (bnlint/repair.py), in the order bnlint.fix
# applies them (bnlint/fixes/model.py): structure, then initialisation, then activation shaping.
REPAIRS = ("drop_bias", "drop_output_relu", "he_init", "orthogonal_init", "zero_init_residual",
           "shape_activations")
# The repairs a write_repair edit writes into the user's file (bnlint/fixes/written.py).
WRITTEN_REPAIRS = ("he_init", "orthogonal_init", "zero_init_residual", "shape_activations")
MEASURED_KEYS = ("grad_ratio", "dead_fraction", "forward_rms_ratio")
CODE_RE = re.compile(r"^BNL\d{3}$")
NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
REFERENCE_RE = re.compile(r"^(arXiv:\d{4}\.\d{4,5}|https?://\S+|[A-Z][^\n]{5,})$")

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10x faster

# A rule case (bnlint/testing.py): the model and its inputs; an INVALID case may pin the
# finding's module, a fragment of its message and the source once its fix is applied.
CASE_KEYS = ("model", "input_shape", "inputs", "targets", "config")
PINS = ("module", "message", "fixed")

REQUIRED = ("code", "name", "severity", "summary", "message", "why", "example", "use_instead",
            "references")
OPTIONAL = ("fix", "thresholds", "pattern", "at", "tests", "measured", "reads_weights", "symptom",
            "escalation", "probe_reads", "found_by", "forward_examples")
# A rule found while importing and building the user's file (the 0xx problems in the user's
# code), not by a finder reading the model: its cases are files, linted as the worker does.
FOUND_BY = ("discovery",)
# What a finding says about training, for advice that follows from it (``symptom:``).
SYMPTOMS = ("exploding-gradients",)


@dataclass(frozen=True)
class Confirmation:
    """The probe quantity that confirms a static finding (``measured:`` in the YAML): the
    measured ``key`` must lie on ``side`` (above or below) of the rule's ``threshold``."""
    key: str
    side: str
    threshold: str


@dataclass(frozen=True)
class Edit:
    """A source edit, as a rule's ``fix.edit`` names it (bnlint/fixes/source.py makes it):
    ``set_kwarg`` sets argument ``name`` to ``value`` (a Python literal) in the call that built
    the module; ``remove_op`` makes that op the identity; ``write_repair`` writes the rule's
    ``fix.repair`` (one of :data:`WRITTEN_REPAIRS`) as plain PyTorch where the model is
    built."""
    action: str
    name: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class RuleFix:
    """A rule's ``fix``: how the finding is repaired and how safely. ``description`` is a
    message template (the rule's ``use_instead`` when absent); ``edit`` patches the user's
    source; ``repair`` names the graph repair ``bnlint.fix`` applies (REPAIRS)."""
    kind: str           # FIX_KINDS
    applicability: str  # APPLICABILITY
    description: str | None = None
    edit: Edit | None = None
    repair: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuleFix:
        edit = data.get("edit")
        return cls(**{**data, "edit": Edit(**edit) if edit else None})


@dataclass
class Rule:
    code: str
    name: str
    severity: str
    summary: str
    message: str
    why: str
    example: str
    use_instead: str
    references: list[str]
    fix: RuleFix | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    pattern: list[dict[str, Any]] | None = None
    at: int = 0
    measured: Confirmation | None = None
    reads_weights: bool = False  # reads weight values or runs the model: skipped on meta
    escalation: str | None = None  # when a finding gets another severity: a template of thresholds
    symptom: str | None = None
    probe_reads: list[str] = field(default_factory=list)  # probe parts past the initialisation
    found_by: str | None = None  # FOUND_BY; None: a finder (pattern or registered) finds it
    # the threshold that says how many of bnlint's inferred random examples the static forward
    # must run for this rule (it reads that forward's activations); None: it reads none
    forward_examples: str | None = None
    tests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    path: str = ""

    @property
    def category(self) -> str:
        return CATEGORIES[int(self.code[3])]

    def severity_label(self, overrides: dict[str, dict[str, float]] | None = None) -> str:
        """The severity as reports list it, with its escalation (``warning; error when ...``)."""
        if not self.escalation:
            return self.severity
        values = {name: self.threshold(name, overrides) for name in self.thresholds}
        return f"{self.severity}; {self.escalation.format(**values)}"

    def to_dict(self) -> dict[str, Any]:
        """The rule as plain data, for the worker process (see :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        measured, fix = data.get("measured"), data.get("fix")
        return cls(**{**data, "measured": Confirmation(**measured) if measured else None,
                      "fix": RuleFix.from_dict(fix) if fix else None})

    def threshold(self, name: str, overrides: dict[str, dict[str, float]] | None = None) -> float:
        """A threshold value, with the user's config override applied."""
        if overrides and name in overrides.get(self.code, {}):
            return overrides[self.code][name]
        return self.thresholds[name]


def _check(cond: bool, path: Path, what: str, line: int | None = None) -> None:
    if not cond:
        raise InputError(f"invalid rule file: {what}.", path=str(path), line=line,
                         hint="See 'How to add a rule' in the README for the format.")


def _line(text: str | None, snippet: str) -> int | None:
    """The first line of the rule file holding ``snippet``, to locate a problem."""
    for number, line in enumerate((text or "").splitlines(), 1):
        if snippet in line:
            return number
    return None


def _template(value: Any, path: Path, key: str, text: str | None) -> None:
    """Refuse a template that could reach past its fields (see :data:`TEMPLATE_FIELD`)."""
    _check(isinstance(value, str), path, f"{key} must be text")
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion
                  in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        _check(False, path, f"{key} is not a valid template ({exc}); write a literal brace "
                            "as {{ or }}", _line(text, "{"))
        return
    for name, spec, conversion in fields:
        shown = "{" + name + ("!" + conversion if conversion else "") + \
            (":" + spec if spec else "") + "}"
        _check(bool(TEMPLATE_FIELD.match(name)) and conversion is None and "{" not in spec,
               path, f"{key} template field {shown} may only name a field, such as {{ratio}} "
                     "or {ratio:.3g}, or a matched layer's .label or .what (no other "
                     "attribute, index or conversion)", _line(text, "{" + name))


def _threshold(name: Any, value: Any) -> bool:
    return isinstance(name, str) and isinstance(value, (int, float)) \
        and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _pattern_step(step: Any, path: Path) -> dict[str, Any]:
    """Normalise one pattern step: 'BatchNorm*' or {type: [...], attrs: {...}, only: bool}."""
    if isinstance(step, str):
        step = {"type": [step]}
    _check(isinstance(step, dict) and "type" in step, path, "each pattern step needs a type")
    types = step["type"] if isinstance(step["type"], list) else [step["type"]]
    _check(all(isinstance(t, str) for t in types), path, "pattern types must be strings")
    unknown = set(step) - {"type", "attrs", "only"}
    _check(not unknown, path, f"unknown pattern step keys {sorted(unknown)}")
    attrs = step.get("attrs", {})
    _check(isinstance(attrs, dict), path, "pattern attrs must be a mapping")
    return {"type": types, "attrs": attrs, "only": bool(step.get("only", False))}


# What each edit action takes besides ``action``: its required keys.
_EDIT_KEYS = {"set_kwarg": ("name", "value"), "remove_op": (), "write_repair": ()}


def _is_literal(text: str) -> bool:
    """Python source for a literal (``False``, ``0.1``, ``(1, 2)``): nothing that runs."""
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _rule_fix(fix: Any, path: Path, text: str | None) -> RuleFix | None:
    """Validate a rule's ``fix`` mapping and build the RuleFix. Its edit writes into the
    user's source, so a value is a literal and a call one of bnlint.repair's functions."""
    if fix is None:
        return None
    _check(isinstance(fix, dict) and fix.get("kind") in FIX_KINDS
           and fix.get("applicability") in APPLICABILITY, path,
           f"fix needs kind {FIX_KINDS} and applicability {APPLICABILITY}")
    _check(set(fix) <= {"kind", "applicability", "description", "edit", "repair"}, path,
           "fix keys are kind, applicability, description, edit, repair")
    _check(fix.get("repair") in (None, *REPAIRS), path, f"fix.repair must be one of {REPAIRS}")
    _check(isinstance(fix.get("description", ""), str), path, "fix.description must be text")
    edit = fix.get("edit")
    if edit is not None:
        _check(isinstance(edit, dict) and edit.get("action") in EDIT_ACTIONS, path,
               f"fix.edit needs an action in {EDIT_ACTIONS}", _line(text, "edit:"))
        keys = _EDIT_KEYS[edit["action"]]
        _check(set(edit) == {"action", *keys} and all(isinstance(edit[k], str) for k in keys),
               path, f"fix.edit {edit['action']} takes {', '.join(keys) or 'nothing else'} "
                     "(as text)", _line(text, "edit:"))
        line = _line(text, "edit:")
        _check(edit["action"] != "set_kwarg" or (edit["name"].isidentifier()
                                                  and not keyword.iskeyword(edit["name"])), path,
               "fix.edit set_kwarg needs a keyword argument's name", line)
        _check(edit["action"] != "set_kwarg" or _is_literal(edit["value"]), path,
               f"fix.edit value {edit.get('value')!r} must be a Python literal such as "
               "\"False\" or \"0.1\" (it is written into the model's source)", line)
        _check(edit["action"] != "write_repair" or fix.get("repair") in WRITTEN_REPAIRS,
               path, f"fix.edit write_repair needs a fix.repair in {', '.join(WRITTEN_REPAIRS)}",
               line)
        edit = Edit(**edit)
    return RuleFix(kind=fix["kind"], applicability=fix["applicability"],
                   description=fix.get("description"), edit=edit, repair=fix.get("repair"))


def _template_fields(template: str) -> list[str]:
    """The field names a format template uses (``{ratio_error:g}`` -> ratio_error)."""
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError:
        return ["{"]  # malformed braces: no threshold has that name


def parse_rule(data: Any, path: Path, text: str | None = None) -> Rule:
    """Validate one rule's YAML mapping and build the Rule (``text``, the file, locates
    problems by line)."""
    _check(isinstance(data, dict), path, "the file must hold a mapping")
    missing = [k for k in REQUIRED if not data.get(k)]
    _check(not missing, path, f"missing keys {missing}")
    unknown = set(data) - set(REQUIRED) - set(OPTIONAL)
    _check(not unknown, path, f"unknown keys {sorted(unknown)}")
    _check(bool(CODE_RE.match(str(data["code"]))), path, "code must look like BNL101")
    _check(int(str(data["code"])[3]) in CATEGORIES, path, "unknown rule family (hundreds digit)")
    _check(bool(NAME_RE.match(str(data["name"]))), path, "name must be kebab-case")
    _check(data["severity"] in SEVERITIES, path, f"severity must be one of {SEVERITIES}")
    refs = data["references"]
    _check(isinstance(refs, list) and all(isinstance(r, str) and REFERENCE_RE.match(r)
                                          for r in refs), path,
           "references must be arXiv:NNNN.NNNNN ids, URLs or citations")
    fix = _rule_fix(data.get("fix"), path, text)
    if fix is not None:  # its description is a template, and without one use_instead is
        _template(fix.description if fix.description is not None else data["use_instead"],
                  path, "fix.description" if fix.description is not None else "use_instead",
                  text)
    _template(data["message"], path, "message", text)
    thresholds = data.get("thresholds") or {}
    _check(isinstance(thresholds, dict), path, "thresholds must map names to numbers")
    for name, value in thresholds.items():
        _check(_threshold(name, value), path, f"threshold {name} = {value!r} must be a finite "
                                              "number >= 0", _line(text, str(name)))
    pattern = data.get("pattern")
    if pattern is not None:
        _check(isinstance(pattern, list) and len(pattern) >= 1, path,
               "a pattern is a list of steps")
        pattern = [_pattern_step(s, path) for s in pattern]
        _check(0 <= int(data.get("at", 0)) < len(pattern), path, "'at' must index a step")
    measured = data.get("measured")
    if measured is not None:
        sides = [k for k in ("above", "below") if k in (measured or {})]
        _check(isinstance(measured, dict) and measured.get("key") in MEASURED_KEYS
               and len(sides) == 1 and measured[sides[0]] in thresholds
               and set(measured) == {"key", sides[0]}, path,
               f"measured needs a key in {MEASURED_KEYS} and above/below naming a threshold")
        measured = Confirmation(measured["key"], sides[0], measured[sides[0]])
    _check(isinstance(data.get("reads_weights", False), bool), path,
           "reads_weights must be true or false")
    _check(data.get("symptom") in (None, *SYMPTOMS), path, f"symptom must be one of {SYMPTOMS}")
    _check(data.get("found_by") in (None, *FOUND_BY), path, f"found_by must be one of {FOUND_BY}")
    _check(data.get("forward_examples") in (None, *thresholds), path,
           "forward_examples must name one of the rule's thresholds")
    probe_reads = data.get("probe_reads") or []
    _check(isinstance(probe_reads, list) and set(probe_reads) <= set(PROBE_PARTS), path,
           f"probe_reads must be a list of {PROBE_PARTS}")
    escalation = data.get("escalation")
    _check(escalation is None or (isinstance(escalation, str) and all(
        field in thresholds for field in _template_fields(escalation))), path,
        "escalation must be a text whose {fields} name the rule's thresholds")
    tests = data.get("tests") or {}
    _check(isinstance(tests, dict) and set(tests) <= {"valid", "invalid"} and all(
        isinstance(v, list) and all(isinstance(c, dict) and "model" in c for c in v)
        for v in tests.values()), path,
        "tests must be {valid: [...], invalid: [...]} of {model: ...}")
    for kind, cases in tests.items():
        allowed = CASE_KEYS + (PINS if kind == "invalid" else ())
        for case in cases:
            unknown = set(case) - set(allowed)
            _check(not unknown, path, f"unknown keys {sorted(unknown)} in a tests.{kind} case "
                                      f"(it may give {', '.join(allowed)})")
            _check("fixed" not in case or (fix is not None and fix.edit is not None), path,
                   "a case gives 'fixed' only for a rule whose fix has an edit")
    return Rule(code=data["code"], name=data["name"], severity=data["severity"],
                summary=data["summary"].strip(), message=data["message"].strip(),
                why=data["why"].strip(), example=data["example"].rstrip(),
                use_instead=data["use_instead"].rstrip(), references=list(refs), fix=fix,
                thresholds={k: float(v) for k, v in thresholds.items()}, pattern=pattern,
                at=int(data.get("at", 0)), measured=measured,
                reads_weights=data.get("reads_weights", False), symptom=data.get("symptom"),
                escalation=escalation, probe_reads=list(probe_reads), tests=tests,
                found_by=data.get("found_by"), forward_examples=data.get("forward_examples"),
                path=str(path))


def read_rule(path: Path) -> Rule:
    text = read_text(path, "rule file")
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"invalid YAML in rule file: {getattr(exc, 'problem', exc)}.",
                         path=str(path), line=mark.line + 1 if mark else None) from None
    return parse_rule(data, path, text)


def load(extra_dir: str | None = None) -> dict[str, Rule]:
    """All rules by code: the built-in catalog plus those in ``extra_dir`` (--rules-dir)."""
    rules: dict[str, Rule] = {}
    names: dict[str, str] = {}
    dirs = [BUILTIN_RULES]
    if extra_dir:
        extra = Path(extra_dir)
        if not extra.is_dir():
            raise InputError("rules directory not found.", path=extra_dir,
                             hint="Check --rules-dir / rules-dir in the config.")
        dirs.append(extra)
    for folder in dirs:
        for path in sorted(folder.glob("*.yaml")):
            rule = read_rule(path)
            for key, seen in ((rule.code, rules), (rule.name, names)):
                if key in seen:
                    other = seen[key].path if isinstance(seen[key], Rule) else seen[key]
                    raise InputError(f"duplicate rule {key} (also in {other}).", path=str(path),
                                     hint="Give each rule its own code and name.")
            rules[rule.code] = rule
            names[rule.name] = str(path)
    return dict(sorted(rules.items()))
