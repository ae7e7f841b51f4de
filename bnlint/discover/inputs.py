"""Example inputs for a model, in this order: --input-shape, an ``example_inputs()`` function or
``EXAMPLE_INPUTS`` value in the file, ``input-shape`` in the config, or inference from the
first Conv/Linear/Embedding layer the forward calls (an image size from :mod:`.sizes`; token ids
in the embedding's range), of which the lint uses the first whose forward runs
(:class:`Examples`). The report says which were used and how they were chosen."""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from .. import config as defaults
from ..errors import FORWARD_FAILED, NOT_LINTED, InputError, UserCodeError
from ..model.sandbox import first_line, model_device
from ..model.traced import fx_trace
from . import hf, sizes
from .load import from_file
from .models import FoundModel, Source

# Image sizes tried in order when the layers do not fix one: CIFAR's, then larger.
_SPATIAL_SIZES = (32, 64, sizes.IMAGENET_SIZE)
_KINDS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Embedding, nn.EmbeddingBag)
_TOKENS = (nn.Embedding, nn.EmbeddingBag)
R = TypeVar("R")


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


def in_file(error: InputError, module: types.ModuleType, path: Path,
            names: tuple[str, ...]) -> UserCodeError:
    """``error`` in a value the file gives bnlint (its ``example_inputs()`` or
    ``EXAMPLE_INPUTS``, its example targets): a problem of the file's code, located where the
    first of ``names`` it defines is."""
    source = Source(path, vars(module))
    line = next((n for n in map(source.line, names) if n is not None), None)
    return UserCodeError(FORWARD_FAILED, error.message, str(path), line, error.hint)


def _first_called(model: nn.Module) -> nn.Module | None:
    """The first Conv/Linear/Embedding the forward calls, as fx traces it (no inputs needed)."""
    try:
        traced = fx_trace(model)
    except Exception:  # noqa: BLE001 - fx cannot trace it: the first registered one stands
        return None
    layers = (model.get_submodule(str(n.target)) for n in traced.nodes if n.op == "call_module")
    return next((m for m in layers if isinstance(m, _KINDS)), None)


def _first_layer(model: nn.Module) -> nn.Module | None:
    """The model's first Conv/Linear/Embedding: the first registered, unless the model also
    holds an embedding and calls another layer first (or the embedding first)."""
    layers = [m for m in model.modules() if isinstance(m, _KINDS)]
    if not layers:
        return None
    if not isinstance(layers[0], _TOKENS) and any(isinstance(m, _TOKENS) for m in layers):
        return _first_called(model) or layers[0]
    return layers[0]


@dataclass(frozen=True)
class _Candidates:
    shapes: list[tuple[int, ...]]  # tried in order; the first that runs is used
    why: str                       # how they were chosen
    in_turn: bool = False          # the why names the shapes tried in turn, not the first


def _shape_at(layer: nn.Module, batch: int) -> Callable[[int], tuple[int, ...]]:
    """The input shape of a Conv first layer at spatial size ``size`` (3-D: 16 frames)."""
    channels = layer.in_channels
    if isinstance(layer, nn.Conv1d):
        return lambda size: (batch, channels, size)
    if isinstance(layer, nn.Conv2d):
        return lambda size: (batch, channels, size, size)
    return lambda size: (batch, channels, 16, size, size)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _px(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape[2:]))


def _name_of(model: nn.Module, layer: nn.Module) -> str:
    return next((n for n, m in model.named_modules() if m is layer), type(layer).__name__)


def _classes(model: nn.Module) -> int | None:
    """The outputs of the model's last Linear: its head's classes, for a classifier."""
    return next((m.out_features for m in reversed(list(model.modules()))
                 if isinstance(m, nn.Linear)), None)


def _candidates(model: nn.Module, layer: nn.Module, batch: int) -> _Candidates:
    """The input shapes to try for a model whose first layer is ``layer``, and why: a Conv's
    size solved from the first Linear after a flatten, else 32 for a CIFAR model that
    downsamples as ImageNet models do, else 224 for an ImageNet-style model, else the usual
    sizes in turn."""
    first = f"the first layer, {_name_of(model, layer)} ({type(layer).__name__})"
    if isinstance(layer, nn.Linear):
        return _Candidates([(batch, layer.in_features)],
                           f"{_count(layer.in_features, 'feature')}, from {first}")
    if isinstance(layer, _TOKENS):
        return _Candidates([(batch, defaults.TOKENS)],
                           f"{defaults.TOKENS} token ids per sample in [0, "
                           f"{layer.num_embeddings}), for {first}")
    shape_at = _shape_at(layer, batch)
    channels = f"{_count(layer.in_channels, 'channel')}, from {first}"
    probes = sizes.Probes(model, shape_at)
    if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
        solved = sizes.solve_flatten(probes)
        if solved is not None:
            shape = shape_at(solved.size)
            linear = _name_of(model, solved.linear)
            low, high = solved.sizes
            alike = "" if low == high else \
                f" (as they do every size from {low} to {high})" if solved.every else \
                f" (as they do {_px(shape_at(high if low == solved.size else low))} too)"
            return _Candidates([shape], f"{channels}; {_px(shape)}: the layers flatten it to "
                               f"the {solved.linear.in_features} features of {linear} "
                               f"(Linear){alike}")
    if isinstance(layer, nn.Conv2d):
        classes = _classes(model)
        factor = sizes.cifar_downsampling(probes, layer, classes)
        if factor is not None:
            small = sizes.CIFAR_SIZE
            return _Candidates([shape_at(small), *(shape_at(s) for s in _SPATIAL_SIZES
                                                   if s != small)],
                               f"{channels}; {small}x{small}, CIFAR's size: the head's "
                               f"{classes} classes are CIFAR-{classes}'s and the first layer is "
                               "CIFAR's 3x3 conv at stride 1 (ImageNet models' stems stride 2); "
                               f"the layers downsample it {factor}x, to 1x1, before the head")
        factor = sizes.imagenet_downsampling(probes)
        if factor is not None:
            big = sizes.IMAGENET_SIZE
            return _Candidates([shape_at(big), shape_at(sizes.INCEPTION_SIZE),
                                *(shape_at(s) for s in _SPATIAL_SIZES if s != big)],
                               f"{channels}; {big}x{big}, ImageNet's size: the layers "
                               f"downsample it {factor}x before the head, as models built for "
                               "ImageNet do (a stride-2 stem or pooling, then strided stages)")
    shapes = [shape_at(s) for s in (64, 256, 1024)] if isinstance(layer, nn.Conv1d) \
        else [shape_at(s) for s in _SPATIAL_SIZES]
    return _Candidates(shapes, f"{channels}; no layer fixes the size, so the first of "
                       + ", ".join(_px(s) for s in shapes) + " that runs", in_turn=True)


def _random_input(layer: nn.Module, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    if isinstance(layer, _TOKENS):
        return torch.randint(0, layer.num_embeddings, shape, device=device)
    return torch.randn(shape, device=device)


@dataclass
class Inputs:
    tensors: tuple[torch.Tensor, ...]
    source: str  # "--input-shape", "example_inputs", "config", "inferred"
    how: str     # how they were chosen, for the report

    @property
    def inferred(self) -> bool:
        """Their shape is bnlint's guess (which the static pass confirms)."""
        return self.source == "inferred"

    @property
    def synthetic(self) -> bool:
        """Their values are random, not the file's own example inputs."""
        return self.source != "example_inputs"


class Examples:
    """The example inputs a model is linted with: one set (given to bnlint, or described by a
    transformers config), or the candidates bnlint inferred from its first layer, each drawn
    when its turn comes. :meth:`first_that_runs` tries them in turn with the forward the lint
    runs first (its static pass), so no other forward confirms an inferred shape."""

    def __init__(self, draws: list[Callable[[], Inputs]],
                 none_ran: Callable[[UserCodeError], UserCodeError] | None = None):
        self._draws = draws
        self._none_ran = none_ran  # the error when no candidate runs, from the last one's

    @classmethod
    def given(cls, inputs: Inputs) -> Examples:
        return cls([lambda: inputs])

    def first_that_runs(self, run: Callable[[Inputs], R]) -> tuple[Inputs, R]:
        """The first candidate on which ``run`` (a forward of the model) does not raise the
        forward's failure (FORWARD_FAILED), and what it returned. When none runs: that
        failure, or, for inputs bnlint inferred, a NOT_LINTED naming the shapes it tried (the
        inputs were its guess, so a forward that fails on each is not shown to be wrong)."""
        for draw in self._draws:
            inputs = draw()
            try:
                return inputs, run(inputs)
            except UserCodeError as exc:
                if exc.code != FORWARD_FAILED:
                    raise
                last = exc
        raise (self._none_ran(last) if self._none_ran else last) from None


def _draw(layer: nn.Module, shape: tuple[int, ...], device: torch.device, how: str) -> Inputs:
    return Inputs((_random_input(layer, shape, device),), "inferred", how + " (random values)")


def infer_inputs(model: nn.Module, name: str, batch: int, path: Path,
                 device: torch.device | None = None, line: int | None = None) -> Examples:
    """Inputs a transformers model's config describes, else the candidates inferred from the
    first Conv/Linear/Embedding, in the order they are tried; on ``device`` (default: the
    model's), each with how it was chosen."""
    device = device or model_device(model)
    described = hf.example_inputs(model, batch, device)
    if described is not None:
        tensors, how = described
        return Examples.given(Inputs(tensors, "inferred", how + " (random values)"))
    layer = _first_layer(model)
    how = ("Give them: --input-shape 8,3,32,32, an example_inputs() function or EXAMPLE_INPUTS "
           "value in the model file, or input-shape in [tool.bnlint].")
    if layer is None:
        raise UserCodeError(NOT_LINTED, f"not linted: cannot infer example inputs for {name}: "
                            "it has no Conv, Linear or Embedding layer to read the input size "
                            "from.", path=str(path), line=line, hint=how)
    if isinstance(layer, nn.modules.lazy.LazyModuleMixin) and layer.has_uninitialized_params():
        raise UserCodeError(NOT_LINTED, f"not linted: cannot infer example inputs for {name}: "
                            f"its first layer ({type(layer).__name__}) is lazy, so its input "
                            "size is not known until it runs.", path=str(path), line=line,
                            hint=how)
    chosen = _candidates(model, layer, batch)
    draws = []
    for shape in chosen.shapes:
        why = chosen.why
        if chosen.in_turn:
            why += f": {_px(shape)}"
        elif shape != chosen.shapes[0]:
            why += f"; it did not run, {_px(shape)} did"
        draws.append(functools.partial(_draw, layer, shape, device, "inferred: " + why))

    def none_ran(last: UserCodeError) -> UserCodeError:
        tried = " or ".join(str(s) for s in chosen.shapes)
        return UserCodeError(
            NOT_LINTED, f"not linted: {last.message[:1].lower()}{last.message[1:]}", last.path,
            last.line, f"bnlint inferred inputs of shape {tried} for {name} from {chosen.why}; "
                       "if the model expects others, " + how[0].lower() + how[1:])
    return Examples(draws, none_ran)


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


def example_inputs(module: types.ModuleType, found: FoundModel, path: Path,
                   cli_shapes: list[list[int]] | None, config_shapes: list[list[int]] | None,
                   batch: int, device: torch.device | None = None) -> Examples:
    """Inputs from, in order: --input-shape, the file, the config, inference; on ``device``
    (default: the model's)."""
    device = device or model_device(found.model)
    if cli_shapes:
        return Examples.given(Inputs(_random(cli_shapes, device, "--input-shape"),
                                     "--input-shape", "given with --input-shape (random values)"))
    value = from_file(module, found.name, path, "example_inputs", "EXAMPLE_INPUTS")
    if value is not None:
        try:
            tensors = _as_inputs(value, "example inputs", path)
        except InputError as exc:
            raise in_file(exc, module, path, ("example_inputs", "EXAMPLE_INPUTS")) from None
        return Examples.given(Inputs(tuple(t.to(device) for t in tensors), "example_inputs",
                                     "from example_inputs() / EXAMPLE_INPUTS in the file"))
    if config_shapes:
        return Examples.given(Inputs(_random(config_shapes, device, "input-shape in the config"),
                                     "config", "from input-shape in the config (random values)"))
    return infer_inputs(found.model, found.name, batch, path, device, found.line)
