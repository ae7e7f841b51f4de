"""Settings from ``[tool.bnlint]`` in pyproject.toml or ``.bnlint.yaml``, overridden by the CLI.

Keys are the CLI's long option names (``fail-on``, ``input-shape``...). The nearest config file
above the working directory wins; ``--config`` names one explicitly.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

SEVERITIES = ("error", "warning", "info")
FAIL_ON = (*SEVERITIES, "never")
FORMATS = ("text", "json", "sarif", "github")
DEVICES = ("auto", "cpu", "cuda", "mps")
YAML_NAMES = (".bnlint.yaml", ".bnlint.yml")


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
    fail_on: str = "warning"
    format: str = "text"
    probe: bool = True
    device: str = "auto"
    timeout: float = 120.0
    model: list[str] = field(default_factory=list)
    input_shape: list[list[int]] | None = None
    targets: str | None = None
    target_std: float | None = None
    batch_size: int = 16
    rules_dir: str | None = None
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    optimizer: Optimizer | None = None
    probe_batch: int = 64
    probe_steps: int = 20
    probe_budget: float = 30.0
    source: str | None = None  # the config file these settings came from

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
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


def parse_codes(source: str, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(source, key, "a list of rule codes such as ['BNL101']", value)
    return [v.upper() for v in value]


def parse_shapes(source: str, key: str, value: Any) -> list[list[int]]:
    """``8,3,32,32`` or ``[8, 3, 32, 32]`` (one input) or ``[[8, 16], [8, 4]]`` (several)."""
    if isinstance(value, str):
        try:
            value = [[int(p) for p in part.split(",") if p.strip()] for part in value.split(";")]
        except ValueError:
            raise _fail(source, key, "a shape such as 8,3,32,32 (positive integers)",
                        value) from None
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        value = [value]
    ok = (isinstance(value, list) and value and all(
        isinstance(s, list) and s and all(isinstance(d, int) and d > 0 for d in s) for s in value))
    if not ok:
        raise _fail(source, key, "a shape such as 8,3,32,32 (positive integers)", value)
    return value


def _validate(source: str, key: str, value: Any) -> Any:
    """Check one key's value and return it in the form Config holds."""
    name = _KEYS[key]
    if name in ("select", "ignore"):
        return parse_codes(source, key, value)
    if name == "model":
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(source, key, "a model name or list of names", value)
        return value
    if name == "input_shape":
        return parse_shapes(source, key, value)
    choices = {"fail_on": FAIL_ON, "format": FORMATS, "device": DEVICES}
    if name in choices:
        if value not in choices[name]:
            raise _fail(source, key, "one of " + ", ".join(choices[name]), value)
        return value
    if name == "probe":
        if not isinstance(value, bool):
            raise _fail(source, key, "true or false", value)
        return value
    if name in ("timeout", "target_std", "probe_budget"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise _fail(source, key, "a positive number", value)
        return float(value)
    if name in ("batch_size", "probe_batch", "probe_steps"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(source, key, "a positive integer", value)
        return value
    if name in ("rules_dir", "targets"):
        if not isinstance(value, str):
            raise _fail(source, key, "a path", value)
        return value
    if name == "thresholds":
        ok = isinstance(value, dict) and all(
            isinstance(code, str) and isinstance(t, dict) and all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                for k, v in t.items()) for code, t in value.items())
        if not ok:
            raise _fail(source, key, "a mapping {CODE: {name: number}}", value)
        return {code.upper(): {_kebab(k).replace("-", "_"): float(v) for k, v in t.items()}
                for code, t in value.items()}
    if name == "optimizer":
        fields = {"name", "lr", "momentum"}
        if not isinstance(value, dict) or set(value) - fields:
            raise _fail(source, key, "a mapping with keys name, lr, momentum", value)
        opt = Optimizer(**value)
        if not isinstance(opt.name, str):
            raise _fail(source, key + ".name", "a string such as 'sgd'", opt.name)
        for attr in ("lr", "momentum"):
            v = getattr(opt, attr)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
                raise _fail(source, f"{key}.{attr}", "a non-negative number", v)
        return opt
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


def read_file(path: Path) -> Config:
    """Read one config file (.bnlint.yaml or pyproject.toml)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read config file: {exc.strerror}.", path=source) from None
    if path.name == "pyproject.toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"invalid TOML: {exc}.", path=source) from None
        return from_mapping(data.get("tool", {}).get("bnlint", {}), source)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = exc.problem_mark.line + 1 if getattr(exc, "problem_mark", None) else None
        raise InputError(f"invalid YAML: {getattr(exc, 'problem', exc)}.", path=source,
                         line=line) from None
    return from_mapping(data, source)


def find_file(start: Path) -> Path | None:
    """The nearest .bnlint.yaml, or pyproject.toml with a [tool.bnlint] table, at or above start."""
    for folder in [start, *start.parents]:
        for name in YAML_NAMES:
            if (folder / name).is_file():
                return folder / name
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                if "bnlint" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}):
                    return pyproject
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
                continue
    return None


def load(explicit: str | None, start: Path) -> Config:
    """The config from ``explicit`` if given, else the nearest config file, else defaults."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise InputError("config file not found.", path=explicit,
                             hint="Check the path given to --config.")
        return read_file(path)
    found = find_file(start.resolve())
    return read_file(found) if found else Config()


def override(config: Config, **cli: Any) -> Config:
    """Apply CLI values (None means 'not given') on top of the config file's."""
    values = {k: v for k, v in cli.items() if v is not None and v != () and v != []}
    return dataclasses.replace(config, **values)
