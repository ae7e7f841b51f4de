"""ModelGraph: the model as a directed graph of layers, from torch.fx or, failing that, hooks.

Every node holds a :class:`Layer`: its op, kind (see :mod:`bnlint.ops`), qualified module name,
output shape and source sites. Edges follow the data. Rules walk it with :meth:`ModelGraph.next`
and :meth:`ModelGraph.prev`, which look through transparent ops (views, flattens, casts).
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.fx as fx
from torch import nn
from torch.overrides import TorchFunctionMode

from . import ops, sites
from .errors import InputError
from .sites import Site
from .stats import dead_fraction


class DiGraph:
    """A directed graph with ordered nodes and attributes: the part of networkx's DiGraph API
    bnlint uses (``add_node``, ``add_edge``, ``remove_node``, ``nodes[n]``, ``successors``,
    ``predecessors``).
    Written out because importing networkx took 0.18 s here (it loads XML readers: python
    -X importtime), about half of the 0.4 s that linting a ResNet-50 may add to importing
    torch, building and tracing it (the 1.25x target of bench/speed.py)."""

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
        (see :func:`_options`; None when the function has no such option)."""
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
                 gm: fx.GraphModule | None = None):
        self.model = model
        self.g = g
        self.method = method
        self.coverage = coverage
        self.reason = reason
        self.reason_site = reason_site
        self.gm = gm  # the traced module (fx only), for running the graph instrumented
        # Nodes were added in execution order, which is topological.
        self.order: list[Layer] = [g.nodes[n]["layer"] for n in g.nodes]
        self._by_key: dict[str, Layer] = {}
        self._calls: dict[int, list[Layer]] = {}
        for layer in self.order:
            self._by_key.setdefault(layer.key, layer)
            if layer.module:
                self._by_key.setdefault(layer.module, layer)
            if layer.obj is not None:
                self._calls.setdefault(id(layer.obj), []).append(layer)
        self._upstream: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self.order)

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
        return self._walk(layer.name, self.g.successors)

    def prev(self, layer: Layer) -> list[Layer]:
        """Layers feeding this one, looking through transparent ops."""
        return self._walk(layer.name, self.g.predecessors)

    def find(self, name: str | None) -> Layer | None:
        """The (first) layer with this module name or key."""
        return self._by_key.get(name) if name else None

    def calls(self, layer: Layer) -> list[Layer]:
        """Every call of the module ``layer`` calls (a shared module has several)."""
        return self._calls.get(id(layer.obj), [layer]) if layer.obj is not None else [layer]

    def upstream_of(self, spec: str) -> set[str]:
        """Names of the layers from which some layer matching ``spec`` can be reached (one
        pass in reverse order, cached per spec)."""
        if spec not in self._upstream:
            found: set[str] = set()
            for layer in reversed(self.order):
                successors = self.g.successors(layer.name)
                if any(self.layer(n).is_(spec) or n in found for n in successors):
                    found.add(layer.name)
            self._upstream[spec] = found
        return self._upstream[spec]

    def heads(self) -> list[Layer]:
        """The layers whose values the model returns (one per output tensor)."""
        return [p for o in self.order if o.op == "output" for p in self.prev(o)]

    def layers(self, spec: str | None = None) -> list[Layer]:
        """Layers in topological order, optionally only those matching a kind spec."""
        return [x for x in self.order if spec is None or x.is_(spec)]

    def summary(self) -> dict[str, Any]:
        data = {"ok": self.method == "fx", "method": self.method,
                "coverage": round(self.coverage, 4), "nodes": len(self.order)}
        if self.reason:
            data["reason"] = self.reason
        return data


# ---------------------------------------------------------------- torch.fx


class _SiteTracer(fx.Tracer):
    """fx tracer that records the user's source line of every node and keeps torch.nn layers
    (and user subclasses that keep their forward) as leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return ops.is_leaf_class(m) or super().is_leaf_module(m, qualname)

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        node.meta["bnlint_site"] = sites.caller_site()
        return node


_OPERATORS = {"add": "+", "iadd": "+=", "mul": "*", "imul": "*=", "sub": "-", "isub": "-=",
              "truediv": "/", "matmul": "@", "getitem": "[]"}


def spelling(fn: Any, method: bool = False) -> str:
    """How user code spells a function: ``F.relu``, ``torch.cat``, ``+``, ``.relu()``."""
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", str(fn))
    if method or isinstance(fn, str):
        return _OPERATORS.get(name.strip("_"), f".{name}()")
    where = getattr(fn, "__module__", None) or ""
    if where in ("_operator", "operator"):
        return _OPERATORS.get(name, name)
    if where == "torch.nn.functional":
        return f"F.{name}"
    if where.startswith("torch"):
        return f"torch.{name}"
    return name


class _Keys:
    """Stable keys for functional ops: ``owner:relu``, ``owner:relu_1`` in order of use."""

    def __init__(self):
        self.counts: dict[tuple[str, str], int] = {}

    def __call__(self, owner: str, kind: str) -> str:
        local = kind.lower()
        n = self.counts.get((owner, local), 0)
        self.counts[(owner, local)] = n + 1
        local = local if n == 0 else f"{local}_{n}"
        return f"{owner}:{local}" if owner else local


def _options(fn: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Arguments of a functional op by parameter name, defaults included: scalars as given,
    tensor arguments as True (given) or False (None). F.batch_norm and F.instance_norm also
    get the module flags their tensors stand for: ``track_running_stats`` (running_mean
    given) and ``affine`` (weight given)."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
        bound.apply_defaults()
        named = bound.arguments
    except (TypeError, ValueError):  # builtins without a signature, or unusual calls
        named = kwargs
    options = {k: v if isinstance(v, (bool, int, float, str)) else v is not None
               for k, v in named.items()
               if v is None or isinstance(v, (bool, int, float, str, fx.Node))}
    if "running_mean" in options and "weight" in options:
        options.update(track_running_stats=options["running_mean"], affine=options["weight"])
    return options


def _fx_layers(gm: fx.GraphModule) -> DiGraph:
    g = DiGraph()
    keys = _Keys()
    for node in gm.graph.nodes:
        call_site = node.meta.get("bnlint_site")
        shape = node.meta.get("bnlint_shape")
        # Tensor inputs count data flowing in, not parameters read with get_attr.
        tensor_inputs = sum(1 for a in node.all_input_nodes if a.op != "get_attr")
        if node.op == "placeholder":
            layer = Layer(node.name, "input", "Input", shape=shape)
        elif node.op == "output":
            layer = Layer(node.name, "output", "Output", call_site=call_site)
        elif node.op == "call_module":
            obj = gm.get_submodule(node.target)
            layer = Layer(node.name, "module", ops.kind_of_module(obj), module=str(node.target),
                          obj=obj, shape=shape, site=sites.site_of(obj),
                          call_site=call_site, tensor_inputs=tensor_inputs,
                          key=str(node.target))
        elif node.op == "get_attr":
            layer = Layer(node.name, "attr", "Attr", module=str(node.target), shape=shape,
                          site=call_site, call_site=call_site)
        else:
            method = node.op == "call_method"
            name = str(node.target) if method else getattr(node.target, "__name__", "")
            kind = ops.kind_of_name(name)
            owner = next(reversed(node.meta.get("nn_module_stack") or {"": None}))
            layer = Layer(node.name, "function", kind, shape=shape,
                          site=call_site, call_site=call_site, tensor_inputs=tensor_inputs,
                          options={} if method else _options(node.target, node.args, node.kwargs),
                          spelling=spelling(node.target, method), key=keys(owner, kind))
        layer.dead = node.meta.get("bnlint_dead")
        g.add_node(node.name, layer=layer)
        for src in node.all_input_nodes:
            g.add_edge(src.name, node.name)
    return g


def _covered(name: str, used_modules: set[str]) -> bool:
    """Whether parameter ``name`` belongs to a used module or one inside it."""
    owner = name.rsplit(".", 1)[0] if "." in name else ""
    while owner:
        if owner in used_modules:
            return True
        owner = owner.rsplit(".", 1)[0] if "." in owner else ""
    return "" in used_modules


def _coverage(model: nn.Module, used_modules: set[str], used_params: set[str]) -> float:
    total = covered = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if name in used_params or _covered(name, used_modules):
            covered += p.numel()
    return covered / total if total else 1.0


def _dead(kind: str, out: Any) -> float | None:
    if ops.in_group(kind, "relu") and isinstance(out, torch.Tensor) and out.is_floating_point() \
            and not out.is_meta and bool(torch.isfinite(out).all()):
        return float(dead_fraction(out))
    return None


class _Propagate(fx.Interpreter):
    """Runs the traced graph once, noting each node's output shape and, for ReLUs, the
    fraction of dead units."""

    def run_node(self, node: fx.Node) -> Any:
        out = super().run_node(node)
        if isinstance(out, torch.Tensor):
            node.meta["bnlint_shape"] = tuple(out.shape)
            kind = _node_kind(self.module, node)
            node.meta["bnlint_dead"] = _dead(kind, out)
        return out


def _node_kind(gm: fx.GraphModule, node: fx.Node) -> str:
    if node.op == "call_module":
        return ops.kind_of_module(gm.get_submodule(node.target))
    if node.op == "call_method":
        return ops.kind_of_name(str(node.target))
    if node.op == "call_function":
        return ops.kind_of_name(getattr(node.target, "__name__", ""))
    return ""


def _from_fx(model: nn.Module, gm: fx.GraphModule, inputs: tuple) -> ModelGraph:
    """Propagate shapes through a traced module with the example inputs, then build the graph."""
    try:
        run_forward(lambda: _Propagate(gm).run(*inputs), model, inputs, train=True)
    except InputError:
        # The graph ran, not the user's code: run the real forward so the error names its line.
        run_forward(lambda: model(*inputs), model, inputs)
        raise
    return _graph_of(model, gm)


def _graph_of(model: nn.Module, gm: fx.GraphModule) -> ModelGraph:
    used_modules = {str(n.target) for n in gm.graph.nodes if n.op == "call_module"}
    used_params = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    return ModelGraph(model, _fx_layers(gm), "fx", _coverage(model, used_modules, used_params),
                      gm=gm)


# ---------------------------------------------------------------- hooks fallback


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
        self.keys = _Keys()

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
        layer.dead = _dead(layer.kind, produced[0]) if produced else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        kind = ops.kind_of_name(getattr(func, "__name__", ""))
        if not self.in_leaf and kind != "Size" and self.tensors(out):
            site = sites.caller_site()
            owner = self.stack[-1] if self.stack else ""
            key = self.keys(owner, kind)
            method = getattr(func, "__qualname__", "").startswith(("Tensor.", "TensorBase."))
            self.add(Layer(key.replace(":", "_").replace(".", "_"), "function", kind, site=site,
                           call_site=site, options=_options(func, args, kwargs),
                           spelling=spelling(func, method), key=key), (args, kwargs), out)
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
    coverage = _coverage(model, rec.used, set())
    return ModelGraph(model, rec.g, "hooks", coverage, reason, reason_site)


# ---------------------------------------------------------------- entry point


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
    becomes an InputError naming the line."""
    batch = inputs[0].shape[0] if inputs and isinstance(inputs[0], torch.Tensor) \
        and inputs[0].dim() else 0
    try:
        with _static_pass(model, train and batch >= 2):
            return call()
    except Exception as exc:  # the user's forward raised: report where and what
        site = sites.traceback_site(exc.__traceback__)
        shapes = ", ".join(str(tuple(t.shape)) for t in inputs if isinstance(t, torch.Tensor))
        raise InputError(
            f"the forward pass raised {type(exc).__name__}: {first_line(exc)}".rstrip(": ") + ".",
            path=site.path if site else None, line=site.line if site else None,
            hint=f"bnlint ran it with example inputs of shape {shapes}; if those are wrong, give "
                 "the right ones with --input-shape or an example_inputs() function.") from None


def trace(model: nn.Module) -> ModelGraph:
    """The fx graph without shapes (no example inputs needed); raises if fx cannot trace."""
    tracer = _SiteTracer()
    graph = tracer.trace(model)
    return _graph_of(model, fx.GraphModule(tracer.root, graph))


def build(model: nn.Module, inputs: tuple) -> ModelGraph:
    """The ModelGraph of ``model``: fx when it traces, else the hooked forward pass. Lazy
    modules (nn.LazyLinear...) are first initialised by one forward pass with ``inputs``."""
    if any(isinstance(p, nn.parameter.UninitializedTensorMixin)
           for p in (*model.parameters(), *model.buffers())):
        run_forward(lambda: model(*inputs), model, inputs)
    tracer = _SiteTracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx cannot trace data-dependent control flow and more
        reason = f"{type(exc).__name__}: {first_line(exc)}".rstrip(": ")
        return trace_hooks(model, inputs, reason, sites.traceback_site(exc.__traceback__))
    return _from_fx(model, fx.GraphModule(tracer.root, graph), inputs)
