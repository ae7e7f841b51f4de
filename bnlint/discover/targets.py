"""Regression targets for a model, in this order: ``example_targets()`` / ``EXAMPLE_TARGETS`` in
the file, ``--targets FILE``, ``target-std`` in the config; each checked against the model's
output."""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy
import torch
from torch import nn

from ..errors import InputError, UserCodeError
from ..model.sandbox import first_line, run_forward
from .inputs import Inputs, in_file
from .load import from_file
from .models import FoundModel


@dataclass
class Targets:
    """Regression targets (a tensor) or just their standard deviation (from config)."""
    tensor: torch.Tensor | None
    std: float
    source: str

    @classmethod
    def given(cls, tensor: torch.Tensor, source: str) -> Targets:
        """Targets handed over as a tensor (to the Python API, a test, from a training batch),
        with their spread."""
        values = tensor.detach().float()
        return cls(values, float(values.std()), source)


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
    except Exception as exc:  # noqa: BLE001 - whatever the reader raises, the file is bad
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
            and target.min() >= 0 and target.max() < out.shape[1])


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
    batch = first.shape[0] if not inputs.synthetic and first.dim() else None
    value = from_file(module, found.name, path, "example_targets", "EXAMPLE_TARGETS")
    if value is not None:
        try:
            t = _validate_targets(value, "example targets", str(path), batch, found.model,
                                  inputs.tensors)
        except UserCodeError:
            raise  # the forward raised: located already
        except InputError as exc:
            raise in_file(exc, module, path, ("example_targets", "EXAMPLE_TARGETS")) from None
        return Targets(t, float(t.std()), "example_targets")
    if targets_file:
        t = _validate_targets(_read_targets_file(targets_file), "targets", targets_file, batch,
                              found.model, inputs.tensors)
        return Targets(t, float(t.std()), targets_file)
    if target_std is not None:
        return Targets(None, target_std, "config target-std")
    return None
