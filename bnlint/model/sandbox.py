"""Running the user's forward pass safely: no grad, the model left as it was, and a failure in
the user's code turned into a UserCodeError that names its line."""

from __future__ import annotations

import contextlib
import itertools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from ..errors import FORWARD_FAILED, UserCodeError
from . import sites


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


@contextlib.contextmanager
def _static_pass(model: nn.Module, train: bool) -> Iterator[None]:
    """No grad, one CPU thread (these passes are small; spare threads only spin when the
    cores are busy), the mode set, and the buffers (BatchNorm's running statistics) restored."""
    was_training, threads = model.training, torch.get_num_threads()
    saved = [(b, b.clone()) for b in model.buffers()] if train else []
    model.train(train)
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
        torch.set_num_threads(threads)
        model.train(was_training)


def run_forward(call: Callable[[], Any], model: nn.Module, inputs: tuple,
                train: bool = False) -> Any:
    """Run a forward pass without grad, leaving the model as it was; ``train`` runs it in
    training mode (batch statistics) when the batch allows. A failure in the user's code
    becomes a UserCodeError naming the line."""
    batch = inputs[0].shape[0] if inputs and isinstance(inputs[0], torch.Tensor) \
        and inputs[0].dim() else 0
    try:
        with _static_pass(model, train and batch >= 2):
            return call()
    except Exception as exc:  # noqa: BLE001 - the user's forward raised: report where and what
        site = sites.traceback_site(exc.__traceback__)
        shapes = ", ".join(str(tuple(t.shape)) for t in inputs if isinstance(t, torch.Tensor))
        hint = (f"bnlint ran it with example inputs of shape {shapes}; if those are wrong, give "
                "the right ones with --input-shape or an example_inputs() function.")
        if isinstance(exc, RecursionError):
            hint = (f"The forward calls itself (or nested modules) deeper than Python's "
                    f"recursion limit of {sys.getrecursionlimit()} frames allows; write the "
                    "recursion as a loop, or nest fewer modules.")
        raise UserCodeError(
            FORWARD_FAILED,
            f"the forward pass raised {type(exc).__name__}: {first_line(exc)}".rstrip(": ") + ".",
            path=site.path if site else None, line=site.line if site else None,
            hint=hint) from None


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer; the CPU for a model without any."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def has_lazy(model: nn.Module) -> bool:
    """Whether the model has lazy layers not run yet (nn.LazyLinear...): their first run sets
    their shapes, and their tensors have none until then."""
    return any(isinstance(t, nn.parameter.UninitializedTensorMixin)
               for t in itertools.chain(model.parameters(), model.buffers()))


def meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters and buffers by qualified name, as tensors of their shapes on the
    meta device (each with its requires_grad, for a backward there), for
    :func:`functional_forward`."""
    return {name: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad)
            for name, t in (*model.named_parameters(), *model.named_buffers())}


def functional_forward(model: nn.Module, state: dict[str, torch.Tensor], inputs: tuple) -> Any:
    """``model(*inputs)`` with its parameters and buffers replaced by ``state`` (by qualified
    name, e.g. meta tensors), every module's own tensors put back afterwards (see
    :class:`Swapped`, which keeps the swap for several runs)."""
    return Swapped(model, state)(*inputs)


class Swapped:
    """``model``'s forward with its parameters and buffers replaced by ``state`` (by qualified
    name), every module's own tensors put back after each run. Each tensor is swapped where it
    is held, in every module that holds it (a shared module, as CoaT's conv position encodings
    in timm; tied weights), by identity: torch.func.functional_call's name checks and untying
    walked every tensor again on each call, a third of the size search's trials on the meta
    device (the folders bench, 2026-11-30). The places are found once, for all the runs (a
    size search makes several), and again if the model changed what it holds: a module put in
    another's place, or a tensor in a module's."""

    def __init__(self, model: nn.Module, state: dict[str, torch.Tensor]):
        self.model, self.state = model, state
        self.modules = list(model.modules())
        self.held = self._find()

    def _find(self) -> list[tuple[dict, str, torch.Tensor, torch.Tensor]]:
        """(the dict that holds a tensor, its key there, the tensor, its twin in state)."""
        twins = {id(t): self.state[name] for name, t in (*self.model.named_parameters(),
                                                          *self.model.named_buffers())
                 if name in self.state}
        return [(tensors, name, t, twins[id(t)]) for m in self.modules
                for tensors in (m._parameters, m._buffers) for name, t in tensors.items()
                if t is not None and id(t) in twins]

    def __call__(self, *inputs: Any) -> Any:
        modules = list(self.model.modules())
        if len(modules) != len(self.modules) \
                or any(a is not b for a, b in zip(modules, self.modules)) \
                or any(tensors.get(name) is not t for tensors, name, t, _ in self.held):
            self.modules = modules
            self.held = self._find()
        try:
            for tensors, name, _, twin in self.held:
                tensors[name] = twin
            return self.model(*inputs)
        finally:
            for tensors, name, t, _ in self.held:
                tensors[name] = t
