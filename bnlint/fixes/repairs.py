"""Repairs of a model's structure and initialisation, on its torch.fx graph.

Each repair takes a :class:`~bnlint.graph.ModelGraph` and the module to change (the model
itself, or a traced copy of it) and returns a :class:`Rewrite` saying what it changed and
whether the model still computes the same function. They back both ``bnlint.fix(model,
inputs)`` (on a copy) and the in-place public wrappers of :mod:`bnlint.repair`. What each
changes is chosen by a function of its own (``he_init_targets``...), which
:mod:`.written` shares to write the same repair as plain PyTorch into the user's file.

A module layer is replaced under its qualified name; a functional op (``F.relu(x)``) can only
be replaced in a traced copy (an ``fx.GraphModule``), and is skipped on a plain module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.fx as fx
from torch import nn

from ..model.graph import Layer, ModelGraph
from ..nn import DepthLeakyReLU, ShapedActivation
from ..predict import flow
from ..predict.theory import MODELLED_ACTIVATIONS, SHAPING_ALPHA, activation_gain

_SHAPED = {"ReLU": "relu", "DepthLeakyReLU": "relu", "Tanh": "tanh", "Sin": "sin",
           "ShapedActivation": "shaped"}


@dataclass
class Rewrite:
    repair: str  # its name in fix.repair of the rule YAMLs (bnlint.catalog.REPAIRS)
    modules: list[str]
    preserves_function: bool
    description: str
    skipped: list[str] = field(default_factory=list)  # layers it could not change, and why

    def to_dict(self) -> dict:
        return asdict(self)


def _set_submodule(root: nn.Module, qualname: str, new: nn.Module) -> None:
    parent, _, name = qualname.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)


def _replace(graph: ModelGraph, target: nn.Module, layer: Layer, new: nn.Module,
             skipped: list[str]) -> str | None:
    """Put ``new`` where ``layer`` is: by qualified name for a module, by rewriting the fx node
    for a functional op (only when ``target`` is a GraphModule)."""
    if layer.module:
        _set_submodule(target, layer.module, new)
        return layer.module
    if not isinstance(target, fx.GraphModule):
        skipped.append(f"{layer.label}: a functional op; only bnlint.fix() can replace it")
        return None
    node = next(n for n in target.graph.nodes if n.name == layer.name)
    name = f"bnlint_{layer.key.replace(':', '_').replace('.', '_')}"
    target.add_submodule(name, new)
    node.op, node.target, node.args, node.kwargs = "call_module", name, (node.args[0],), {}
    target.recompile()
    return name


def _activation_after(graph: ModelGraph, affine: Layer) -> Layer | None:
    for layer in graph.downstream(affine):
        if layer.is_("@activation"):
            return layer
        if layer.is_("@affine"):
            return None
    return None


def shaped_activations(graph: ModelGraph) -> tuple[list[tuple[Layer, int, str]], list[str]]:
    """What :func:`_shape_activations` changes: (activation, its 1-based depth in its plain
    BatchNorm chain, its family: relu, tanh or sin) for each activation it shapes, and the
    layers it cannot shape, and why."""
    found, skipped = [], []
    for kind, _, _, members in flow.find_chains(graph):
        if kind != "batchnorm":
            continue
        for index, affine in enumerate(members, start=1):
            act = _activation_after(graph, affine)
            family = _SHAPED.get(act.kind) if act else None
            if family is None:
                if act is not None:
                    skipped.append(f"{act.label}: no shaped form of {act.kind}")
                continue
            if family != "shaped":  # else already shaped
                found.append((act, index, family))
    return found, skipped


def _shape_activations(graph: ModelGraph, target: nn.Module,
                       alpha: float = SHAPING_ALPHA) -> Rewrite:
    """Depth-shape the activations of every plain BatchNorm chain: layer l's ReLU becomes a
    leaky ReLU of slope 1 - l^-alpha, its tanh/sin gets the input gain l^-alpha."""
    changed = []
    found, skipped = shaped_activations(graph)
    for act, index, family in found:
        new = (DepthLeakyReLU(index, alpha) if family == "relu"
               else ShapedActivation(family, index, alpha))
        done = _replace(graph, target, act, new, skipped)
        if done:
            changed.append(done)
    return Rewrite("shape_activations", changed, False,
                   f"activations of plain BatchNorm chains shaped by depth (alpha={alpha}): "
                   "ReLU -> leaky slope 1 - l^-alpha; tanh/sin -> input gain l^-alpha "
                   "(arXiv:2310.02012)", skipped)


def residual_branch_ends(graph: ModelGraph) -> list[Layer]:
    """The BatchNorms whose gamma :func:`_zero_init_residual` zeroes: the last of each residual
    branch (:func:`bnlint.predict.flow.residual_branches`: the one every path of the branch
    passes through, nearest the add, as BNL202 finds it), when it has a gamma."""
    return [b.end for b in flow.residual_branches(graph) if b.end is not None and b.end.module
            and getattr(b.end.obj, "weight", None) is not None]


def _zero_init_residual(graph: ModelGraph, target: nn.Module) -> Rewrite:
    """Set gamma of each residual branch's last BatchNorm to 0, so every block starts as the
    identity (Goyal et al., arXiv:1706.02677)."""
    names = []
    for bn in residual_branch_ends(graph):
        with torch.no_grad():
            target.get_submodule(bn.module).weight.zero_()
        names.append(bn.module)
    return Rewrite("zero_init_residual", names, False,
                   "last BatchNorm gamma of each residual branch set to 0 (arXiv:1706.02677)")


def chain_members(graph: ModelGraph, kind: str) -> list[Layer]:
    """The affine layers of the plain chains of ``kind`` (:func:`.flow.find_chains`)."""
    return [m for k, _, _, members in flow.find_chains(graph) if k == kind for m in members]


@dataclass(frozen=True)
class InitTarget:
    """A layer :func:`_he_init` initialises: the activation it feeds, the constant its output
    is multiplied by on the way (``scale``), and ``gain``: its weights get std
    gain / sqrt(fan_in)."""
    layer: Layer
    activation: Layer
    scale: float
    gain: float


def he_init_targets(graph: ModelGraph) -> list[InitTarget]:
    """The layers of unnormalised chains that :func:`_he_init` initialises: those feeding a
    modelled activation through a nonzero constant, with gain = activation_gain / |constant|
    (:func:`bnlint.predict.theory.activation_gain`)."""
    found = []
    for layer in chain_members(graph, "unnormalised"):
        act, scale = flow.activation_after(graph, layer)
        if act is None or act.kind not in MODELLED_ACTIVATIONS or not scale:
            continue
        gain = activation_gain(act.kind, flow.activation_options(act)) / abs(scale)
        found.append(InitTarget(layer, act, scale, gain))
    return found


def _he_init(graph: ModelGraph, target: nn.Module) -> Rewrite:
    """The variance-preserving init and zero biases for the layers of unnormalised chains: std
    gain / sqrt(fan_in), gain = 1 / sqrt(E[phi(z)^2]) for the activation phi the layer feeds
    (divided by any constant on the way), which keeps the forward second moment constant; He
    init (He et al., arXiv:1502.01852) for the ReLU family, where PyTorch's default shrinks it."""
    names = []
    for init in he_init_targets(graph):
        module = target.get_submodule(init.layer.module)
        nn.init.normal_(module.weight, std=init.gain / flow.fans(module.weight)[0] ** 0.5)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
        names.append(init.layer.module)
    return Rewrite("he_init", names, False,
                   "variance-preserving init (std gain/sqrt(fan_in); He init for ReLU) for "
                   "unnormalised layers (arXiv:1502.01852)")


def _orthogonal_init(graph: ModelGraph, target: nn.Module) -> Rewrite:
    """Orthogonal weights for BatchNorm-linear chains, whose gradients then stay bounded at
    any depth (Meterez et al., arXiv:2310.02012)."""
    names = []
    for layer in chain_members(graph, "batchnorm-linear"):
        nn.init.orthogonal_(target.get_submodule(layer.module).weight)
        names.append(layer.module)
    return Rewrite("orthogonal_init", names, False,
                   "orthogonal init for BatchNorm-linear chains (arXiv:2310.02012)")


def drop_bias(graph: ModelGraph, target: nn.Module, modules: list[str]) -> Rewrite:
    """Remove the bias of layers that feed only BatchNorm. BatchNorm cancels it in training;
    the running mean is shifted by it, so it is moved there to keep eval outputs too."""
    names = []
    for name in modules:
        module = target.get_submodule(name)
        bias = getattr(module, "bias", None)
        if bias is None:
            continue
        layer = graph.find(name)
        for bn in graph.next(layer):
            stats = getattr(target.get_submodule(bn.module), "running_mean", None) \
                if bn.module else None
            if stats is not None and stats.shape == bias.shape:
                with torch.no_grad():
                    stats.sub_(bias)
        module.register_parameter("bias", None)
        names.append(name)
    return Rewrite("drop_bias", names, True,
                   "bias removed where only BatchNorm reads the output (it cancels it; "
                   "arXiv:1502.03167)")


def _drop_output_relu(graph: ModelGraph, target: nn.Module) -> Rewrite:
    """Replace a ReLU that ends the model right after its last layer with the identity."""
    names, skipped = [], []
    for head in graph.heads():
        if head.is_("@relu") and any(p.is_("@affine") for p in graph.prev(head)):
            done = _replace(graph, target, head, nn.Identity(), skipped)
            if done:
                names.append(done)
    return Rewrite("drop_output_relu", names, False,
                   "final ReLU of the regression head removed (arXiv:2005.06195)", skipped)


# The graph-level repairs by name: what rule YAMLs name in ``fix.repair``.
REPAIRS: dict[str, Callable[[ModelGraph, nn.Module], Rewrite]] = {
    "shape_activations": _shape_activations,
    "zero_init_residual": _zero_init_residual,
    "he_init": _he_init,
    "orthogonal_init": _orthogonal_init,
    "drop_output_relu": _drop_output_relu,
}
