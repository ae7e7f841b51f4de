"""Per-layer measurements during a forward/backward: taps that keep running statistics only.

A tap sees one layer's output, reduces it at once to sums over its samples (from which come
the mean, std, dead-unit fraction and mean pairwise cosine similarity between samples) and
registers a gradient hook that keeps the output gradient's sum of squares. Sums over parts of
a batch add up, so processes that each hold part of the batch reduce them into the numbers of
the whole batch (:mod:`.ranks`). Nothing keeps whole activations, so memory stays near one
training step. On an fx graph the taps are nodes inserted after each layer; on an untraceable
model they are forward hooks on the leaf modules.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..model import ops
from ..model.graph import ModelGraph
from ..model.stats import channel_max, cosine_from_unit_sum, unit_sum

TAPPED = ("@affine", "@norm", "@activation", "@merge")
DYING = frozenset({"ReLU", "ReLU6"})  # units that output exactly 0 below threshold


@dataclass
class Tapped:
    """A layer the probe measures: its stable key, kind, qualified name (modules) and number
    of units (channels, dim 1 of its output)."""
    key: str
    kind: str
    module: str | None
    units: int


Reduce = Callable[[torch.Tensor, torch.Tensor], None]
"""Across processes, in place: sums ``sums`` (float64) and takes the largest of ``maxima``."""


def _wide(device: torch.device) -> torch.dtype:
    """The dtype sums are kept in: float64, except on MPS, which has none."""
    return torch.float32 if device.type == "mps" else torch.float64


class Recorder:
    """Collects one pass's statistics as sums over the samples it saw: per tapped output its
    size, sum and sum of squares (from its exact mean and std), each unit's maximum (ReLUs)
    and the sum of the samples' unit vectors (affine and norm layers); per output gradient
    its sum of squares and size. :meth:`collect` reduces them with ``reduce`` (across
    processes, when given) and derives the statistics with one device sync."""

    def __init__(self, reduce: Reduce | None = None):
        self.forward: dict[str, dict[str, torch.Tensor]] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self.enabled = True
        self.reduce = reduce

    def reset(self) -> None:
        self.forward, self.grads = {}, {}

    def tap(self, x: Any, key: str, kind: str) -> Any:
        if not (self.enabled and isinstance(x, torch.Tensor) and x.is_floating_point()
                and x.numel()):
            return x
        with torch.no_grad():
            flat = x.detach().float()
            wide, n = _wide(flat.device), flat.numel()
            mean = flat.mean().to(wide)
            spread = (n - 1) * flat.std().to(wide) ** 2 if n > 1 else mean.new_zeros(())
            sums = {"moments": torch.stack([mean.new_tensor(n), n * mean,
                                            spread + n * mean * mean])}
            if kind in DYING:
                sums["max"] = channel_max(flat)
            if ops.in_group(kind, "affine") or ops.in_group(kind, "norm"):
                sums["units"] = torch.cat([unit_sum(flat).to(wide), mean.new_tensor([len(x)])])
            self.forward[key] = sums
        if x.requires_grad:
            x.register_hook(lambda g, key=key: self._grad(key, g))
        return x

    def _grad(self, key: str, g: torch.Tensor) -> None:
        flat = g.detach().float().reshape(-1)
        square = flat.dot(flat).to(_wide(flat.device))
        self.grads[key] = torch.stack([square, square.new_tensor(flat.numel())])

    def collect(self) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
        """The pass's statistics as floats, after the reduction (one device sync): per tapped
        output ``mean``, ``std``, ``dead`` (ReLUs) and ``cosine`` (affine and norm layers);
        per output gradient its RMS."""
        sums = [t for stats in self.forward.values() for name, t in stats.items()
                if name != "max"] + list(self.grads.values())
        maxima = [stats["max"] for stats in self.forward.values() if "max" in stats]
        if not sums:
            return {}, {}
        flat_sums, flat_max = torch.cat(sums), torch.cat(maxima) if maxima else None
        if self.reduce is not None:
            self.reduce(flat_sums, flat_max)
        sums = iter(flat_sums.split([len(t) for t in sums]))
        maxima = iter(flat_max.split([len(t) for t in maxima])) if maxima else iter(())
        names, values = [], []
        for key, stats in self.forward.items():
            n, first, second = next(sums)
            names += [(key, "mean"), (key, "std")]
            values += [first / n, ((second - first * first / n).clamp_min(0) / (n - 1)).sqrt()
                       if n > 1 else n.new_zeros(())]
            if "max" in stats:
                names.append((key, "dead"))
                values.append((next(maxima) <= 0).to(n.dtype).mean())
            if "units" in stats:
                units = next(sums)
                names.append((key, "cosine"))
                values.append(cosine_from_unit_sum(units[:-1], units[-1]))
        for key in self.grads:
            square, size = next(sums)
            names.append((key, None))
            values.append((square / size.clamp_min(1)).sqrt())
        forward: dict[str, dict[str, float]] = {k: {} for k in self.forward}
        grads: dict[str, float] = {}
        for (key, stat), v in zip(names, torch.stack(values).tolist()):
            if stat is None:
                grads[key] = v
            else:
                forward[key][stat] = v
        return forward, grads


class _Tap(nn.Module):
    """The node inserted after each tapped layer of an fx graph."""

    def __init__(self, recorder: Recorder):
        super().__init__()
        self.recorder = recorder

    def forward(self, x, key: str, kind: str):
        return self.recorder.tap(x, key, kind)


def tapped_layers(graph: ModelGraph) -> list[Tapped]:
    seen, out = set(), []
    for layer in graph.order:
        if any(layer.is_(spec) for spec in TAPPED) and layer.key not in seen:
            if graph.method == "hooks" and layer.obj is None:
                continue  # functional ops are invisible to hooks
            seen.add(layer.key)
            units = layer.shape[1] if layer.shape and len(layer.shape) > 1 else 1
            out.append(Tapped(layer.key, layer.kind, layer.module, units))
    return out


def instrumented(graph: ModelGraph, recorder: Recorder, copy: bool = True) -> nn.Module:
    """The model with a tap on every measured layer: a copy (the user's model is never
    touched), or with ``copy=False`` the model's own layers, for a model nobody will use
    again. ``recorder.enabled = False`` turns the taps off."""
    if graph.gm is not None:
        gm = (deepcopy(graph.gm) if copy else
              fx.GraphModule(graph.gm, deepcopy(graph.gm.graph)))  # shares the layers
        gm.add_submodule("_bnlint_tap", _Tap(recorder))
        keys = {layer.name: layer for layer in graph.order
                if any(layer.is_(spec) for spec in TAPPED)}
        for node in list(gm.graph.nodes):
            layer = keys.get(node.name)
            if layer is not None:
                with gm.graph.inserting_after(node):
                    gm.graph.call_module("_bnlint_tap", (node, layer.key, layer.kind))
        gm.recompile()
        return gm
    model = deepcopy(graph.model) if copy else graph.model
    names = {layer.module: layer for layer in graph.order
             if layer.obj is not None and any(layer.is_(spec) for spec in TAPPED)}
    for name, module in model.named_modules():
        layer = names.get(name)
        if layer is not None:
            module.register_forward_hook(
                lambda m, a, out, layer=layer: recorder.tap(out, layer.key, layer.kind))
    return model


def overflowing(value: Any) -> bool:
    """A floating tensor holding NaN/Inf, or values so large (about 1e19 and up) that its
    mean square overflows float32: statistics of it are no longer numbers."""
    if not (isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel()):
        return False
    return not (bool(torch.isfinite(value).all())
                and bool(torch.isfinite(value.float().square().mean())))


def first_nonfinite(graph: ModelGraph, model: nn.Module, inputs: tuple) -> str | None:
    """The key of the first layer whose output overflows (see :func:`overflowing`), running
    the graph node by node (fx) or checking each leaf module's output (hooks)."""
    found: list[str] = []
    bad = overflowing

    with torch.no_grad():
        if isinstance(model, fx.GraphModule) and graph.gm is not None:
            layers = {layer.name: layer for layer in graph.order}

            class Hunter(fx.Interpreter):
                def run_node(self, node):
                    out = super().run_node(node)
                    if not found and node.name in layers and node.op != "placeholder" \
                            and bad(out):
                        found.append(layers[node.name].key)
                    return out

            Hunter(model).run(*inputs)
        else:
            names = {m: n for n, m in model.named_modules()}

            def hook(m, a, out):
                if not found and bad(out):
                    found.append(names[m])

            handles = [m.register_forward_hook(hook) for m in model.modules()
                       if not list(m.children())]
            try:
                model(*inputs)
            finally:
                for h in handles:
                    h.remove()
    return found[0] if found else None
