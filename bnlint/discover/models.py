"""Find what to lint in an imported file: nn.Module subclasses defined in it that construct with
no arguments, zero-argument functions defined in it that return an nn.Module, and module-level
nn.Module instances; building blocks of another model found are left out."""

from __future__ import annotations

import ast
import inspect
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import InputError
from ..model import sites
from .load import required_params, user_error

# The deepest nesting of modules bnlint lints. torch walks a model's modules recursively
# (modules(), state_dict, deepcopy) and a nested module's forward costs about 5 Python frames per
# level, so Python's default limit of 1000 frames is reached near 200 levels. Measured on a model
# holding nn.Sequential nested n times (n + 1 levels): torch.fx's tracer fails by n = 150, the
# forward itself by 200, and everything (trace, rules, probe) works at 100 levels.
MAX_NESTING = 100

# Zero-argument functions that are not model factories, by name or prefix.
_NOT_FACTORIES = ("main", "example_inputs", "example_targets")
_NOT_FACTORY_PREFIXES = ("_", "train", "test", "run", "fit", "eval", "load", "save", "download",
                         "setup", "parse", "plot", "show", "print")


class NoModelError(InputError):
    """The file defines nothing to lint (``allow-no-models`` skips such a file)."""


@dataclass
class FoundModel:
    name: str
    model: nn.Module
    line: int | None

    def __post_init__(self):
        # torch.compile(model) wraps the module; bnlint reads (and fx traces) the original
        original = getattr(self.model, "_orig_mod", None)
        if isinstance(original, nn.Module):
            self.model = original


def _line_of(obj: Any) -> int | None:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return None


def _assignment_lines(path: Path) -> dict[str, int]:
    """Line of each top-level ``name = ...`` in the file (where module instances are made)."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return {}
    lines = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        for target in targets:
            if isinstance(target, ast.Name):
                lines.setdefault(target.id, node.lineno)
    return lines


def _is_factory(name: str, fn: Any) -> bool:
    if name in _NOT_FACTORIES or name.startswith(_NOT_FACTORY_PREFIXES):
        return False
    ret = inspect.signature(fn).return_annotation
    if ret is inspect.Signature.empty or isinstance(ret, str):
        return True
    return isinstance(ret, type) and issubclass(ret, nn.Module)


def _build(name: str, factory: Any, path: Path) -> Any:
    try:
        with sites.recording():
            return factory()
    except Exception as exc:  # noqa: BLE001 - the user's code raised
        raise user_error(exc, path, f"building {name}()",
                          f"If {name} is not a model, pick models with --model NAME.") from None


def find_models(module: types.ModuleType, path: Path, selected: list[str]) -> list[FoundModel]:
    """Build the file's models (only those named in ``selected`` when it is not empty)."""
    here = module.__name__
    classes, factories, instances = {}, {}, {}
    for name, obj in vars(module).items():
        if isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == here:
            classes[name] = obj
        elif inspect.isfunction(obj) and obj.__module__ == here:
            factories[name] = obj
        elif isinstance(obj, nn.Module) and not name.startswith("_"):
            instances[name] = obj
    if selected:
        return [_shallow(_select(name, classes, factories, instances, path), path)
                for name in selected]

    found: list[FoundModel] = []
    needs_args = []
    lines = _assignment_lines(path)
    for name, obj in instances.items():
        found.append(FoundModel(name, obj, lines.get(name)))
    for name, fn in factories.items():
        if not required_params(fn) and _is_factory(name, fn):
            result = _build(name, fn, path)
            if isinstance(result, nn.Module):
                found.append(FoundModel(name, result, _line_of(fn)))
    instance_types = {type(f.model) for f in found}
    for name, cls in classes.items():
        required = required_params(cls)
        if required:
            needs_args.append(f"{name}({', '.join(required)})")
        elif cls not in instance_types:
            found.append(FoundModel(name, _build(name, cls, path), _line_of(cls)))
    found = _drop_parts([_shallow(f, path) for f in found])
    if not found:
        if needs_args:
            raise NoModelError(
                "no model to lint: every nn.Module class here needs constructor arguments: "
                + ", ".join(needs_args) + ".", path=str(path),
                hint="Add a zero-argument function that returns a configured model "
                     "(def model(): return Net(...)), or give the arguments defaults.")
        raise NoModelError("no model found: the file defines no nn.Module class, factory "
                         "function or instance.", path=str(path),
                         hint="Define the model in this file, or point bnlint at the file "
                              "that does.")
    return found


def _structure(model: nn.Module) -> tuple:
    return tuple((name, type(m).__name__, tuple(_shape(p) for p in m.parameters(False)))
                 for name, m in model.named_modules())


def _shape(p: nn.Parameter) -> tuple | None:
    """A parameter's shape; None for a lazy module's, which has none until its first forward."""
    return None if isinstance(p, nn.parameter.UninitializedTensorMixin) else tuple(p.shape)


def nesting(model: nn.Module) -> tuple[int, str]:
    """How deep the model's modules nest, and the path of the deepest (walked without
    recursion, so a model too deep for Python's recursion limit can be measured)."""
    deepest, stack = (0, ""), [(model, 0, "")]
    while stack:
        module, depth, name = stack.pop()
        deepest = max(deepest, (depth, name))
        stack.extend((child, depth + 1, f"{name}.{key}" if name else key)
                     for key, child in module._modules.items() if child is not None)
    return deepest


def _shallow(found: FoundModel, path: Path) -> FoundModel:
    """The model, unless its modules nest deeper than bnlint (and torch's own recursive
    walks) can follow: an input error, located at the model."""
    depth, name = nesting(found.model)
    if depth > MAX_NESTING:
        shown = name if len(name) <= 60 else name[:28] + "..." + name[-28:]
        raise InputError(
            f"model {found.name} nests its modules {depth} levels deep ({shown}); bnlint "
            f"lints up to {MAX_NESTING}: torch walks submodules recursively, and Python's "
            "recursion limit stops it near 200.", path=str(path), line=found.line,
            hint="Build a deep stack flat, as nn.Sequential(*layers) or an nn.ModuleList "
                 "looped over in forward, not a Sequential inside a Sequential per layer.")
    return found


def _drop_parts(found: list[FoundModel]) -> list[FoundModel]:
    """Drop models that are building blocks of another found model (e.g. a ResNet's block),
    and repeats of one model (``model = make_model()`` beside ``make_model``)."""
    part_types = {type(sub) for f in found for sub in list(f.model.modules())[1:]}
    kept, seen = [], set()
    for f in found:
        shape = _structure(f.model)
        if type(f.model) not in part_types and shape not in seen:
            seen.add(shape)
            kept.append(f)
    return kept


def _select(name: str, classes: dict, factories: dict, instances: dict,
            path: Path) -> FoundModel:
    if name in instances:
        return FoundModel(name, instances[name], _assignment_lines(path).get(name))
    for table in (classes, factories):
        if name in table:
            obj = table[name]
            required = required_params(obj)
            if required:
                raise InputError(
                    f"model {name} needs constructor arguments ({', '.join(required)}).",
                    path=str(path), line=_line_of(obj),
                    hint="Add a zero-argument function that returns a configured model and "
                         "pass its name to --model, or give the arguments defaults.")
            model = _build(name, obj, path)
            if not isinstance(model, nn.Module):
                raise InputError(f"{name}() returned {type(model).__name__}, not an nn.Module.",
                                 path=str(path), line=_line_of(obj))
            return FoundModel(name, model, _line_of(obj))
    known = sorted({*classes, *instances,
                    *(n for n, f in factories.items() if not required_params(f))})
    raise InputError(f"no model named {name} in the file.", path=str(path),
                     hint="Models here: " + (", ".join(known) or "none") + ".")
