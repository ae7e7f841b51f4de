"""ModelGraph: the model as a directed graph of layers (the data; :mod:`.build` makes one).

Every node holds a :class:`Layer`: its op, kind (see :mod:`.ops`), qualified module name,
output shape and source sites. Edges follow the data. Rules walk it with :meth:`ModelGraph.next`
and :meth:`ModelGraph.prev`, which look through transparent ops (views, flattens, casts).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from . import ops
from .sites import Site


class DiGraph:
    """A directed graph with ordered nodes and attributes: the part of networkx's DiGraph API
    bnlint uses (``add_node``, ``add_edge``, ``remove_node``, ``nodes[n]``, ``successors``,
    ``predecessors``).
    Written out because importing networkx took 0.18 s here (it loads XML readers: python
    -X importtime), about half of the 0.4 s that linting a ResNet-50 may add to importing
    torch, building and tracing it (the 1.25x target of bench/benchmarks/speed.py)."""

    def __init__(self):
        self.nodes: dict[str, dict[str, Any]] = {}
        self._succ: dict[str, dict[str, None]] = {}
        self._pred: dict[str, dict[str, None]] = {}

    def add_node(self, name: str, **attrs: Any) -> None:
        if name not in self.nodes:
            self.nodes[name], self._succ[name], self._pred[name] = {}, {}, {}
        self.nodes[name].update(attrs)

    def add_edge(self, u: str, v: str) -> None:
        self.add_node(u)
        self.add_node(v)
        self._succ[u][v] = None
        self._pred[v][u] = None

    def remove_node(self, name: str) -> None:
        for v in self._succ.pop(name):
            del self._pred[v][name]
        for u in self._pred.pop(name):
            del self._succ[u][name]
        del self.nodes[name]

    def successors(self, name: str) -> Iterable[str]:
        return iter(self._succ[name])

    def predecessors(self, name: str) -> Iterable[str]:
        return iter(self._pred[name])


@dataclass(eq=False)
class Layer:
    name: str                  # node id in the graph
    op: str                    # input | module | function | attr | output
    kind: str                  # BatchNorm2d, ReLU, Add... (see ops.py)
    module: str | None = None  # qualified name (layer1.0.bn2) for module calls and attributes
    obj: nn.Module | None = None
    shape: tuple[int, ...] | None = None
    site: Site | None = None       # where the module was built, or the line of the op
    call_site: Site | None = None  # the forward line that called it
    tensor_inputs: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # scalar args of functional ops
    params: dict[str, str] = field(default_factory=dict)  # functional ops: argument -> the
                                                          # parameter or buffer it reads
    spelling: str = ""             # how the code wrote a functional op: F.relu, .relu(), +
    key: str = ""                  # stable name: the module path, or owner:op for functional ops
    dead: float | None = None      # ReLUs: fraction of dead units on the example batch (train
                                   # mode), when the output was finite

    @property
    def label(self) -> str:
        """How messages name this layer: its module path, or its spelling and line."""
        if self.module:
            return self.module
        where = f" (line {self.site.line})" if self.site else ""
        return f"{self.spelling or self.kind}{where}"

    @property
    def what(self) -> str:
        """The label with the kind, for messages: ``fc (Linear)``, ``F.relu (line 18)``."""
        return f"{self.module} ({self.kind})" if self.module else self.label

    def attr(self, name: str) -> Any:
        """A module attribute (tensors read as True, None as False) or a functional option
        (see :func:`.ops.op_options`; None when the function has no such option)."""
        if self.obj is None:
            return self.options.get(name)
        value = getattr(self.obj, name, None)
        if isinstance(value, torch.Tensor):
            return True
        return False if value is None else value

    def is_(self, spec: str) -> bool:
        return ops.matches(self.kind, spec)


class ModelGraph:
    """The traced model. ``method`` is 'fx' or 'hooks'; ``coverage`` the fraction of the model's
    parameters that belong to layers in the graph; ``reason`` why fx failed, if it did."""

    def __init__(self, model: nn.Module, g: DiGraph, method: str, coverage: float,
                 reason: str | None = None, reason_site: Site | None = None,
                 traced: fx.Graph | None = None):
        self.model = model
        self.g = g
        self.method = method
        self.coverage = coverage
        self.reason = reason
        self.reason_site = reason_site
        self.traced = traced  # fx's graph of the model (fx only)
        # Nodes were added in execution order, which is topological.
        self.order: list[Layer] = [g.nodes[n]["layer"] for n in g.nodes]
        _mark_weight_standardisation(g, self.order)
        self._by_key: dict[str, Layer] = {}
        self._calls: dict[int, list[Layer]] = {}
        for layer in self.order:
            self._by_key.setdefault(layer.key, layer)
            if layer.module:
                self._by_key.setdefault(layer.module, layer)
            if layer.obj is not None:
                self._calls.setdefault(id(layer.obj), []).append(layer)
        self._upstream: dict[str, set[str]] = {}
        self._ancestry: tuple[dict[str, int], list[str]] | None = None
        # (the graph does not change once built: what rules ask of it many times is kept)
        self._next: dict[str, list[Layer]] = {}
        self._prev: dict[str, list[Layer]] = {}
        self._of_kind: dict[str, list[Layer]] = {}

    def __len__(self) -> int:
        return len(self.order)

    @functools.cached_property
    def gm(self) -> fx.GraphModule | None:
        """The traced module (fx only), for running the graph instrumented: made when first
        asked for (the probe, a repair), as the static pass runs the graph on the model
        itself (a GraphModule copies every layer's path and compiles the graph's code). It
        holds the model's layers as they are then: a change to the model before it is made
        shows in it."""
        return fx.GraphModule(self.model, self.traced) if self.traced is not None else None

    def layer(self, name: str) -> Layer:
        return self.g.nodes[name]["layer"]

    def _walk(self, name: str, step: Callable[[str], Iterable[str]]) -> list[Layer]:
        found, stack, seen = [], list(step(name)), set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            layer = self.layer(n)
            if layer.is_("@meta"):
                continue
            if layer.is_("@transparent"):
                stack.extend(step(n))
            else:
                found.append(layer)
        return sorted(found, key=lambda x: x.name)

    def next(self, layer: Layer) -> list[Layer]:
        """Layers consuming this one's output, looking through transparent ops."""
        if layer.name not in self._next:
            self._next[layer.name] = self._walk(layer.name, self.g.successors)
        return list(self._next[layer.name])

    def prev(self, layer: Layer) -> list[Layer]:
        """Layers feeding this one, looking through transparent ops."""
        if layer.name not in self._prev:
            self._prev[layer.name] = self._walk(layer.name, self.g.predecessors)
        return list(self._prev[layer.name])

    def downstream(self, layer: Layer) -> Iterator[Layer]:
        """The layers after this one along its single line of readers (:meth:`next`), nearest
        first; the line ends where the output forks or is not read."""
        while len(readers := self.next(layer)) == 1:
            layer = readers[0]
            yield layer

    def find(self, name: str | None) -> Layer | None:
        """The (first) layer with this module name or key."""
        return self._by_key.get(name) if name else None

    def calls(self, layer: Layer) -> list[Layer]:
        """Every call of the module ``layer`` calls (a shared module has several)."""
        return self._calls.get(id(layer.obj), [layer]) if layer.obj is not None else [layer]

    def affine_owner(self, layer: Layer) -> str | None:
        """The module path of the model's module that calls the functional affine op ``layer``
        when that module is itself an affine layer (a subclass of nn.Conv2d or nn.Linear with
        its own forward, such as a weight-standardised conv), else None. (An fx copy keeps
        only the module's tensors, not its class.)"""
        owner = layer.key.rpartition(":")[0]
        if not owner:
            return None
        try:
            module = self.model.get_submodule(owner)
        except AttributeError:
            return None
        return owner if ops.in_group(ops.kind_of_module(module), "affine") else None

    def ancestors(self, names: Iterable[str]) -> set[str]:
        """``names`` and every node they are computed from (parameters included)."""
        found, todo = set(), list(names)
        while todo:
            name = todo.pop()
            if name not in found:
                found.add(name)
                todo.extend(self.g.predecessors(name))
        return found

    def ancestry(self) -> tuple[dict[str, int], list[str]]:
        """Every node's :meth:`ancestors` as a bit set (bit i: the i-th name of the list also
        returned), computed once in one pass: set algebra over the ancestors of many nodes (a
        residual net's adds) then costs a few machine words per 64 nodes, not a walk of the
        graph each."""
        if self._ancestry is None:
            names = list(self.g.nodes)
            index = {n: i for i, n in enumerate(names)}
            bits: dict[str, int] = {}
            for name in names:  # iterative depth-first, predecessors first
                stack = [name]
                while stack:
                    n = stack[-1]
                    if n in bits:
                        stack.pop()
                        continue
                    todo = [p for p in self.g.predecessors(n) if p not in bits]
                    if todo:
                        stack.extend(todo)
                        continue
                    stack.pop()
                    b = 1 << index[n]
                    for p in self.g.predecessors(n):
                        b |= bits[p]
                    bits[n] = b
            self._ancestry = (bits, names)
        return self._ancestry

    def upstream(self, reaches: Callable[[Layer], bool]) -> set[str]:
        """Names of the layers from which some layer for which ``reaches`` holds can be
        reached (one pass in reverse order)."""
        found: set[str] = set()
        for layer in reversed(self.order):
            if any(n in found or reaches(self.layer(n)) for n in self.g.successors(layer.name)):
                found.add(layer.name)
        return found

    def upstream_of(self, spec: str) -> set[str]:
        """:meth:`upstream` of the layers matching ``spec``, cached per spec."""
        if spec not in self._upstream:
            self._upstream[spec] = self.upstream(lambda layer: layer.is_(spec))
        return self._upstream[spec]

    def heads(self) -> list[Layer]:
        """The layers whose values the model returns (one per output tensor)."""
        return [p for o in self.order if o.op == "output" for p in self.prev(o)]

    def layers(self, spec: str | None = None) -> list[Layer]:
        """Layers in topological order, optionally only those matching a kind spec."""
        if spec is None:
            return list(self.order)
        if spec not in self._of_kind:
            self._of_kind[spec] = [x for x in self.order if x.is_(spec)]
        return list(self._of_kind[spec])

    def summary(self) -> dict[str, Any]:
        data = {"ok": self.method == "fx", "method": self.method,
                "coverage": round(self.coverage, 4), "nodes": len(self.order)}
        if self.reason:
            data["reason"] = self.reason
        return data


def _mark_weight_standardisation(g: DiGraph, order: list[Layer]) -> None:
    """Re-kind a functional norm whose value does not depend on the model's inputs as
    ``WeightStandardization``: it normalises a parameter (the scaled weight standardisation of
    NF-ResNets, Brock et al., arXiv:2101.08692, or BiT's StdConv, written with F.batch_norm on
    the weight), not activations, so no normalisation rule applies to it."""
    data: set[str] = set()
    for layer in order:
        if layer.op == "input" or any(p in data for p in g.predecessors(layer.name)):
            data.add(layer.name)
        elif layer.op == "function" and layer.is_("@norm"):
            layer.kind = "WeightStandardization"


def _covered(name: str, used_modules: set[str]) -> bool:
    """Whether parameter ``name`` belongs to a used module or one inside it."""
    owner = name.rsplit(".", 1)[0] if "." in name else ""
    while owner:
        if owner in used_modules:
            return True
        owner = owner.rsplit(".", 1)[0] if "." in owner else ""
    return "" in used_modules


def coverage(model: nn.Module, used_modules: set[str], used_params: set[str]) -> float:
    total = covered = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if name in used_params or _covered(name, used_modules):
            covered += p.numel()
    return covered / total if total else 1.0


