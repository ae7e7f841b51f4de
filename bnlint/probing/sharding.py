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

Values: each module that owns parameters runs its ``reset_parameters()`` on full-size tensors
of its own parameters only, one module at a time in the order a constructor builds them
(children before their parent), from one seed, so every rank computes the same values and
keeps its rows; with the default init of torch's layers that is exactly what
``torch.manual_seed(seed); Model()`` gives. A parameter no ``reset_parameters()`` sets keeps
the rows it was created with (:func:`bnlint.model.meta.parameters_on_meta`); init code in a
constructor that runs after a parameter is created does not run. Buffers are the
constructor's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from ..model.graph import ModelGraph
from ..model.meta import reset_of, rows

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


def _children_first(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_children():
        yield from _children_first(child, f"{prefix}.{name}" if prefix else name)
    yield prefix, module


def materialise(model: nn.Module, run_model: nn.Module, originals: dict[str, nn.Parameter],
                created: dict[int, torch.Tensor], buffers: dict[str, torch.Tensor],
                device: torch.device, rank: int, world: int, seed: int) -> list[str]:
    """Allocate this rank's shard of the sharded meta ``run_model`` on ``device`` and give it
    its values (see the module docstring). ``model`` is the user's module tree (its layers are
    ``run_model``'s), ``originals`` its meta parameters by qualified name from before sharding,
    ``created`` this rank's rows of each as created, by the parameter's id. The names of the
    parameters that kept the values they were created with."""
    run_model.to_empty(device=device)
    sharded = dict(run_model.named_parameters(remove_duplicate=False))
    done: set[int] = set()
    kept = []
    torch.manual_seed(seed)
    for owner_name, module in _children_first(model):
        direct = [name for name, p in module._parameters.items() if p is not None]
        if not direct:
            continue
        prefix = f"{owner_name}." if owner_name else ""
        values = _reset(module, direct, device)
        for name in direct:
            original = originals[prefix + name]
            if id(original) in done or prefix + name not in sharded:  # unused by the forward
                continue
            done.add(id(original))
            part = created[id(original)].to(device)
            unset = torch.isnan(values[name]) if name in values else None
            if unset is None or bool(unset.any()):
                kept.append(prefix + name)
            if unset is not None:  # where reset_parameters() sets nothing, the created value
                part = torch.where(rows(unset, rank, world), part,
                                   rows(values[name], rank, world))
            local = sharded[prefix + name].to_local()
            with torch.no_grad():
                local.copy_(part)
    with torch.no_grad():
        for name, buffer in run_model.named_buffers(remove_duplicate=False):
            buffer.copy_(buffers[name])
    return kept


def _reset(module: nn.Module, names: list[str], device: torch.device) -> dict[str, torch.Tensor]:
    """The module's direct parameters as its ``reset_parameters()`` sets them, at full size,
    NaN where it sets nothing; empty when it has none. Its own parameters are put back."""
    reset = reset_of(module)
    if reset is None:
        return {}
    installed = {name: module._parameters[name] for name in names}
    for name, p in installed.items():
        module._parameters[name] = nn.Parameter(
            torch.full(p.shape, float("nan"), dtype=p.dtype, device=device), requires_grad=False)
    try:
        with torch.no_grad():
            reset()
        return {name: module._parameters[name].detach() for name in names}
    finally:
        module._parameters.update(installed)
