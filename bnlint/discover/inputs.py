"""Example inputs for a model, in this order: --input-shape, an ``example_inputs()`` function or
``EXAMPLE_INPUTS`` value in the file, ``input-shape`` in the config, or inference from the
first Conv/Linear/Embedding layer."""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import config as defaults
from ..errors import InputError
from ..model.sandbox import first_line, run_forward
from . import hf
from .load import from_file
from .models import FoundModel

_SPATIAL_SIZES = (32, 64, 224)


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
    return [(batch, defaults.TOKENS)]  # token ids for an embedding


def _random_input(layer: nn.Module, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    if isinstance(layer, (nn.Embedding, nn.EmbeddingBag)):
        return torch.randint(0, layer.num_embeddings, shape, device=device)
    return torch.randn(shape, device=device)


def model_device(model: nn.Module) -> torch.device:
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def infer_inputs(model: nn.Module, name: str, batch: int, path: Path,
                 device: torch.device | None = None) -> tuple[tuple[torch.Tensor, ...], str]:
    """Inputs a transformers model's config describes, else inferred from the first
    Conv/Linear/Embedding (the first shape that runs, tried on the model's device); on
    ``device`` (default: the model's), and how they were chosen."""
    described = hf.example_inputs(model, batch, device or model_device(model))
    if described is not None:
        return described
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
    trial = model_device(model)
    shapes = _candidate_shapes(layer, batch)
    for shape in shapes:
        x = _random_input(layer, (2, *shape[1:]), trial)  # a small trial batch: cheap
        try:
            run_forward(lambda x=x: model(x), model, (x,))
            how = f"inferred from the first layer ({type(layer).__name__})"
            if len(shapes) > 1:
                how += ": the first of " + ", ".join(str(s[1:]) for s in shapes) + " that ran"
            return (_random_input(layer, shape, device or trial),), how
        except InputError as exc:
            last = exc
    tried = " or ".join(str(s) for s in shapes)
    raise InputError(last.message, path=last.path, line=last.line,
                     hint=f"bnlint inferred inputs of shape {tried} for {name} from its first "
                          f"layer ({type(layer).__name__}); if the model expects others, "
                          + how[0].lower() + how[1:])


def _random(shapes: list[list[int]], device: torch.device, given: str) -> tuple:
    """Random inputs of the shapes the user gave; one too large for this machine's memory is
    an input error."""
    try:
        return tuple(torch.randn(s, device=device) for s in shapes)
    except (RuntimeError, MemoryError) as exc:
        shown = "; ".join("x".join(map(str, s)) for s in shapes)
        raise InputError(f"cannot allocate example inputs of shape {shown} ({given}): "
                         f"{first_line(exc)}.",
                         hint="Give the shape of a small example batch, such as "
                              "8,3,32,32.") from None


@dataclass
class Inputs:
    tensors: tuple[torch.Tensor, ...]
    source: str  # "--input-shape", "example_inputs", "config", "inferred"
    how: str     # how they were chosen, for the report


def example_inputs(module: types.ModuleType, found: FoundModel, path: Path,
                   cli_shapes: list[list[int]] | None, config_shapes: list[list[int]] | None,
                   batch: int, device: torch.device | None = None) -> Inputs:
    """Inputs from, in order: --input-shape, the file, the config, inference; on ``device``
    (default: the model's)."""
    device = device or model_device(found.model)
    if cli_shapes:
        return Inputs(_random(cli_shapes, device, "--input-shape"), "--input-shape",
                      "given with --input-shape (random values)")
    value = from_file(module, found.name, path, "example_inputs", "EXAMPLE_INPUTS")
    if value is not None:
        return Inputs(tuple(t.to(device) for t in _as_inputs(value, "example inputs", path)),
                      "example_inputs", "from example_inputs() / EXAMPLE_INPUTS in the file")
    if config_shapes:
        return Inputs(_random(config_shapes, device, "input-shape in the config"), "config",
                      "from input-shape in the config (random values)")
    tensors, how = infer_inputs(found.model, found.name, batch, path, device)
    return Inputs(tensors, "inferred", how + " (random values)")
