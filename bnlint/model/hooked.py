"""The ModelGraph of a model torch.fx cannot trace (data-dependent control flow): one real
forward pass, leaf modules seen through hooks and functional ops through __torch_function__."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from . import ops, sites
from .graph import DiGraph, Layer, ModelGraph, coverage
from .sandbox import run_forward
from .sites import Site
from .stats import dead_or_none


class _Recorder(TorchFunctionMode):
    """Builds a layer graph from one real forward pass: leaf modules through hooks, functional
    ops outside them through __torch_function__."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.g = DiGraph()
        self.producer: dict[int, str] = {}
        self.keep: list[torch.Tensor] = []  # keeps ids unique for the pass
        self.stack: list[str] = []          # qualified names of the modules running
        self.in_leaf = 0
        self.names = {m: n for n, m in model.named_modules()}
        self.used: set[str] = set()
        self.params = {id(p): n for n, p in model.named_parameters()}
        self.used_params: set[str] = set()  # read by functional ops (a custom layer's weight)
        self.keys = ops.OpKeys()

    @staticmethod
    def tensors(value: Any) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        torch.utils._pytree.tree_map(
            lambda v: out.append(v) if isinstance(v, torch.Tensor) else None, value)
        return out

    def add(self, layer: Layer, inputs: Any, outputs: Any) -> None:
        self.g.add_node(layer.name, layer=layer)
        sources = {self.producer[id(t)] for t in self.tensors(inputs) if id(t) in self.producer}
        layer.tensor_inputs = len(sources)
        for src in sorted(sources):
            self.g.add_edge(src, layer.name)
        produced = self.tensors(outputs)
        for t in produced:
            self.producer[id(t)] = layer.name
            self.keep.append(t)
        layer.shape = tuple(produced[0].shape) if produced else None
        layer.dead = dead_or_none(layer.kind, produced[0]) if produced else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        kind = ops.kind_of_name(getattr(func, "__name__", ""))
        if not self.in_leaf:
            self.used_params.update(self.params[id(t)] for t in self.tensors((args, kwargs))
                                    if id(t) in self.params)
        if not self.in_leaf and kind != "Size" and self.tensors(out):
            site = sites.caller_site()
            owner = self.stack[-1] if self.stack else ""
            key = self.keys(owner, kind)
            method = getattr(func, "__qualname__", "").startswith(("Tensor.", "TensorBase."))
            data = args[:1] if method and getattr(func, "__name__", "") in ops.SHAPE_ONLY \
                else (args, kwargs)
            self.add(Layer(key.replace(":", "_").replace(".", "_"), "function", kind, site=site,
                           call_site=site, options=ops.op_options(func, args, kwargs),
                           spelling=ops.spelling(func, method), key=key), data, out)
        return out

    def pre_hook(self, module: nn.Module, args: Any) -> None:
        self.stack.append(self.names[module])
        if ops.is_leaf_class(module):
            self.in_leaf += 1

    def post_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        qual = self.stack.pop()
        if not ops.is_leaf_class(module):
            return
        self.in_leaf -= 1
        if self.in_leaf == 0:
            self.used.add(qual)
            call = sites.caller_site()
            n = sum(1 for x in self.g.nodes if self.g.nodes[x]["layer"].module == qual)
            name = qual.replace(".", "_") + (f"_call{n}" if n else "")
            self.add(Layer(name, "module", ops.kind_of_module(module), module=qual, obj=module,
                           site=sites.site_of(module), call_site=call, key=qual),
                     args, output)


def _drop_dead_ends(g: DiGraph) -> None:
    """Remove the ops the output does not depend on: in a hooked pass, mostly the tests of
    data-dependent control flow (``if x.abs().max() > t``), which would otherwise fork every
    chain they read from."""
    live, todo = set(), ["output"]
    while todo:
        name = todo.pop()
        if name not in live:
            live.add(name)
            todo.extend(g.predecessors(name))
    for name in [n for n in g.nodes if n not in live and g.nodes[n]["layer"].op != "input"]:
        g.remove_node(name)


def trace_hooks(model: nn.Module, inputs: tuple, reason: str,
                reason_site: Site | None) -> ModelGraph:
    """One hooked forward pass: a module-level graph for models fx cannot trace."""
    rec = _Recorder(model)
    handles = [h for m in model.modules() for h in (m.register_forward_pre_hook(rec.pre_hook),
                                                    m.register_forward_hook(rec.post_hook))]
    for i, t in enumerate(rec.tensors(inputs)):
        name = "x" if i == 0 else f"x_{i}"
        rec.g.add_node(name, layer=Layer(name, "input", "Input", shape=tuple(t.shape)))
        rec.producer[id(t)] = name

    def forward():
        with rec:
            return model(*inputs)

    try:
        out = run_forward(forward, model, inputs, train=True)
    finally:
        for h in handles:
            h.remove()
    rec.add(Layer("output", "output", "Output"), out, None)
    _drop_dead_ends(rec.g)
    covered = coverage(model, rec.used, rec.used_params)
    return ModelGraph(model, rec.g, "hooks", covered, reason, reason_site)
