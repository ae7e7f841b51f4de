"""Models too large for one process, built without their weights: the constructor runs as
written, but each parameter moves to the meta device the moment it is registered on its
module, so building costs about the memory of the largest parameter. Buffers (running
statistics, masks, rotary frequencies) stay real: they are small, their values come from the
constructor alone, and FSDP keeps a whole copy of them on every rank anyway.

The part of each parameter a rank will hold (:func:`rows`) is kept as the constructor created
it, for the parameters that no ``reset_parameters()`` sets again later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules.module import register_module_parameter_registration_hook


def rows(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """The rows of ``t`` that rank ``rank`` of ``world`` holds: FSDP2's dim-0 sharding,
    ``torch.chunk`` with empty chunks at the end when there are fewer rows than ranks."""
    if t.dim() == 0:
        return t
    chunks = t.chunk(world)
    return chunks[rank] if rank < len(chunks) else t[:0]


def reset_of(module: nn.Module):
    """The module's own re-initialisation, ``reset_parameters()`` (``_reset_parameters()`` in
    torch's MultiheadAttention), or None."""
    for name in ("reset_parameters", "_reset_parameters"):
        method = getattr(module, name, None)
        if callable(method):
            return method
    return None


@contextlib.contextmanager
def parameters_on_meta(rank: int, world: int) -> Iterator[dict[int, torch.Tensor]]:
    """While active, every parameter registered on a module is replaced by a meta-device
    one. Yields a dict, filled as modules are built, from the id of each new meta parameter
    to the rows of it that rank ``rank`` of ``world`` holds (:func:`rows`), as created."""
    created: dict[int, torch.Tensor] = {}

    def to_meta(module: nn.Module, name: str, param: nn.Parameter | None):
        if param is None or param.is_meta or isinstance(
                param, nn.parameter.UninitializedTensorMixin):
            return None
        meta = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
        created[id(meta)] = rows(param.detach(), rank, world).clone()
        return meta

    handle = register_module_parameter_registration_hook(to_meta)
    try:
        yield created
    finally:
        handle.remove()


def take_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's buffers by qualified name, each replaced on the model by a meta-device
    one (so the meta model runs on meta inputs alone)."""
    taken = {name: b for name, b in model.named_buffers(remove_duplicate=False)
             if not b.is_meta}
    for owner in model.modules():
        for name, buffer in owner._buffers.items():
            if buffer is not None and not buffer.is_meta:
                owner._buffers[name] = buffer.to("meta")
    return taken
