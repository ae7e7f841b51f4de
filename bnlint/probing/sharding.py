"""The model on each rank of the probe across ranks (:mod:`.ranks`): FSDP2 units chosen from the
model's structure, sharding a meta-device model with ``fully_shard``, and materialising only
this rank's rows of each parameter.

Units are groups of the layers the forward calls (fx calls the leaf layers, not the blocks
that hold them), sharded with ``fully_shard([...])``: each innermost block that repeats (a
residual block, a transformer layer: a module with a sibling of its class, or a container
with a sibling holding the same classes) is one unit; the layers outside blocks form units
that each start at an affine layer (a conv or linear layer with the norms after it).
Parameters read directly in the forward (fx ``get_attr``: a layer scale, a position
embedding) belong to the root unit, the run model itself. Modules that share a parameter
share a unit.

Values: those of ``torch.manual_seed(seed); Model()``, exactly: the meta build
(:func:`bnlint.model.meta.parameters_on_meta`) runs the constructor from the seed the
one-process probe builds from, and does each write to a parameter (its creation, each
torch.nn.init call, the ``reset_parameters()`` of torch's layers, ``fill_``/``zero_``/``copy_``
and random draws on the parameter or a view of it) for real on a full-size temporary tensor,
so the random generator draws what it draws in one process, in the same order; each rank
keeps its rows; in-place elementwise ops (``w.data.mul_(0.1)``) are done on those rows. A
write that reads other elements (a copy from a tensor computed from parameters) cannot be
done there: the parameter keeps its value before it, and the probe's notes name it.
Buffers are the constructor's.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from ..model.graph import ModelGraph

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _kind(module: nn.Module) -> tuple:
    """What makes two siblings repeats of one block: the class, and for a container
    (Sequential, ModuleList...) also the classes of its children."""
    if isinstance(module, _CONTAINERS):
        return type(module), tuple(type(child) for child in module.children())
    return (type(module),)


def _blocks(model: nn.Module) -> list[str]:
    """Qualified names of the innermost modules with children and parameters that have a
    sibling of their kind (:func:`_kind`)."""
    found = []
    for name, parent in model.named_modules():
        children = list(parent.named_children())
        kinds = Counter(_kind(child) for _, child in children)
        for child_name, child in children:
            if kinds[_kind(child)] > 1 and next(child.children(), None) is not None \
                    and next(child.parameters(), None) is not None:
                found.append(f"{name}.{child_name}" if name else child_name)
    return [b for b in found if not any(other.startswith(b + ".") for other in found)]


def units(graph: ModelGraph) -> list[list[tuple[str, nn.Module]]]:
    """The FSDP units: lists of (name, module) of the called layers that hold parameters, in
    the order the forward first calls them (see the module docstring)."""
    blocks = _blocks(graph.model)
    groups: list[list[tuple[str, nn.Module]]] = []
    by_block: dict[str, int] = {}
    seen: set[int] = set()
    current = None
    for layer in graph.order:
        module = layer.obj
        if module is None or layer.op != "module" or id(module) in seen \
                or next(module.parameters(), None) is None:
            continue
        seen.add(id(module))
        block = max((b for b in blocks if layer.module == b
                     or layer.module.startswith(b + ".")), key=len, default=None)
        if block is not None:
            if block not in by_block:
                by_block[block] = len(groups)
                groups.append([])
            groups[by_block[block]].append((layer.module, module))
            current = None
        else:
            if current is None or layer.is_("@affine"):
                current = len(groups)
                groups.append([])
            groups[current].append((layer.module, module))
    return _merge_shared(groups)


def _merge_shared(groups: list[list[tuple[str, nn.Module]]]) -> list[list[tuple[str, nn.Module]]]:
    """Groups that hold a common parameter (tied weights) merged into the first of them."""
    owner: dict[int, int] = {}
    target = list(range(len(groups)))

    def find(i: int) -> int:
        while target[i] != i:
            i = target[i]
        return i

    for i, group in enumerate(groups):
        for _, module in group:
            for p in module.parameters():
                j = owner.setdefault(id(p), i)
                a, b = find(i), find(j)
                if a != b:
                    target[max(a, b)] = min(a, b)
    merged: dict[int, list[tuple[str, nn.Module]]] = {}
    for i, group in enumerate(groups):
        merged.setdefault(find(i), []).extend(group)
    return list(merged.values())


def shard(graph: ModelGraph, run_model: nn.Module, mesh: DeviceMesh) -> int:
    """Shard ``run_model`` (the instrumented model, whose layers are ``graph.model``'s) with
    FSDP2, unit by unit, then the rest as the root unit; gradients are summed across ranks,
    not averaged (each rank's loss is already its share of the batch's). The number of
    units, the root included."""
    groups = units(graph)
    for group in groups:
        fully_shard([module for _, module in group], mesh=mesh)
    # resharded after forward too (FSDP keeps a root unsharded by default), so that between
    # passes every module holds its sharded parameters, which the optimizer must be given
    fully_shard(run_model, mesh=mesh, reshard_after_forward=True)
    for module in run_model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)  # gloo has no pre-multiplied sum
    return len(groups) + 1


def materialise(run_model: nn.Module, originals: dict[str, nn.Parameter],
                built_rows: dict[int, torch.Tensor], buffers: dict[str, torch.Tensor],
                device: torch.device) -> None:
    """Allocate this rank's shard of the sharded meta ``run_model`` on ``device`` and give it
    its values: ``originals`` are the meta parameters of the user's model by qualified name
    from before sharding, ``built_rows`` this rank's rows of each by the parameter's id (see
    the module docstring), ``buffers`` the buffers by name."""
    run_model.to_empty(device=device)
    sharded = dict(run_model.named_parameters(remove_duplicate=False))
    with torch.no_grad():
        for name, original in originals.items():
            if name in sharded:  # else unused by the forward
                sharded[name].to_local().copy_(built_rows[id(original)].to(device))
        for name, buffer in run_model.named_buffers(remove_duplicate=False):
            buffer.copy_(buffers[name])
