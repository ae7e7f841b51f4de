"""Load a model file and find what to lint: the models, their example inputs and targets.

Models are nn.Module subclasses defined in the file that construct with no arguments,
zero-argument functions defined in the file that return an nn.Module, and module-level
nn.Module instances. The file runs as a module (not as ``__main__``) with its folder on sys.path.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import torch
from torch import nn

from . import sites
from .errors import InputError
from .graph import first_line, run_forward

# Zero-argument functions that are not model factories, by name or prefix.
_NOT_FACTORIES = ("main", "example_inputs", "example_targets")
_NOT_FACTORY_PREFIXES = ("_", "train", "test", "run", "fit", "eval", "load", "save", "download",
                         "setup", "parse", "plot", "show", "print")
_SPATIAL_SIZES = (32, 64, 224)


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


@dataclass
class Targets:
    """Regression targets (a tensor) or just their standard deviation (from config)."""
    tensor: torch.Tensor | None
    std: float
    source: str


def _module_name(path: Path) -> str:
    return "bnlint_user_" + "".join(c if c.isalnum() else "_" for c in str(path.resolve()))


def _user_error(exc: BaseException, path: Path, doing: str, hint: str) -> InputError:
    site = sites.traceback_site(exc.__traceback__)
    return InputError(f"{doing} raised {type(exc).__name__}: {first_line(exc)}".rstrip(": ") + ".",
                      path=site.path if site else str(path), line=site.line if site else None,
                      hint=hint)


def load_module(path: Path, source: str | bytes | None = None) -> types.ModuleType:
    """Import the user's file (or ``source`` as if it were that file). The file is compiled
    as bytes, so Python itself reads its encoding (a BOM, a coding line, else UTF-8)."""
    if source is None:
        try:
            source = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read the file: {exc.strerror}.", path=str(path)) from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise InputError(f"SyntaxError: {exc.msg}.", path=str(path), line=exc.lineno,
                         hint="Fix the syntax error, then run bnlint again.") from None
    name = _module_name(path)
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[name] = module
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        with sites.recording():
            exec(code, module.__dict__)
    except ImportError as exc:
        raise _user_error(exc, path, "importing the file",
                          "Install the missing package in the environment that runs bnlint, "
                          "or run bnlint from the environment your model uses.") from None
    except SystemExit as exc:
        raise _user_error(exc, path, "importing the file",
                          "The file exits when imported; move that code under "
                          "`if __name__ == '__main__':`.") from None
    except Exception as exc:
        raise _user_error(exc, path, "importing the file",
                          "bnlint imports your file as a module; code under "
                          "`if __name__ == '__main__':` does not run.") from None
    return module


def _required_params(obj: Any) -> list[str]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                   p.KEYWORD_ONLY)]


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
    except Exception as exc:
        raise _user_error(exc, path, f"building {name}()",
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
        return [_select(name, classes, factories, instances, path) for name in selected]

    found: list[FoundModel] = []
    needs_args = []
    lines = _assignment_lines(path)
    for name, obj in instances.items():
        found.append(FoundModel(name, obj, lines.get(name)))
    for name, fn in factories.items():
        if not _required_params(fn) and _is_factory(name, fn):
            result = _build(name, fn, path)
            if isinstance(result, nn.Module):
                found.append(FoundModel(name, result, _line_of(fn)))
    instance_types = {type(f.model) for f in found}
    for name, cls in classes.items():
        required = _required_params(cls)
        if required:
            needs_args.append(f"{name}({', '.join(required)})")
        elif cls not in instance_types:
            found.append(FoundModel(name, _build(name, cls, path), _line_of(cls)))
    found = _drop_parts(found)
    if not found:
        if needs_args:
            raise InputError(
                "no model to lint: every nn.Module class here needs constructor arguments: "
                + ", ".join(needs_args) + ".", path=str(path),
                hint="Add a zero-argument function that returns a configured model "
                     "(def model(): return Net(...)), or give the arguments defaults.")
        raise InputError("no model found: the file defines no nn.Module class, factory "
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
            required = _required_params(obj)
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
                    *(n for n, f in factories.items() if not _required_params(f))})
    raise InputError(f"no model named {name} in the file.", path=str(path),
                     hint="Models here: " + (", ".join(known) or "none") + ".")


# ---------------------------------------------------------------- example inputs


def _as_inputs(value: Any, where: str, path: Path) -> tuple[torch.Tensor, ...]:
    if isinstance(value, torch.Tensor):
        value = (value,)
    if not (isinstance(value, (tuple, list)) and value
            and all(isinstance(v, torch.Tensor) for v in value)):
        raise InputError(f"{where} must be a tensor or a tuple of tensors, got "
                         f"{type(value).__name__}.", path=str(path),
                         hint="Return the positional arguments of forward(), e.g. "
                              "torch.randn(8, 3, 32, 32).")
    first = value[0]
    if first.dim() and first.shape[0] == 0:
        raise InputError(f"{where} have a batch of 0 samples (shape {tuple(first.shape)}).",
                         path=str(path),
                         hint="bnlint runs the model on them, which needs at least 1 sample, "
                              "and the probe trains BatchNorm layers, which need 2: give a "
                              "batch of 2 or more.")
    return tuple(value)


def _call_with_name(fn: Any, name: str, path: Path, what: str) -> Any:
    try:
        return fn(name) if _required_params(fn) else fn()
    except Exception as exc:
        raise _user_error(exc, path, f"{what}()", f"Fix {what}() in the model file.") from None


def _from_file(module: types.ModuleType, name: str, path: Path, fn_name: str,
               value_name: str) -> Any:
    """A value from ``fn_name()`` (optionally taking the model name) or ``value_name``."""
    fn = getattr(module, fn_name, None)
    if callable(fn):
        return _call_with_name(fn, name, path, fn_name)
    return getattr(module, value_name, None)


def _first_layer(model: nn.Module) -> nn.Module | None:
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Embedding, nn.EmbeddingBag)
    return next((m for m in model.modules() if isinstance(m, kinds)), None)


def _candidate_shapes(layer: nn.Module, batch: int) -> list[tuple[int, ...]]:
    if isinstance(layer, nn.Conv1d):
        return [(batch, layer.in_channels, s) for s in (64, 256, 1024)]
    if isinstance(layer, nn.Conv2d):
        return [(batch, layer.in_channels, s, s) for s in _SPATIAL_SIZES]
    if isinstance(layer, nn.Conv3d):
        return [(batch, layer.in_channels, 16, s, s) for s in _SPATIAL_SIZES]
    if isinstance(layer, nn.Linear):
        return [(batch, layer.in_features)]
    return [(batch, 16)]  # token ids for an embedding


def _random_input(layer: nn.Module, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    if isinstance(layer, (nn.Embedding, nn.EmbeddingBag)):
        return torch.randint(0, layer.num_embeddings, shape, device=device)
    return torch.randn(shape, device=device)


def model_device(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def infer_inputs(model: nn.Module, name: str, batch: int,
                 path: Path) -> tuple[torch.Tensor, ...]:
    """Inputs inferred from the first Conv/Linear/Embedding: the first shape that runs."""
    layer = _first_layer(model)
    how = ("Give them: --input-shape 8,3,32,32, an example_inputs() function or EXAMPLE_INPUTS "
           "value in the model file, or input-shape in [tool.bnlint].")
    if layer is None:
        raise InputError(f"cannot infer example inputs for {name}: it has no Conv, Linear or "
                         "Embedding layer to read the input size from.", path=str(path), hint=how)
    if isinstance(layer, nn.modules.lazy.LazyModuleMixin) and layer.has_uninitialized_params():
        raise InputError(f"cannot infer example inputs for {name}: its first layer "
                         f"({type(layer).__name__}) is lazy, so its input size is not known "
                         "until it runs.", path=str(path), hint=how)
    device = model_device(model)
    shapes = _candidate_shapes(layer, batch)
    for shape in shapes:
        x = _random_input(layer, (2, *shape[1:]), device)  # a small trial batch: cheap
        try:
            run_forward(lambda: model(x), model, (x,))
            return (_random_input(layer, shape, device),)
        except InputError as exc:
            last = exc
    tried = " or ".join(str(s) for s in shapes)
    raise InputError(last.message, path=last.path, line=last.line,
                     hint=f"bnlint inferred inputs of shape {tried} for {name} from its first "
                          f"layer ({type(layer).__name__}); if the model expects others, "
                          + how[0].lower() + how[1:])


@dataclass
class Inputs:
    tensors: tuple[torch.Tensor, ...]
    source: str  # "--input-shape", "example_inputs", "config", "inferred"


def example_inputs(module: types.ModuleType, found: FoundModel, path: Path,
                   cli_shapes: list[list[int]] | None, config_shapes: list[list[int]] | None,
                   batch: int) -> Inputs:
    """Inputs from, in order: --input-shape, the file, the config, inference."""
    device = model_device(found.model)
    if cli_shapes:
        return Inputs(tuple(torch.randn(s, device=device) for s in cli_shapes), "--input-shape")
    value = _from_file(module, found.name, path, "example_inputs", "EXAMPLE_INPUTS")
    if value is not None:
        return Inputs(tuple(t.to(device) for t in _as_inputs(value, "example inputs", path)),
                      "example_inputs")
    if config_shapes:
        return Inputs(tuple(torch.randn(s, device=device) for s in config_shapes), "config")
    return Inputs(infer_inputs(found.model, found.name, batch, path), "inferred")


# ---------------------------------------------------------------- targets


def _read_targets_file(file: str) -> torch.Tensor:
    path = Path(file)
    if not path.is_file():
        raise InputError("targets file not found.", path=file, hint="Check --targets.")
    try:
        if path.suffix == ".npy":
            return torch.from_numpy(numpy.load(path, allow_pickle=False))
        if path.suffix == ".pt":
            value = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise InputError("targets must be a .pt or .npy file.", path=file)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read targets: {type(exc).__name__}: {first_line(exc)}.",
                         path=file, hint="Save a single tensor with torch.save or numpy.save."
                         ) from None
    if not isinstance(value, torch.Tensor):
        raise InputError(f"the targets file holds {type(value).__name__}, not a tensor.",
                         path=file, hint="Save a single tensor with torch.save(t, path).")
    return value


def are_class_labels(target: torch.Tensor, out: torch.Tensor) -> bool:
    """Whether ``target`` is one class index per sample for ``out``'s class scores (N, C > 1)."""
    return (out.dim() == 2 and out.shape[1] > 1 and target.dim() == 1
            and bool((target == target.round()).all())
            and 0 <= target.min() and target.max() < out.shape[1])


def _check_fit(t: torch.Tensor, where: str, path: str, model: nn.Module,
               inputs: tuple[torch.Tensor, ...]) -> None:
    """Targets must fit the model's output as the probe trains on them: the same number of
    values per sample, or (for an output of class scores) one class label per sample."""
    out = run_forward(lambda: model(*inputs), model, inputs)
    out = next((v for v in torch.utils._pytree.tree_leaves(out)
                if isinstance(v, torch.Tensor)), None)
    if out is None or out.dim() == 0:
        return  # nothing to compare with; the probe says what it cannot train
    per_sample = out.shape[1:].numel()
    classes = out.shape[1] if out.dim() == 2 and out.shape[1] > 1 else 0
    if are_class_labels(t, out) or t.shape[1:].numel() == per_sample:
        return
    raise InputError(
        f"{where} have shape {tuple(t.shape)}, {t.shape[1:].numel()} value(s) per sample, but "
        f"the model's output of shape {tuple(out.shape)} has {per_sample} per sample"
        + (f", and they are not class labels from 0 to {classes - 1}" if classes else "")
        + ".", path=path,
        hint="Give targets with the output's shape"
             + (" or one class label per sample" if classes else "") + ".")


def _validate_targets(t: Any, where: str, path: str, batch: int | None, model: nn.Module,
                      inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise InputError(f"{where} must be a tensor, got {type(t).__name__}.", path=path)
    if not (t.is_floating_point() or t.dtype in (torch.int64, torch.int32)) or t.dim() == 0:
        raise InputError(f"{where} must be a numeric tensor with a batch dimension, "
                         f"got dtype {t.dtype} and shape {tuple(t.shape)}.", path=path)
    t = t.float()
    if not torch.isfinite(t).all():
        raise InputError(f"{where} contain NaN or Inf values.", path=path,
                         hint="Clean the targets before linting.")
    if t.shape[0] < 2:
        raise InputError(f"{where} need at least 2 samples to estimate their spread.", path=path)
    if batch is not None and t.shape[0] != batch:
        raise InputError(f"{where} have {t.shape[0]} samples but the example inputs have "
                         f"{batch}.", path=path, hint="Give as many targets as inputs.")
    _check_fit(t, where, path, model, inputs)
    return t


def example_targets(module: types.ModuleType, found: FoundModel, path: Path,
                    targets_file: str | None, target_std: float | None,
                    inputs: Inputs) -> Targets | None:
    """Targets from, in order: the file, --targets, target-std in the config. They must pair
    with the inputs sample for sample only when both are real data from the file."""
    first = inputs.tensors[0]
    batch = first.shape[0] if inputs.source == "example_inputs" and first.dim() else None
    value = _from_file(module, found.name, path, "example_targets", "EXAMPLE_TARGETS")
    if value is not None:
        t = _validate_targets(value, "example targets", str(path), batch, found.model,
                              inputs.tensors)
        return Targets(t, float(t.std()), "example_targets")
    if targets_file:
        t = _validate_targets(_read_targets_file(targets_file), "targets", targets_file, batch,
                              found.model, inputs.tensors)
        return Targets(t, float(t.std()), targets_file)
    if target_std is not None:
        return Targets(None, target_std, "config target-std")
    return None
