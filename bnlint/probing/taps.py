"""Per-layer measurements during a forward/backward: taps that keep running statistics only.

A tap sees one layer's output, reduces it at once to a few numbers (mean, std, dead-unit
fraction, mean pairwise cosine similarity between samples) and registers a gradient hook that
keeps the output gradient's norm. Nothing keeps whole activations, so memory stays near one
training step. On an fx graph the taps are nodes inserted after each layer; on an untraceable
model they are forward hooks on the leaf modules.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..model import ops
from ..model.graph import ModelGraph
from ..model.stats import dead_fraction, mean_cosine

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


class Recorder:
    """Collects one pass's statistics as 0-dim tensors; :meth:`collect` syncs them once."""

    def __init__(self):
        self.forward: dict[str, dict[str, torch.Tensor]] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self.enabled = True

    def reset(self) -> None:
        self.forward, self.grads = {}, {}

    def tap(self, x: Any, key: str, kind: str) -> Any:
        if not (self.enabled and isinstance(x, torch.Tensor) and x.is_floating_point()
                and x.numel()):
            return x
        with torch.no_grad():
            flat = x.detach().float()
            stats = {"mean": flat.mean(),
                     "std": flat.std() if flat.numel() > 1 else flat.new_zeros(())}
            if kind in DYING:
                stats["dead"] = dead_fraction(flat)
            if ops.in_group(kind, "affine") or ops.in_group(kind, "norm"):
                stats["cosine"] = mean_cosine(flat)
            self.forward[key] = stats
        if x.requires_grad:
            x.register_hook(lambda g, key=key: self._grad(key, g))
        return x

    def _grad(self, key: str, g: torch.Tensor) -> None:
        """Keeps the RMS of the gradient w.r.t. the layer's output."""
        self.grads[key] = g.detach().float().norm() / max(g.numel(), 1) ** 0.5

    def collect(self) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
        """The pass's numbers as floats (one device sync)."""
        names = [(k, s) for k, stats in self.forward.items() for s in stats]
        values = [self.forward[k][s] for k, s in names] + list(self.grads.values())
        flat = torch.stack(values).tolist() if values else []
        forward: dict[str, dict[str, float]] = {}
        for (k, s), v in zip(names, flat):
            forward.setdefault(k, {})[s] = v
        grads = dict(zip(self.grads, flat[len(names):]))
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
