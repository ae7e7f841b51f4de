"""Build the ModelGraph of a model: torch.fx when it traces, else one hooked forward pass."""

from __future__ import annotations

from torch import nn

from . import sites
from .graph import ModelGraph
from .hooked import trace_hooks
from .sandbox import first_line, has_lazy, run_forward
from .traced import from_fx, fx_trace


def build(model: nn.Module, inputs: tuple) -> ModelGraph:
    """The ModelGraph of ``model``: fx when it traces, else the hooked forward pass. Lazy
    modules (nn.LazyLinear...) are first initialised by one forward pass with ``inputs``."""
    if has_lazy(model):
        run_forward(lambda: model(*inputs), model, inputs)
    try:
        traced = fx_trace(model, len(inputs))
    except Exception as exc:  # noqa: BLE001 - fx cannot trace data-dependent control flow and more
        reason = f"{type(exc).__name__}: {first_line(exc)}".rstrip(": ")
        return trace_hooks(model, inputs, reason, sites.traceback_site(exc.__traceback__))
    return from_fx(model, traced, inputs)
