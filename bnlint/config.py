"""Settings from ``[tool.bnlint]`` in pyproject.toml or ``.bnlint.yaml``, overridden by the CLI.

Keys are the CLI's long option names (``fail-on``, ``input-shape``...). The nearest config file
above the working directory wins; ``--config`` names one explicitly.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError
from .files import read_text

# The defaults, each defined once here: Config, the Python API's ProbeOptions and the CLI's help
# (click's show_default) read them.
FAIL_ON_DEFAULT = "warning"
FORMAT = "text"
DEVICE = "auto"
TIMEOUT = 120.0       # seconds to import a file, and to lint each model
BATCH_SIZE = 16       # samples in inferred example inputs
TOKENS = 16           # tokens per sample in inferred token inputs
PROBE_BATCH = 64      # the probe's batch, and the training batch predictions assume
PROBE_STEPS = 20      # training steps after the measurement at initialisation
PROBE_BUDGET = 30.0   # seconds per model
PROBE_LR = 0.01       # the probe's optimizer when the config names none: SGD, this lr...
PROBE_MOMENTUM = 0.9  # ...and this momentum

SEVERITIES = ("error", "warning", "info")
FAIL_ON = (*SEVERITIES, "never")
FORMATS = ("text", "json", "sarif", "github", "html")
DEVICES = ("auto", "cpu", "cuda", "mps")
YAML_NAMES = (".bnlint.yaml", ".bnlint.yml")
OPTIMIZERS = ("sgd", "adam", "adamw", "lalc")  # those the probe can run
SHAPE = "a shape such as 8,3,32,32 (positive integers)"


@dataclass
class Optimizer:
    """The optimizer the user trains with, when known (for momentum- and lr-aware findings)."""
    name: str = "sgd"
    lr: float | None = None
    momentum: float = 0.0


@dataclass
class Config:
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    fail_on: str = FAIL_ON_DEFAULT
    format: str = FORMAT
    probe: bool = True
    device: str = DEVICE
    timeout: float = TIMEOUT
    model: list[str] = field(default_factory=list)
    input_shape: list[list[int]] | None = None
    targets: str | None = None
    target_std: float | None = None
    batch_size: int = BATCH_SIZE
    rules_dir: str | None = None
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    optimizer: Optimizer | None = None
    probe_batch: int = PROBE_BATCH
    probe_steps: int = PROBE_STEPS
    probe_budget: float = PROBE_BUDGET
    allow_no_models: bool = False  # skip given files that define no model (pre-commit's lists)
    source: str | None = None  # the config file these settings came from

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        data = dict(data)
        if data.get("optimizer") is not None:
            data["optimizer"] = Optimizer(**data["optimizer"])
        return cls(**data)

    def enabled(self, code: str) -> bool:
        """Whether a rule code passes --select/--ignore (prefixes allowed, e.g. ``BNL1``)."""
        if self.select and not any(code.startswith(p) for p in self.select):
            return False
        return not any(code.startswith(p) for p in self.ignore)


def _kebab(name: str) -> str:
    return name.replace("_", "-")


_KEYS = {_kebab(f.name): f.name for f in dataclasses.fields(Config) if f.name != "source"}


def _fail(source: str, key: str, expected: str, value: Any) -> InputError:
    return InputError(f"config key '{key}' must be {expected}, got {value!r}.", path=source,
                      hint="Fix the value in the config file.")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def split_codes(text: str) -> list[str]:
    """``BNL101, bnl2`` as ['BNL101', 'BNL2']."""
    return [v.strip().upper() for v in text.split(",") if v.strip()]


def _codes(source: str, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return split_codes(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(source, key, "a list of rule codes such as ['BNL101']", value)
    return [v.upper() for v in value]


def parse_shapes(text: str) -> list[list[int]]:
    """``8,3,32,32`` (one input) or ``8,16;8,4`` (several); ValueError unless every dimension
    is a positive integer."""
    shapes = [[int(p) for p in part.split(",") if p.strip()] for part in text.split(";")]
    if not all(shapes) or any(d <= 0 for s in shapes for d in s):
        raise ValueError(text)
    return shapes


def _shapes(source: str, key: str, value: Any) -> list[list[int]]:
    """A string as :func:`parse_shapes` reads it, ``[8, 3, 32, 32]`` or ``[[8, 16], [8, 4]]``."""
    if isinstance(value, str):
        try:
            return parse_shapes(value)
        except ValueError:
            raise _fail(source, key, SHAPE, value) from None
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        value = [value]
    ok = (isinstance(value, list) and value and all(
        isinstance(s, list) and s and all(type(d) is int and d > 0 for d in s) for s in value))
    if not ok:
        raise _fail(source, key, SHAPE, value)
    return value


def _optimizer(source: str, key: str, value: Any) -> Optimizer:
    if not isinstance(value, dict) or set(value) - {"name", "lr", "momentum"}:
        raise _fail(source, key, "a mapping with keys name, lr, momentum", value)
    opt = Optimizer(**value)
    if not isinstance(opt.name, str) or opt.name.lower() not in OPTIMIZERS:
        raise _fail(source, key + ".name", "one of " + ", ".join(OPTIMIZERS), opt.name)
    if opt.lr is not None and not (_number(opt.lr) and opt.lr > 0):
        raise _fail(source, key + ".lr", "a positive number", opt.lr)
    if not (_number(opt.momentum) and 0 <= opt.momentum < 1):
        raise _fail(source, key + ".momentum", "a number in [0, 1)", opt.momentum)
    return dataclasses.replace(opt, name=opt.name.lower())


def _validate(source: str, key: str, value: Any) -> Any:
    """Check one key's value and return it in the form Config holds."""
    name = _KEYS[key]
    if name in ("select", "ignore"):
        return _codes(source, key, value)
    if name == "model":
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(source, key, "a model name or list of names", value)
        return value
    if name == "input_shape":
        return _shapes(source, key, value)
    choices = {"fail_on": FAIL_ON, "format": FORMATS, "device": DEVICES}
    if name in choices:
        if value not in choices[name]:
            raise _fail(source, key, "one of " + ", ".join(choices[name]), value)
        return value
    if name in ("probe", "allow_no_models"):
        if not isinstance(value, bool):
            raise _fail(source, key, "true or false", value)
        return value
    if name in ("timeout", "target_std", "probe_budget"):
        if not (_number(value) and value > 0):
            raise _fail(source, key, "a positive number", value)
        return float(value)
    # The probe trains on at least 2 samples (BatchNorm); 0 steps measures the init only.
    least = {"batch_size": 1, "probe_batch": 2, "probe_steps": 0}
    if name in least:
        if isinstance(value, bool) or not isinstance(value, int) or value < least[name]:
            raise _fail(source, key, f"an integer >= {least[name]}", value)
        return value
    if name in ("rules_dir", "targets"):
        if not isinstance(value, str):
            raise _fail(source, key, "a path", value)
        return value
    if name == "thresholds":
        ok = isinstance(value, dict) and all(
            isinstance(code, str) and isinstance(t, dict)
            and all(isinstance(k, str) and _number(v) for k, v in t.items())
            for code, t in value.items())
        if not ok:
            raise _fail(source, key, "a mapping {CODE: {name: number}}", value)
        return {code.upper(): {_kebab(k).replace("-", "_"): float(v) for k, v in t.items()}
                for code, t in value.items()}
    if name == "optimizer":
        return _optimizer(source, key, value)
    raise AssertionError(name)  # every key in _KEYS is handled above


def from_mapping(data: Any, source: str) -> Config:
    """Build a Config from a parsed ``[tool.bnlint]`` table or ``.bnlint.yaml`` mapping."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError("the bnlint config must be a mapping of settings.", path=source)
    values: dict[str, Any] = {}
    for key, value in data.items():
        norm = _kebab(str(key))
        if norm not in _KEYS:
            raise InputError(f"unknown config key '{key}'.", path=source,
                             hint="Known keys: " + ", ".join(sorted(_KEYS)) + ".")
        values[_KEYS[norm]] = _validate(source, norm, value)
    if values.get("rules_dir"):
        values["rules_dir"] = str(Path(source).parent / values["rules_dir"])
    if values.get("targets"):
        values["targets"] = str(Path(source).parent / values["targets"])
    return Config(source=source, **values)


def _settings(path: Path) -> Any:
    """The settings a config file holds; None for a pyproject.toml without [tool.bnlint]."""
    text = read_text(path, "config file")
    if path.name == "pyproject.toml":
        try:
            tool = tomllib.loads(text).get("tool")
        except tomllib.TOMLDecodeError as exc:
            line = re.search(r"at line (\d+)", str(exc))
            raise InputError(f"invalid TOML: {exc}.", path=str(path),
                             line=int(line.group(1)) if line else None) from None
        return tool.get("bnlint") if isinstance(tool, dict) else None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = exc.problem_mark.line + 1 if getattr(exc, "problem_mark", None) else None
        raise InputError(f"invalid YAML: {getattr(exc, 'problem', exc)}.", path=str(path),
                         line=line) from None


def _mentions_bnlint(path: Path) -> bool:
    try:
        return b"bnlint" in path.read_bytes()
    except OSError:
        return False


def find_file(start: Path) -> tuple[Path, Any] | None:
    """The nearest .bnlint.yaml, or pyproject.toml with a [tool.bnlint] table, at or above
    start, with its settings. A pyproject.toml that cannot be parsed is an error when it
    mentions bnlint, and skipped when it does not (it cannot hold our table)."""
    for folder in [start, *start.parents]:
        for name in YAML_NAMES:
            if (folder / name).is_file():
                return folder / name, _settings(folder / name)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                settings = _settings(pyproject)
            except InputError:
                if _mentions_bnlint(pyproject):
                    raise
                continue
            if settings is not None:
                return pyproject, settings
    return None


def load(explicit: str | None, start: Path) -> Config:
    """The config from ``explicit`` if given, else the nearest config file, else defaults."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise InputError("config file not found.", path=explicit,
                             hint="Check the path given to --config.")
        found = path, _settings(path)
    else:
        found = find_file(start.resolve())
    return from_mapping(found[1], str(found[0])) if found else Config()


def _unknown_code(code: str, rules: dict[str, Any], where: str,
                  path: str | None) -> InputError:
    close = difflib.get_close_matches(code, list(rules), n=1)
    return InputError(f"{where} names unknown rule code {code}.", path=path,
                      hint=(f"Did you mean {close[0]}? " if close else "")
                      + "bnlint --list-rules lists the rules.")


def check_codes(rules: dict[str, Any], codes: list[str], where: str,
                path: str | None = None) -> None:
    """Reject codes (or prefixes such as ``BNL1``) that match no rule: a typo would otherwise
    select or ignore nothing, silently. ``where`` names the option or config key."""
    for code in codes:
        if not any(known.startswith(code) for known in rules):
            raise _unknown_code(code, rules, where, path)


def check_rules(config: Config, rules: dict[str, Any]) -> None:
    """Check the rule codes and threshold names a config file gives against the rules."""
    for key in ("select", "ignore"):
        check_codes(rules, getattr(config, key), f"config key '{key}'", config.source)
    for code, values in config.thresholds.items():
        if code not in rules:
            raise _unknown_code(code, rules, "config key 'thresholds'", config.source)
        known = rules[code].thresholds
        for name in values:
            if name not in known:
                raise InputError(
                    f"config key 'thresholds' sets {code}'s unknown threshold {name}.",
                    path=config.source,
                    hint=(f"{code}'s thresholds: {', '.join(known)}." if known
                          else f"{code} has no thresholds."))


def override(config: Config, **cli: Any) -> Config:
    """Apply CLI values (None means 'not given') on top of the config file's."""
    values = {k: v for k, v in cli.items() if v is not None and v != () and v != []}
    return dataclasses.replace(config, **values)
