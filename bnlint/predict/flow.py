"""Predicted gradient flow at initialisation: :mod:`bnlint.theory`'s moment rules chained over a
ModelGraph, without running a backward pass.

Forward, in execution order, each layer's output gets its :class:`~bnlint.theory.Moments` from
its inputs' (the example inputs' own at the start) and from its weights as they are (their
default init on the meta device). Backward, in reverse order, the loss gradient enters at the
first returned tensor (the probe's loss: cross-entropy on random labels, or MSE for one output)
and each layer maps it back to its inputs; a tensor read by several layers (a fork, the input
of a residual block) gets the sum. The mean squared gradient is kept in three parts (see
:class:`_Flow`), because a part common to all samples or to all positions of a sample adds up
coherently in a weight gradient. An affine layer's predicted ||grad W||^2 is numel(out) fan_in
g2(out) m2(in), with the coherent parts weighted up (:meth:`_Flow.weight_grads`).

Some constants are measured rather than derived (bench/calibration/gradient_flow.py --calibrate):
the BN -> ReLU gain by batch size and for convolutions (:func:`bnlint.theory.bn_relu_gain`, which
replaces the mean-field sqrt(pi/(pi-1)) at every BN feeding a ReLU), and the decay and weight
of the per-sample part that global average pooling creates. Known miss: post-activation
residual stacks (ReLU after the add), where the gradient growth is overestimated (2.6x at
ResNet-56, bench/RESULTS.md). Ops without a rule pass moments
through unchanged and are listed in ``Prediction.unmodelled``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..model.graph import Layer, ModelGraph
from . import theory
from .theory import Moments

_POOLS = ("MaxPool*", "AvgPool*", "AdaptiveAvgPool*", "AdaptiveMaxPool*", "Mean", "Sum")
_PASS = ("@transparent", "@dropout", "Softmax", "LogSoftmax", *_POOLS)


@dataclass
class Chain:
    """A plain (skip-free) run of blocks: affine layers each followed, before the next one, by
    the same kind of normalisation and activation. ``kind``: 'batchnorm' (BN and a nonlinear
    activation), 'batchnorm-linear' (BN, no activation) or 'unnormalised' (activation only).
    ``grad_ratio``: predicted ||grad W_first|| / ||grad W_last||; ``forward_rms_ratio``: RMS of
    the last module's output over the first's; ``gain``: the per-block backward gain the
    prediction used inside the chain (geometric mean over its interior blocks: the first and
    last blocks also carry fan-in and end effects)."""
    kind: str
    modules: list[str]
    activation: str | None
    spatial: bool
    grad_ratio: float
    forward_rms_ratio: float
    gain: float

    @property
    def blocks(self) -> int:
        return len(self.modules)

    @property
    def first_module(self) -> str:
        return self.modules[0]

    @property
    def last_module(self) -> str:
        return self.modules[-1]


@dataclass
class Prediction:
    """What :func:`predict` returns.

    layers: qualified name of each affine module with a weight -> predicted ||grad W|| relative
        to the output layer's (the last affine module in execution order).
    grad_ratio: ||grad W_first|| / ||grad W_last|| between first_module and last_module.
    chain: the longest plain BN + nonlinear activation chain (None if none has 2 blocks).
    chains: every plain chain of 2 or more blocks, of each kind.
    rms, signal: per layer (node name), the predicted RMS of its output and the RMS of its
        variation over the batch (sqrt of m2 and of var).
    dead: per ReLU layer (node name), the predicted fraction of units dead over the batch.
    assumed: modules whose weights could not be read (meta device): default init assumed.
    unmodelled: layers passed through unchanged for want of a rule.
    """
    batch: int
    layers: dict[str, float]
    grad_ratio: float
    first_module: str | None
    last_module: str | None
    chain: Chain | None
    chains: list[Chain]
    rms: dict[str, float]
    signal: dict[str, float]
    dead: dict[str, float]
    assumed: list[str] = field(default_factory=list)
    unmodelled: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- reading the weights


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear/Conv weight, as torch.nn.init counts them; a 1-d weight
    reads as (1, its size)."""
    if weight.dim() < 2:
        return 1, weight.numel()
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _mean_square(t: torch.Tensor | None) -> float | None:
    if t is None:
        return 0.0
    if t.is_meta or isinstance(t, nn.parameter.UninitializedTensorMixin):
        return None
    # a fused norm: no copies of the tensor (float32 accumulation is ample for a moment)
    return float(torch.linalg.vector_norm(t.detach().float())) ** 2 / max(t.numel(), 1)


def _norm_params(weight: torch.Tensor | None, bias: torch.Tensor | None,
                 eps: float) -> dict[str, float]:
    w2, b2 = _mean_square(weight), _mean_square(bias)
    return {"eps": eps, "gamma2": 1.0 if weight is None or w2 is None else w2,
            "beta2": 0.0 if bias is None or b2 is None else b2,
            "beta_mean": 0.0 if bias is None or b2 is None else float(bias.detach().mean())}


def read_params(module: nn.Module) -> tuple[dict[str, float], bool]:
    """The moments flow needs from one module (weight2, bias2, gamma2, beta2, beta_mean, eps,
    slope) and
    whether they were assumed: on the meta device, PyTorch's default init (Var(w) = Var(b) =
    1 / (3 fan_in); gamma 1, beta 0)."""
    weight = getattr(module, "weight", None)
    weight = weight if isinstance(weight, torch.Tensor) else None
    bias = getattr(module, "bias", None)
    bias = bias if isinstance(bias, torch.Tensor) else None
    w2, b2 = _mean_square(weight), _mean_square(bias)
    assumed = w2 is None or b2 is None
    out: dict[str, float] = {"eps": float(getattr(module, "eps", 0.0) or 0.0)}
    if isinstance(module, nn.PReLU):
        out["slope"] = 0.25 if assumed else float(weight.detach().mean())
    elif isinstance(module, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
                             nn.RMSNorm)):
        out.update(_norm_params(weight, bias, out["eps"]))
    elif weight is not None:
        default = theory.DEFAULT_WEIGHT_GAIN2 / max(fans(weight)[0], 1)
        out["weight2"] = default if w2 is None else w2
        out["bias2"] = (default if bias is not None else 0.0) if b2 is None else b2
    return out, assumed


@dataclass
class ModelParams:
    """:func:`read_params` of every module of a model by qualified name, and the modules whose
    moments were assumed (meta device): what :func:`predict` reads of the weights, read once
    for several predictions of one model."""
    params: dict[str, dict[str, float]]
    assumed: list[str]

    @classmethod
    def of(cls, model: nn.Module) -> ModelParams:
        params, assumed = {}, []
        for name, module in model.named_modules():
            params[name], unread = read_params(module)
            if unread:
                assumed.append(name)
        return cls(params, assumed)


def functional_norm_params(graph: ModelGraph, layer: Layer) -> dict[str, float]:
    """The moments of a functional norm's parameters (``F.batch_norm(x, ..., self.weight,
    self.bias)``, as timm's BatchNormAct2d calls it), read from the model: gamma 1 and beta 0
    where there are none (or they are computed, not read)."""
    tensors = {}
    for arg in ("weight", "bias"):
        name = layer.params.get(arg)
        value = operator.attrgetter(name)(graph.model) if name else None
        tensors[arg] = value if isinstance(value, torch.Tensor) else None
    eps = layer.options.get("eps")
    return _norm_params(tensors["weight"], tensors["bias"],
                        float(eps) if isinstance(eps, (int, float)) else 1e-5)


def _input_moments(x: Any) -> Moments:
    """The example input's moments; unit variance when there is none to read."""
    if not isinstance(x, torch.Tensor) or x.is_meta or not x.is_floating_point() or x.numel() < 2:
        return Moments(1.0, 1.0)
    x = x.detach().double()
    units = x.transpose(0, 1).reshape(x.shape[1], -1) if x.dim() > 1 else x.reshape(1, -1)
    return Moments(float(x.pow(2).mean()), float(units.var(dim=1, unbiased=False).mean()),
                   float(x.mean()))


# ---------------------------------------------------------------- the walk


def _numel(layer: Layer) -> float:
    return float(math.prod(layer.shape[1:])) if layer.shape and len(layer.shape) > 1 else 1.0


def scalar_factor(layer: Layer) -> float | None:
    """The constant a Mul or Div layer multiplies its one tensor input by (1/c for a division
    by c), or None when it is not a multiplication by one number."""
    values = [v for v in layer.options.values()
              if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(values) != 1:
        return None
    return 1.0 / values[0] if layer.kind == "Div" and values[0] else float(values[0])


def activation_options(layer: Layer, params: dict[str, float] | None = None
                       ) -> dict[str, float]:
    """The options :func:`bnlint.theory.activation_moments` takes, from an activation layer:
    negative_slope, alpha, lower, upper, and a PReLU's slope (from ``params`` as
    :func:`read_params` gives them, read from the module when not given)."""
    if params is None:
        params = read_params(layer.obj)[0] if layer.obj is not None else {}
    opts = {k: v for k in ("negative_slope", "alpha", "lower", "upper")
            if isinstance(v := layer.attr(k), (int, float)) and not isinstance(v, bool)}
    if "slope" in params:
        opts["slope"] = params["slope"]
    return opts


def _scale(f: float) -> np.ndarray:
    return f * np.eye(3)


class _Flow:
    """One forward (moments) and one backward (gradient parts) walk over the graph.

    The mean squared gradient of a tensor has three parts: uncorrelated between samples and
    positions; common to all samples (the batch mean, which BatchNorm removes); and common to
    the positions of one sample (made by global average pooling). Each layer's backward rule is
    a 3x3 matrix on them."""

    def __init__(self, graph: ModelGraph, batch: int, inputs: tuple,
                 overrides: dict[str, dict[str, float]] | None, weights: ModelParams):
        self.graph, self.batch = graph, batch
        self.m: dict[str, Moments] = {}
        self.back: dict[str, list[tuple[str, np.ndarray]]] = {}  # node -> [(input, matrix)]
        self.g: dict[str, np.ndarray] = {}
        self.params = {**weights.params, **{name: {**weights.params[name], **changed}
                                            for name, changed in (overrides or {}).items()
                                            if name in weights.params}}
        self.assumed = list(weights.assumed)
        self.unmodelled: list[str] = []
        self.affine: list[tuple[Layer, str, float, bool]] = []  # layer, input, fan_in, bn_after
        self.inputs = list(inputs)

    def sources(self, layer: Layer) -> list[str]:
        return [p for p in self.graph.g.predecessors(layer.name) if p in self.m]

    def run(self) -> None:
        for layer in self.graph.order:
            if not layer.is_("@meta"):
                self.forward(layer)
        for layer in reversed(self.graph.order):
            g = self.g.get(layer.name)
            if g is None:
                continue
            for src, matrix in self.back.get(layer.name, []):
                self.g[src] = self.g.get(src, np.zeros(3)) + matrix @ g

    def _set(self, layer: Layer, x: Moments, back: list[tuple[str, Any]]) -> None:
        m2 = max(x.m2, 0.0)
        self.m[layer.name] = Moments(m2, max(min(x.var, m2), 0.0), x.mean)
        self.back[layer.name] = [(s, _scale(f) if np.isscalar(f) else f) for s, f in back]

    def output(self, layer: Layer, srcs: list[str]) -> None:
        """The loss gradient enters at the first returned tensor, as the probe's loss does."""
        if not srcs:
            return
        head = self.graph.layer(srcs[0])
        classes = head.shape[1] if head.shape and len(head.shape) == 2 else 1
        inc, common = theory.loss_gradient(self.m[srcs[0]], classes)
        self.g[layer.name] = np.array([inc, common, 0.0])
        self.back[layer.name] = [(srcs[0], np.eye(3))]

    def forward(self, layer: Layer) -> None:
        srcs = self.sources(layer)
        ins = [self.m[s] for s in srcs]
        x = ins[0] if ins else Moments(1.0, 1.0)
        if layer.op == "module":
            p = self.params.get(layer.module or "", {})
        elif layer.op == "function" and layer.is_("@norm"):
            p = functional_norm_params(self.graph, layer)
        else:
            p = {}
        if layer.op == "input":
            self._set(layer, _input_moments(self.inputs.pop(0) if self.inputs else None), [])
        elif layer.op == "attr":
            value = operator.attrgetter(layer.module)(self.graph.model) if layer.module else None
            w2 = _mean_square(value) if isinstance(value, torch.Tensor) else None
            self._set(layer, Moments(w2 or 0.0, 0.0), [])
        elif layer.op == "output":
            self.output(layer, srcs)
        elif layer.is_("@affine") and "weight2" in p and srcs:
            self.affine_forward(layer, srcs[0], x, p)
        elif layer.kind == "Embedding" and "weight2" in p:
            self._set(layer, Moments(p["weight2"], p["weight2"]), [])
        elif layer.is_("@batchnorm") and "gamma2" in p:
            out, f = theory.batchnorm_moments(x, p["gamma2"], p["beta2"], p["beta_mean"],
                                              p["eps"])
            f *= self.bn_correction(layer)
            self._set(layer, out, [(srcs[0], np.diag([f, 0.0, f]))])
        elif layer.is_("@norm") and "gamma2" in p:  # per-sample norms: divide by the RMS
            per_sample = x if layer.kind in ("GroupNorm", "InstanceNorm1d", "InstanceNorm2d",
                                             "InstanceNorm3d") else Moments(x.m2, x.m2)
            out, f = theory.batchnorm_moments(per_sample, p["gamma2"], p["beta2"],
                                              p["beta_mean"], p["eps"])
            self._set(layer, out, [(srcs[0], f)])
        elif layer.kind in theory.MODELLED_ACTIVATIONS and srcs:
            out, f, a = theory.activation_moments(layer.kind, x, activation_options(layer, p))
            keep = theory.SPATIAL_KEEP
            matrix = np.array([[f, f - a, f * (1 - keep)], [0.0, a, 0.0], [0.0, 0.0, f * keep]])
            self._set(layer, out, [(srcs[0], matrix)])
        elif layer.is_("@merge") and srcs:
            out = theory.merge_moments(layer.kind, [(m, _numel(self.graph.layer(s)))
                                                    for m, s in zip(ins, srcs)])
            self._set(layer, out, [(s, 1.0) for s in srcs])
        elif layer.kind in ("Mul", "Div") and len(srcs) == 1 and scalar_factor(layer) is not None:
            c = scalar_factor(layer)
            self._set(layer, Moments(x.m2 * c * c, x.var * c * c, x.mean * c), [(srcs[0], c * c)])
        elif layer.kind == "Mul" and len(srcs) == 2:
            a, b = ins
            m2 = a.m2 * b.m2
            self._set(layer, Moments(m2, m2 - (a.m2 - a.var) * (b.m2 - b.var), a.mean * b.mean),
                      [(srcs[0], b.m2), (srcs[1], a.m2)])
        elif any(layer.is_(spec) for spec in _POOLS) and srcs:
            self.pool_forward(layer, srcs[0], x)
        elif layer.is_("@dropout") and srcs:
            keep = 1.0 - (layer.attr("p") or 0.0) if layer.attr("training") is not False else 1.0
            self._set(layer, Moments(x.m2 / keep, x.var + x.m2 * (1 / keep - 1), x.mean),
                      [(srcs[0], 1 / keep)])
        elif layer.is_("@transparent") or layer.kind in ("Softmax", "LogSoftmax", "Identity"):
            shrink = _numel(layer) / _numel(self.graph.layer(srcs[0])) if srcs else 1.0
            self._set(layer, x, [(s, min(shrink, 1.0)) for s in srcs])
        else:
            if srcs or layer.op == "module":
                self.unmodelled.append(layer.label)
            self._set(layer, x, [(s, 1.0) for s in srcs])

    def pool_forward(self, layer: Layer, src: str, x: Moments) -> None:
        source = self.graph.layer(src)
        k = max(_numel(source) / _numel(layer), 1.0)
        out, f = theory.pool_moments(layer.kind, x, k)
        channels = layer.shape[1] if layer.shape and len(layer.shape) > 1 else 0
        averages = not any(layer.is_(spec) for spec in ("Max*", "AdaptiveMax*", "Sum"))
        spatial_in = bool(source.shape) and len(source.shape) > 2
        if averages and spatial_in and channels and _numel(layer) == channels:
            # global average: the gradient becomes the same at every position of a sample
            matrix = np.array([[0.0, 0.0, 0.0], [0.0, f, 0.0], [f, 0.0, f]])
        else:
            matrix = _scale(f)
        self._set(layer, out, [(src, matrix)])

    def affine_forward(self, layer: Layer, src: str, x: Moments, p: dict[str, float]) -> None:
        weight = layer.obj.weight
        n_in, n_out = max(_numel(self.graph.layer(src)), 1), max(_numel(layer), 1)
        per_row = float(fans(weight)[0])  # a ConvTranspose weight's rows are its outputs
        if layer.kind.startswith(("ConvTranspose", "LazyConvTranspose")):
            fan_out = per_row
            fan_in = fan_out * n_in / n_out
        else:
            fan_in = per_row
            fan_out = fan_in * n_out / n_in
        out, factor = theory.affine_moments(x, p["weight2"], p["bias2"], fan_in, fan_out)
        self._set(layer, out, [(src, factor)])
        readers = self.graph.next(layer)
        bn_after = bool(readers) and all(r.is_("@batchnorm") for r in readers)
        self.affine.append((layer, src, fan_in, bn_after))

    def bn_correction(self, layer: Layer) -> float:
        """The measured BN -> ReLU gain over the mean-field one, squared (see module doc)."""
        readers = self.graph.next(layer)
        if not readers or not all(r.kind in ("ReLU", "ReLU6") for r in readers):
            return 1.0
        spatial = bool(layer.shape) and len(layer.shape) > 2
        return (theory.bn_relu_gain(self.batch, spatial) / theory.leaky_relu_gain(0.0)) ** 2

    def weight_grads(self) -> dict[str, float]:
        """Predicted ||grad W||^2 per affine module, summed over calls, up to a common factor:
        numel(out) fan_in [(uncorrelated + per-sample part) m2(in) + batch-mean part
        (S mean^2(in) + var(in))], S the (sample, position) pairs summed over; var(in) for
        m2(in) and no mean^2 term from the per-sample part when BatchNorm reads the output."""
        out: dict[str, float] = {}
        for layer, src, fan_in, bn_after in self.affine:
            m2, var, _ = self.m[src]
            inc, common, sample = self.g.get(layer.name, np.zeros(3))
            source = self.graph.layer(src)
            spatial = bool(source.shape) and len(source.shape) > 2
            channels = layer.shape[1] if layer.shape and len(layer.shape) > 1 else 1
            positions = _numel(layer) / channels if channels else 0.0
            x2 = var if bn_after else m2
            total = (inc + sample * (1 + theory.SPATIAL_EXCESS * spatial)) * x2 \
                + common * (self.batch * positions * (m2 - var) + var)
            if not bn_after:
                total += sample * positions * (m2 - var)
            out[layer.module] = out.get(layer.module, 0.0) + _numel(layer) * fan_in * total
        return out


# ---------------------------------------------------------------- chains


def _link(graph: ModelGraph, affine: Layer) -> tuple[str | None, str | None, bool, Layer | None]:
    """(kind, activation, spatial, next affine) of the path from an affine layer to the next
    one: kind as in :class:`Chain`, None when the path forks, merges or holds anything else."""
    norms, acts, cur = [], [], affine
    while True:
        readers = graph.next(cur)
        if len(readers) != 1 or len(graph.prev(readers[0])) != 1:
            return None, None, False, None
        cur = readers[0]
        if cur.is_("@affine"):
            break
        if cur.is_("@norm"):
            norms.append(cur)
        elif cur.is_("@activation"):
            acts.append(cur)
        elif not (any(cur.is_(s) for s in _PASS) or (cur.kind in ("Mul", "Div")
                                                       and scalar_factor(cur) is not None)):
            return None, None, False, None
    act = acts[0].kind if acts else None
    spatial = bool(norms) and bool(norms[0].shape) and len(norms[0].shape) > 2
    if len(norms) == 1 and norms[0].is_("@batchnorm"):
        return ("batchnorm" if acts else "batchnorm-linear"), act, spatial, cur
    if not norms and acts:
        return "unnormalised", act, spatial, cur
    return None, None, False, None


def activation_after(graph: ModelGraph, affine: Layer) -> tuple[Layer | None, float]:
    """(the activation an affine layer feeds, the product of the constants its output is
    multiplied by on the way), looking through pass-through ops (pools, dropout, views); no
    activation when the path forks, merges or meets anything else first."""
    scale = 1.0
    for cur in graph.downstream(affine):
        if cur.is_("@activation"):
            return cur, scale
        factor = scalar_factor(cur) if cur.kind in ("Mul", "Div") else None
        if factor is not None:
            scale *= factor
        elif not any(cur.is_(spec) for spec in _PASS):
            return None, scale
    return None, scale


def find_chains(graph: ModelGraph) -> list[tuple[str, str | None, bool, list[Layer]]]:
    """Plain chains of 2 or more affine module layers: (kind, activation, spatial, layers)."""
    links = {a.name: _link(graph, a) for a in graph.layers("@affine") if a.module}
    continued = {(nxt.name, kind) for kind, _, _, nxt in links.values() if nxt is not None}
    chains = []
    for start in graph.layers("@affine"):
        kind, act, spatial, nxt = links.get(start.name, (None, None, False, None))
        if kind is None or (start.name, kind) in continued:
            continue  # no chain, or not the start of its chain
        members = [start]
        while nxt is not None and nxt.name in links and links[nxt.name][0] == kind:
            members.append(nxt)
            nxt = links[nxt.name][3]
        if len(members) >= 2:
            chains.append((kind, act, spatial, members))
    return chains


@dataclass
class Branch:
    """A residual merge: ``add`` = ``skip`` + ``branch`` output, where both go back to a common
    fork. ``members``: the nodes only the branch side reads from (the skip side cannot reach
    them); ``end``: the BatchNorm nearest the merge that every path of the branch passes
    through (None if none does), so that with its gamma (and beta) at 0 the branch outputs a
    constant whatever comes after it: a squeeze-excitation gate, an attention projection, a
    reshape (zero-init of the residual branch, Goyal et al., arXiv:1706.02677)."""
    add: Layer
    branch: Layer
    skip: Layer
    members: set[str]
    end: Layer | None


def _escapes(graph: ModelGraph, start: str, members: set[str], cut: str) -> bool:
    """Whether a path back from ``start`` leaves the branch (reaches the fork or an input)
    without passing through ``cut``; parameters read inside the branch do not count."""
    seen, stack = {cut}, [start]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n not in members:
            if graph.layer(n).op != "attr":
                return True
            continue
        stack.extend(graph.g.predecessors(n))
    return False


def residual_branches(graph: ModelGraph) -> list[Branch]:
    """Each residual merge: an Add of two inputs that go back to a common fork, the branch
    being the input with more affine layers of its own (the skip is the identity or a
    projection, which may hold one), with the BatchNorm that ends the branch (see
    :class:`Branch`)."""
    found = []
    bits, names = graph.ancestry()

    def named(b: int) -> list[str]:
        """The names of the set bits of ``b``, in the graph's order."""
        out = []
        while b:
            low = b & -b
            out.append(names[low.bit_length() - 1])
            b ^= low
        return out

    for add in graph.layers("Add"):
        inputs = graph.prev(add)
        if len(inputs) != 2:
            continue
        reach = [bits[x.name] for x in inputs]
        if not reach[0] & reach[1]:
            continue  # no common fork: a bias or an embedding added to a stream
        own = [named(reach[0] & ~reach[1]), named(reach[1] & ~reach[0])]
        affines = [sum(graph.layer(n).is_("@affine") for n in side) for side in own]
        if affines[0] == affines[1]:
            continue
        i = 0 if affines[0] > affines[1] else 1
        branch, members = inputs[i], set(own[i])
        norms = [x for x in map(graph.layer, reversed(own[i])) if x.is_("@batchnorm")]
        end = next((bn for bn in norms
                    if not _escapes(graph, branch.name, members, bn.name)), None)
        found.append(Branch(add, branch, inputs[1 - i], members, end))
    return found


# ---------------------------------------------------------------- entry point


def safe_ratio(a: float, b: float) -> float:
    """a / b for predicted magnitudes: inf when only b is 0, nan when both are (no signal),
    so callers skip what cannot be compared instead of dividing by zero."""
    if b:
        return a / b
    return math.inf if a else math.nan


def _ratio(layers: dict[str, float], first: str, last: str) -> float:
    return safe_ratio(layers[first], layers.get(last, 0.0))


def predict(graph: ModelGraph, batch: int, inputs: tuple = (),
            overrides: dict[str, dict[str, float]] | None = None,
            weights: ModelParams | None = None) -> Prediction:
    """Predict the gradient flow of ``graph`` at initialisation for training batch ``batch``.

    ``inputs``: the example inputs (their moments start the forward pass; unit variance if not
    given). ``overrides``: per module name, parameter moments to use instead of the weights'
    (``weight2``, ``bias2``, ``gamma2``, ``beta2``), for what-if predictions such as "with the
    residual branches' last BN gamma at 0" or "with He init". Weights far outside any init
    (say 1e20) can overflow the moments: those predictions come out inf/nan, which the rules
    skip and the report shows as null. ``weights``: the model's :class:`ModelParams` when the
    caller has read them already (read from the model when not given).
    """
    flow = _Flow(graph, batch, inputs, overrides, weights or ModelParams.of(graph.model))
    with np.errstate(over="ignore", invalid="ignore"):
        flow.run()
        grads = flow.weight_grads()
    order = list(grads)
    first, last = (order[0], order[-1]) if order else (None, None)
    ref = math.sqrt(grads[last]) if last else 0.0
    layers = {m: math.sqrt(v) / ref if ref else 0.0 for m, v in grads.items()}
    rms = {n: math.sqrt(x.m2) for n, x in flow.m.items()}
    signal = {n: math.sqrt(x.var) for n, x in flow.m.items()}
    chains = []
    for kind, act, spatial, members in find_chains(graph):
        names = [x.module for x in members]
        inner = names[1:-1] if len(names) >= 4 else names
        a, b = members[0], members[-1]
        chains.append(Chain(kind, names, act, spatial, _ratio(layers, names[0], names[-1]),
                            rms[b.name] / rms[a.name] if rms.get(a.name) else math.inf,
                            _ratio(layers, inner[0], inner[-1]) ** (1.0 / (len(inner) - 1))))
    normalised = [c for c in chains if c.kind == "batchnorm"]
    dead = {}
    for layer in graph.layers("@relu"):
        src = flow.sources(layer)
        if src:
            dead[layer.name] = theory.dead_fraction(flow.m[src[0]], batch)
    return Prediction(
        batch=batch, layers=layers,
        grad_ratio=_ratio(layers, first, last) if order else 1.0,
        first_module=first, last_module=last,
        chain=max(normalised, key=lambda c: c.blocks) if normalised else None, chains=chains,
        rms=rms, signal=signal, dead=dead, assumed=flow.assumed, unmodelled=flow.unmodelled)
