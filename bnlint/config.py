"""Settings from ``[tool.bnlint]`` in pyproject.toml or ``.bnlint.yaml``, overridden by the CLI.

Keys are the CLI's long option names (``fail-on``, ``input-shape``...). The nearest config file
above the working directory wins; ``--config`` names one explicitly.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError
from .files import DEFAULT_EXCLUDE, Exclusions, read_text

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
PROBE_BUDGET = 30.0   # seconds per model: the plan's budget at PROBE_FLOP_RATE, and a hard stop
PROBE_HVPS = 20       # Hessian-vector products the lr-ceiling estimate may use (Lanczos
                      # converged within 4-18 on seven small models: docs/SCIENCE.md §7)
# The probe plans its work before running (bnlint/probing/plan.py), from the model's cost counted
# on the meta device, against --probe-budget seconds at this fixed rate, never a timing of the
# machine at hand: the same model gets the same plan, and the same numbers, on any machine and
# under any load. 1e10 FLOP/s is what a ResNet-20 probe step reached on a 2-core CPU shared with
# four other jobs (8.4-8.9e9 FLOP/s, one thread, 2026-11-26); the same step ran at 8.2e10 FLOP/s
# on the idle machine (bench/RESULTS.md, probe overhead: 1.56e10 FLOPs in 0.19 s). A plan at
# this rate thus fits its budget even on a busy 2-core CI runner.
PROBE_FLOP_RATE = 1e10
# What one dispatched torch op costs besides its arithmetic, in FLOPs at PROBE_FLOP_RATE: 100 us
# of Python, dispatch and the probe's taps (86 us per op measured on a 100-block width-8 BN-ReLU
# MLP, whose arithmetic is negligible, same machine and load). It keeps deep narrow models from
# being planned as free.
PROBE_OP_FLOPS = 1e6
# The smallest batch the plan shrinks to: a ReLU unit that fires for half the inputs looks dead
# on a batch of b samples with probability 0.5^b, 0.4% at 8 (and 6% at 4).
PROBE_MIN_BATCH = 8
# The smallest size (per spatial dimension) to which the plan lowers inferred image inputs: the
# smallest bnlint infers (bnlint/discover/inputs.py tries 32, 64, 224).
PROBE_MIN_RESOLUTION = 32
# The activations the probe may keep at once (its forward's new tensors): 2 GiB, under a third
# of the 7 GB of a 2-core hosted CI runner (GitHub Actions' standard runner of that size).
PROBE_MEMORY = 2 * 2**30
# Where per-file results are cached (bnlint/isolation/cache.py): this folder beside the config
# file, else in the current folder, as ruff keeps .ruff_cache at the project's root.
CACHE_DIR = ".bnlint_cache"
PROBE_LR = 0.01       # the probe's optimizer when the config names none: SGD, this lr...
PROBE_MOMENTUM = 0.9  # ...and this momentum

SEVERITIES = ("error", "warning", "info")
FAIL_ON = (*SEVERITIES, "never")
FORMATS = ("text", "json", "sarif", "github", "html")
DOCUMENTS = ("json", "sarif", "html")  # formats that are one document, printed even for an
                                       # error before linting (CI parses it)
DEVICES = ("auto", "cpu", "cuda", "mps")
YAML_NAMES = (".bnlint.yaml", ".bnlint.yml")
# The optimizers the probe runs, by lower-case name: the class (in torch.optim, or bnlint.optim
# for lalc and lars) and the keyword arguments it takes besides params and lr, each with the kind
# of value it takes: "unit" a number in [0, 1), "number" one >= 0, "real" any finite number,
# "bool", "pair" two numbers ("unit pair": both in [0, 1)). tests/test_optim.py checks this table
# against the classes' signatures (config.py is read by the CLI, which never imports torch).
# Switches that do not change the step (foreach, fused, capturable, differentiable) are left out,
# and so are LBFGS (its step needs a closure that re-evaluates the loss), SparseAdam (sparse
# gradients only) and Muon (2-D weights only), which the probe cannot run on any model.
OPTIMIZER_ARGS: dict[str, tuple[str, dict[str, str]]] = {
    "sgd": ("SGD", {"momentum": "unit", "dampening": "unit", "weight_decay": "number",
                    "nesterov": "bool", "maximize": "bool"}),
    "adam": ("Adam", {"betas": "unit pair", "eps": "number", "weight_decay": "number",
                      "amsgrad": "bool", "maximize": "bool", "decoupled_weight_decay": "bool"}),
    "adamw": ("AdamW", {"betas": "unit pair", "eps": "number", "weight_decay": "number",
                        "amsgrad": "bool", "maximize": "bool"}),
    "adamax": ("Adamax", {"betas": "unit pair", "eps": "number", "weight_decay": "number",
                          "maximize": "bool"}),
    "nadam": ("NAdam", {"betas": "unit pair", "eps": "number", "weight_decay": "number",
                        "momentum_decay": "number", "decoupled_weight_decay": "bool",
                        "maximize": "bool"}),
    "radam": ("RAdam", {"betas": "unit pair", "eps": "number", "weight_decay": "number",
                        "decoupled_weight_decay": "bool", "maximize": "bool"}),
    "rmsprop": ("RMSprop", {"alpha": "unit", "eps": "number", "weight_decay": "number",
                            "momentum": "unit", "centered": "bool", "maximize": "bool"}),
    "adagrad": ("Adagrad", {"lr_decay": "number", "weight_decay": "number",
                            "initial_accumulator_value": "number", "eps": "number",
                            "maximize": "bool"}),
    "adadelta": ("Adadelta", {"rho": "unit", "eps": "number", "weight_decay": "number",
                              "maximize": "bool"}),
    "adafactor": ("Adafactor", {"beta2_decay": "real", "eps": "pair", "d": "number",
                                "weight_decay": "number", "maximize": "bool"}),
    "asgd": ("ASGD", {"lambd": "number", "alpha": "number", "t0": "number",
                      "weight_decay": "number", "maximize": "bool"}),
    "rprop": ("Rprop", {"etas": "pair", "step_sizes": "pair", "maximize": "bool"}),
    "lalc": ("LALC", {"momentum": "unit", "weight_decay": "number", "bound": "number"}),
    "lars": ("LARS", {"momentum": "unit", "weight_decay": "number", "eta": "number"}),
}
OPTIMIZERS = tuple(OPTIMIZER_ARGS)
# The losses the config's ``loss`` names (bnlint/discover/loss.py says what each expects)
LOSSES = ("mse", "mae", "huber", "bce", "bce_with_logits", "ce", "nll", "kl")
SHAPE = "a shape such as 8,3,32,32 (positive integers)"
# The most elements an example input may have: PROBE_MEMORY in float32. A larger one is a typo
# (a video batch of 8x3x64x224x224 has 7.7e7), and past 2^63 torch cannot even express it.
MAX_INPUT_ELEMENTS = PROBE_MEMORY // 4


@dataclass
class Optimizer:
    """The optimizer the user trains with, when known (for momentum- and lr-aware findings):
    a name of :data:`OPTIMIZER_ARGS`, its lr, its (heavy-ball) momentum for those that take one,
    and its other keyword arguments (``args``, e.g. ``{"betas": [0.9, 0.98]}``)."""
    name: str = "sgd"
    lr: float | None = None
    momentum: float = 0.0
    args: dict[str, Any] = field(default_factory=dict)


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
    loss: str | None = None  # what the model trains with (else inferred from its file)
    probe_batch: int = PROBE_BATCH
    probe_steps: int = PROBE_STEPS
    probe_budget: float = PROBE_BUDGET
    warmup_steps: int | None = None  # the lr warm-up you train with (None: not said)
    allow_no_models: bool = False  # skip given files that define no model (pre-commit's lists)
    exclude: list[str] | None = None  # globs a folder walk skips (None: DEFAULT_EXCLUDE)
    extend_exclude: list[str] = field(default_factory=list)  # ...and these
    respect_gitignore: bool = True  # ...and what git ignores
    cache: bool = True  # reuse the results of unchanged files (bnlint/isolation/cache.py)
    cache_dir: str | None = None  # where (None: CACHE_DIR beside the config file)
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
_KEYS["models"] = "model"  # models = ['VGG("VGG16")', ...] reads as a list


FIX_CONFIG = "Fix the value in the config file."


def _fail(source: str, key: str, expected: str, value: Any) -> InputError:
    return InputError(f"config key '{key}' must be {expected}, got {value!r}.", path=source,
                      hint=FIX_CONFIG)


def _number(value: Any) -> bool:
    """A finite int or float (not a bool, NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


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


def shape_problem(shapes: list[list[int]]) -> str | None:
    """Why these example input shapes are too large to allocate, if they are."""
    for shape in shapes:
        elements = math.prod(shape)
        if elements > MAX_INPUT_ELEMENTS:
            return (f"an input of shape {'x'.join(map(str, shape))} has {elements:.3g} "
                    f"elements, over the {MAX_INPUT_ELEMENTS:,} ({PROBE_MEMORY // 2**30} GiB "
                    "of float32) bnlint allocates for one example input")
    return None


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


def _sized(source: str, key: str, shapes: list[list[int]]) -> list[list[int]]:
    problem = shape_problem(shapes)
    if problem:
        raise InputError(f"config key '{key}': {problem}.", path=source,
                         hint="Give the shape of a small example batch, such as 8,3,32,32.")
    return shapes


def _argument(source: str, key: str, kind: str, value: Any) -> Any:
    """One optimizer argument checked against its kind (see :data:`OPTIMIZER_ARGS`)."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise _fail(source, key, "true or false", value)
        return value
    if kind.endswith("pair"):
        unit = kind == "unit pair"
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
            (v is None and not unit) or (_number(v) and (not unit or 0 <= v < 1))
            for v in value)
        if not ok:
            raise _fail(source, key, "two numbers in [0, 1), such as [0.9, 0.999]" if unit
                        else "two numbers, such as [0.5, 1.2]", value)
        return list(value)
    ranges = {"unit": ("a number in [0, 1)", lambda v: 0 <= v < 1),
              "number": ("a finite number >= 0", lambda v: v >= 0),
              "real": ("a finite number", lambda v: True)}
    expected, inside = ranges[kind]
    if not (_number(value) and inside(value)):
        raise _fail(source, key, expected, value)
    return float(value)


def _optimizer(source: str, key: str, value: Any) -> Optimizer:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise _fail(source, key, "a mapping with a name and the optimizer's arguments, such as "
                    "{name = \"adam\", lr = 0.001}", value)
    name = value["name"].lower()
    if name not in OPTIMIZER_ARGS:
        close = difflib.get_close_matches(name, OPTIMIZERS, n=1)
        raise InputError(f"config key '{key}.name': unknown optimizer {value['name']!r}.",
                         path=source, hint=(f"Did you mean {close[0]}? " if close else "")
                         + "Known optimizers: " + ", ".join(OPTIMIZERS) + ".")
    known = OPTIMIZER_ARGS[name][1]
    lr, momentum, args = value.get("lr"), 0.0, {}
    if lr is not None and not (_number(lr) and lr > 0):
        raise _fail(source, key + ".lr", "a positive finite number", lr)
    for arg, given in value.items():
        if arg in ("name", "lr"):
            continue
        if arg == "momentum" and "momentum" not in known and _number(given) and given == 0:
            continue  # "no momentum" said of an optimizer that has none
        if arg not in known:
            raise InputError(f"config key '{key}': {OPTIMIZER_ARGS[name][0]} takes no argument "
                             f"'{arg}'.", path=source,
                             hint=f"{OPTIMIZER_ARGS[name][0]}'s arguments: lr, "
                                  + ", ".join(known) + ".")
        checked = _argument(source, f"{key}.{arg}", known[arg], given)
        if arg == "momentum":
            momentum = checked
        else:
            args[arg] = checked
    if args.get("nesterov") and (momentum <= 0 or args.get("dampening", 0) != 0):
        raise _fail(source, key + ".nesterov", "used with momentum > 0 and no dampening",
                    True)
    return Optimizer(name, float(lr) if lr is not None else None, momentum, args)


_ARGUMENT = re.compile(r"\s*(\w+)\s*=\s*(\([^)]*\)|\[[^\]]*\]|[^,]*?)\s*(?:,|$)")


def _value(text: str) -> Any:
    """One ``--optimizer`` value: true/false, none, a number, or ``(a, b)`` / ``[a, b]``."""
    text = text.strip()
    if text[:1] in "([" and text[-1:] in ")]":
        return [_value(part) for part in text[1:-1].split(",")]
    words = {"true": True, "false": False, "none": None}
    if text.lower() in words:
        return words[text.lower()]
    try:
        return float(text)
    except ValueError:
        return text  # the validation says what it should be


def parse_optimizer(text: str) -> Optimizer:
    """``--optimizer``, which reads ``NAME[,KEY=VALUE...]``, e.g.
    ``sgd,lr=0.1,momentum=0.9,nesterov=true`` or ``adam,lr=3e-4,betas=(0.9,0.98)``; an
    InputError when it does not read so or a value is wrong."""
    name, _, rest = text.partition(",")
    arguments: dict[str, Any] = {"name": name.strip()}
    position = 0
    while re.fullmatch(r"\w+", arguments["name"]) and position < len(rest):
        match = _ARGUMENT.match(rest, position)
        if not match or match.end() == position:
            break
        arguments[match.group(1)] = _value(match.group(2))
        position = match.end()
    if not re.fullmatch(r"\w+", arguments["name"]) or position < len(rest):
        raise InputError(f"--optimizer {text!r} does not read as NAME[,KEY=VALUE...].",
                         hint="For example --optimizer sgd,lr=0.1,momentum=0.9,nesterov=true or "
                              "--optimizer adam,lr=3e-4,betas=(0.9,0.98).")
    try:
        return _optimizer("--optimizer", "optimizer", arguments)
    except InputError as exc:
        message = re.sub(r"config key 'optimizer(\.name)?': ", "--optimizer: ", exc.message)
        raise InputError(re.sub(r"config key 'optimizer\.(\w+)'", r"--optimizer's \1", message),
                         hint=exc.hint if exc.hint != FIX_CONFIG else None) from None


def _model_entry(text: str) -> bool:
    """A model's name, or a call of one by name (its arguments are checked where the file's
    names are known)."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return False
    return isinstance(node, ast.Name) or (isinstance(node, ast.Call)
                                          and isinstance(node.func, ast.Name))


def _validate(source: str, key: str, value: Any) -> Any:
    """Check one key's value and return it in the form Config holds."""
    name = _KEYS[key]
    if name in ("select", "ignore"):
        return _codes(source, key, value)
    if name == "model":
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) and _model_entry(v)
                                                  for v in value):
            raise _fail(source, key, "a model name or a call such as 'VGG(\"VGG16\")', or a "
                                     "list of them", value)
        return value
    if name == "input_shape":
        return _sized(source, key, _shapes(source, key, value))
    choices = {"fail_on": FAIL_ON, "format": FORMATS, "device": DEVICES, "loss": LOSSES}
    if name in choices:
        if value not in choices[name]:
            raise _fail(source, key, "one of " + ", ".join(choices[name]), value)
        return value
    if name in ("exclude", "extend_exclude"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise _fail(source, key, "a list of globs", value)
        return value
    if name in ("probe", "allow_no_models", "respect_gitignore", "cache"):
        if not isinstance(value, bool):
            raise _fail(source, key, "true or false", value)
        return value
    if name in ("timeout", "target_std", "probe_budget"):
        if not (_number(value) and value > 0):
            raise _fail(source, key, "a positive finite number", value)
        return float(value)
    # The probe trains on at least 2 samples (BatchNorm); 0 steps measures the init only.
    least = {"batch_size": 1, "probe_batch": 2, "probe_steps": 0, "warmup_steps": 0}
    if name in least:
        if isinstance(value, bool) or not isinstance(value, int) or value < least[name]:
            raise _fail(source, key, f"an integer >= {least[name]}", value)
        return value
    if name in ("rules_dir", "targets", "cache_dir"):
        if not isinstance(value, str):
            raise _fail(source, key, "a path", value)
        return value
    if name == "thresholds":
        ok = isinstance(value, dict) and all(
            isinstance(code, str) and isinstance(t, dict)
            and all(isinstance(k, str) and _number(v) and v >= 0 for k, v in t.items())
            for code, t in value.items())
        if not ok:
            raise _fail(source, key, "a mapping {CODE: {name: number}} of finite numbers >= 0",
                        value)
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
    for key in ("rules_dir", "targets", "cache_dir"):
        if values.get(key):
            values[key] = str(Path(source).parent / values[key])
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


def exclusions(config: Config) -> Exclusions:
    """What a folder walk skips under ``config``; globs with a slash are relative to the
    config file's folder (else the current one)."""
    patterns = DEFAULT_EXCLUDE if config.exclude is None else tuple(config.exclude)
    return Exclusions((*patterns, *config.extend_exclude),
                            Path(config.source).parent if config.source else Path.cwd(),
                            config.respect_gitignore)


def cache_folder(config: Config) -> Path:
    """Where the results cache lives: ``cache-dir``, else CACHE_DIR in the config file's
    folder (else the current one)."""
    if config.cache_dir:
        return Path(config.cache_dir)
    return (Path(config.source).parent if config.source else Path.cwd()) / CACHE_DIR


def override(config: Config, **cli: Any) -> Config:
    """Apply CLI values (None means 'not given') on top of the config file's."""
    values = {k: v for k, v in cli.items() if v is not None and v != () and v != []}
    return dataclasses.replace(config, **values)
