"""The ModelGraph of a model torch.fx can trace: a tracer that records each node's source line
and keeps torch.nn layers as leaves, and one shape-propagating run with the example inputs."""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import InputError
from . import ops, sites
from .graph import DiGraph, Layer, ModelGraph, coverage
from .sandbox import run_forward
from .stats import dead_or_none


class SiteTracer(fx.Tracer):
    """fx tracer that records the user's source line of every node and keeps torch.nn layers
    (and user subclasses that keep their forward) as leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return ops.is_leaf_class(m) or super().is_leaf_module(m, qualname)

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        node.meta["bnlint_site"] = sites.caller_site()
        return node


def _data_inputs(node: fx.Node) -> list[fx.Node]:
    """The nodes whose values flow into ``node``: all its inputs, except the second argument
    of ``x.reshape_as(y)`` and the like, which lends only its shape or dtype."""
    if node.op == "call_method" and node.target in ops.SHAPE_ONLY \
            and isinstance(node.args[0], fx.Node):
        return [node.args[0]]
    return list(node.all_input_nodes)


def _param_args(node: fx.Node) -> dict[str, str]:
    """Arguments of a functional op that are parameters or buffers read as they are
    (``F.batch_norm(x, ..., self.weight, self.bias)``), by name: their qualified names."""
    try:
        bound = ops.signature(node.target).bind(*node.args, **node.kwargs)
    except (TypeError, ValueError):
        return {}
    return {k: str(v.target) for k, v in bound.arguments.items()
            if isinstance(v, fx.Node) and v.op == "get_attr"}


def _fx_layers(model: nn.Module, traced: fx.Graph) -> DiGraph:
    g = DiGraph()
    keys = ops.OpKeys()
    for node in traced.nodes:
        call_site = node.meta.get("bnlint_site")
        shape = node.meta.get("bnlint_shape")
        # Tensor inputs count data flowing in, not parameters read with get_attr.
        tensor_inputs = sum(1 for a in _data_inputs(node) if a.op != "get_attr")
        if node.op == "placeholder":
            layer = Layer(node.name, "input", "Input", shape=shape)
        elif node.op == "output":
            layer = Layer(node.name, "output", "Output", call_site=call_site)
        elif node.op == "call_module":
            obj = model.get_submodule(node.target)
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
                          options=ops.op_options(node.target, node.args, node.kwargs),
                          params={} if method else _param_args(node),
                          spelling=ops.spelling(node.target, method), key=keys(owner, kind))
        layer.dead = node.meta.get("bnlint_dead")
        g.add_node(node.name, layer=layer)
        for src in _data_inputs(node):
            g.add_edge(src.name, node.name)
    return g


# What fx adds to check a concrete argument's value; the graph bnlint reads leaves them out.
_CHECKS = (torch._assert, fx._symbolic_trace._assert_is_none)


def forward_defaults(model: nn.Module, given: int) -> dict[str, Any]:
    """The forward's arguments after the ``given`` inputs that have defaults, at their
    defaults (``mask=None``): the model runs with them so, and fx traces them as constants, so
    that ``if mask is not None`` takes the branch the call takes."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    rest = positional[given:] + [p for p in params if p.kind == p.KEYWORD_ONLY]
    return {p.name: p.default for p in rest if p.default is not p.empty}


def _without_checks(graph: fx.Graph, given: int) -> fx.Graph:
    """The traced graph without fx's checks of the concrete arguments and their placeholders:
    the model's own computation, with the inputs it was given."""
    for node in [n for n in graph.nodes if n.op == "call_function" and n.target in _CHECKS]:
        inputs = node.all_input_nodes
        graph.erase_node(node)
        for arg in inputs:  # the comparison a check reads
            if arg.op != "placeholder" and not arg.users:
                graph.erase_node(arg)
    for node in [n for n in graph.nodes if n.op == "placeholder"][given:]:
        if not node.users:
            graph.erase_node(node)
    return graph


def fx_trace(model: nn.Module, given: int = 1) -> fx.Graph:
    """fx's graph of the forward called with ``given`` inputs, its other arguments at their
    defaults (traced as constants when fx can, else as inputs); its targets are attributes of
    ``model`` (no GraphModule is made: see :attr:`ModelGraph.gm`)."""
    defaults = forward_defaults(model, given)
    if defaults:
        try:
            return _without_checks(SiteTracer().trace(model, concrete_args=defaults), given)
        except Exception:  # noqa: BLE001 - a default fx cannot specialise on: an input
            pass
    return SiteTracer().trace(model)


class _Propagate(fx.Interpreter):
    """Runs the traced graph (on the model it was traced from) once, noting each node's output
    shape and, for ReLUs, the fraction of dead units."""

    def run_node(self, node: fx.Node) -> Any:
        out = super().run_node(node)
        if isinstance(out, torch.Tensor):
            node.meta["bnlint_shape"] = tuple(out.shape)
            kind = _node_kind(self.module, node)
            node.meta["bnlint_dead"] = dead_or_none(kind, out)
        return out


def _node_kind(model: nn.Module, node: fx.Node) -> str:
    if node.op == "call_module":
        return ops.kind_of_module(model.get_submodule(node.target))
    if node.op == "call_method":
        return ops.kind_of_name(str(node.target))
    if node.op == "call_function":
        return ops.kind_of_name(getattr(node.target, "__name__", ""))
    return ""


def from_fx(model: nn.Module, traced: fx.Graph, inputs: tuple) -> ModelGraph:
    """Propagate shapes through the graph traced from ``model`` with the example inputs, then
    build the ModelGraph."""
    try:
        run_forward(lambda: _Propagate(model, graph=traced).run(*inputs), model, inputs,
                    train=True)
    except InputError:
        # The graph ran, not the user's code: run the real forward so the error names its line.
        run_forward(lambda: model(*inputs), model, inputs)
        raise
    return graph_of(model, traced)


def graph_of(model: nn.Module, traced: fx.Graph) -> ModelGraph:
    used_modules = {str(n.target) for n in traced.nodes if n.op == "call_module"}
    used_params = {str(n.target) for n in traced.nodes if n.op == "get_attr"}
    return ModelGraph(model, _fx_layers(model, traced), "fx",
                      coverage(model, used_modules, used_params), traced=traced)


def trace(model: nn.Module) -> ModelGraph:
    """The fx graph without shapes (no example inputs needed); raises if fx cannot trace."""
    return graph_of(model, fx_trace(model))
