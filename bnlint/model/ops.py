"""The op taxonomy: one canonical *kind* per module class or function, and named groups of kinds.

Functional and module forms share a kind (``F.relu``, ``torch.relu``, ``x.relu()`` and
``nn.ReLU`` are all ``ReLU``), so one rule covers every spelling. Pattern steps name kinds by
glob (``BatchNorm*``) or by group (``@batchnorm``).
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
from typing import Any

import torch.fx as fx
from torch import nn

# Function and method names (torch.*, F.*, operator.*, Tensor.*) -> kind.
_NAME_KINDS = {
    "relu": "ReLU", "relu6": "ReLU6", "leaky_relu": "LeakyReLU", "prelu": "PReLU",
    "rrelu": "RReLU", "elu": "ELU", "celu": "CELU", "selu": "SELU", "gelu": "GELU",
    "silu": "SiLU", "mish": "Mish", "hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid",
    "tanh": "Tanh", "sigmoid": "Sigmoid", "softplus": "Softplus", "softsign": "Softsign",
    "hardtanh": "Hardtanh", "logsigmoid": "LogSigmoid", "sin": "Sin", "cos": "Cos",
    "dropout": "Dropout", "dropout1d": "Dropout1d", "dropout2d": "Dropout2d",
    "dropout3d": "Dropout3d", "alpha_dropout": "AlphaDropout",
    "feature_alpha_dropout": "FeatureAlphaDropout",
    "batch_norm": "BatchNorm", "layer_norm": "LayerNorm", "group_norm": "GroupNorm",
    "instance_norm": "InstanceNorm", "rms_norm": "RMSNorm",
    "linear": "Linear", "conv1d": "Conv1d", "conv2d": "Conv2d", "conv3d": "Conv3d",
    "conv_transpose1d": "ConvTranspose1d", "conv_transpose2d": "ConvTranspose2d",
    "conv_transpose3d": "ConvTranspose3d", "matmul": "MatMul", "mm": "MatMul", "bmm": "MatMul",
    "embedding": "Embedding",
    "add": "Add", "iadd": "Add", "radd": "Add", "cat": "Cat", "concat": "Cat",
    "concatenate": "Cat", "stack": "Stack", "mul": "Mul", "imul": "Mul", "rmul": "Mul",
    "sub": "Sub", "isub": "Sub", "rsub": "Sub", "truediv": "Div", "div": "Div",
    "view": "View", "reshape": "Reshape", "flatten": "Flatten", "unflatten": "Unflatten",
    "permute": "Permute", "transpose": "Transpose", "t": "Transpose", "contiguous": "Contiguous",
    "squeeze": "Squeeze", "unsqueeze": "Unsqueeze", "view_as": "View", "reshape_as": "Reshape",
    "expand": "Expand", "expand_as": "Expand", "to": "Cast", "float": "Cast", "double": "Cast",
    "half": "Cast", "bfloat16": "Cast", "type_as": "Cast", "type": "Cast", "clone": "Clone",
    "getitem": "Getitem",
    "size": "Size", "dim": "Size", "numel": "Size", "getattr": "Size",
    "max_pool1d": "MaxPool1d", "max_pool2d": "MaxPool2d", "max_pool3d": "MaxPool3d",
    "avg_pool1d": "AvgPool1d", "avg_pool2d": "AvgPool2d", "avg_pool3d": "AvgPool3d",
    "adaptive_avg_pool1d": "AdaptiveAvgPool1d", "adaptive_avg_pool2d": "AdaptiveAvgPool2d",
    "adaptive_avg_pool3d": "AdaptiveAvgPool3d", "adaptive_max_pool2d": "AdaptiveMaxPool2d",
    "mean": "Mean", "sum": "Sum", "softmax": "Softmax", "log_softmax": "LogSoftmax",
}

# Tensor methods whose second argument lends only its shape or dtype, not its values.
SHAPE_ONLY = frozenset({"reshape_as", "view_as", "expand_as", "type_as"})

GROUPS: dict[str, frozenset[str]] = {
    "batchnorm": frozenset({"BatchNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
                            "SyncBatchNorm", "LazyBatchNorm1d", "LazyBatchNorm2d",
                            "LazyBatchNorm3d"}),
    "dropout": frozenset({"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                          "FeatureAlphaDropout"}),
    "affine": frozenset({"Linear", "Bilinear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d",
                         "LazyConv1d", "LazyConv2d", "LazyConv3d", "ConvTranspose1d",
                         "ConvTranspose2d", "ConvTranspose3d", "MatMul"}),
    "relu": frozenset({"ReLU", "ReLU6"}),
    "saturating": frozenset({"Tanh", "Sigmoid", "Hardtanh", "Softsign", "Hardsigmoid",
                             "LogSigmoid"}),
    "activation": frozenset({"ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "CELU",
                             "SELU", "GELU", "SiLU", "Mish", "Hardswish", "Hardsigmoid", "Tanh",
                             "Sigmoid", "Softplus", "Softsign", "Hardtanh", "LogSigmoid", "Sin",
                             "Cos", "Tanhshrink", "ShapedActivation", "DepthLeakyReLU"}),
    # Ops that move or relabel values without computing on them: rules look through them.
    "transparent": frozenset({"Identity", "Flatten", "Unflatten", "View", "Reshape", "Permute",
                              "Transpose", "Contiguous", "Squeeze", "Unsqueeze", "Expand",
                              "Cast", "Clone", "Getitem"}),
    # Ops whose output is not a tensor (sizes): data paths stop there.
    "meta": frozenset({"Size"}),
    "merge": frozenset({"Add", "Cat", "Stack"}),
}
GROUPS["norm"] = GROUPS["batchnorm"] | {"LayerNorm", "GroupNorm", "InstanceNorm",
                                        "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
                                        "LocalResponseNorm", "RMSNorm"}


def kind_of_name(name: str) -> str:
    """Kind of a function or method by name: ``relu_``/``__radd__`` normalise to their op."""
    base = name.strip("_") if name.startswith("__") else name.rstrip("_")
    return _NAME_KINDS.get(base, base)


def _library_class(cls: type) -> type | None:
    for base in cls.__mro__:
        if base.__module__.startswith(("torch.nn.", "bnlint.nn")):
            return base
    return None


def kind_of_module(module: nn.Module) -> str:
    """Kind of a module: its class name, or its nearest torch.nn base for a user subclass."""
    base = _library_class(type(module))
    return base.__name__ if base is not None and base is not nn.Module else type(module).__name__


def is_leaf_class(module: nn.Module) -> bool:
    """Leaf for tracing: a torch.nn / bnlint.nn layer, or a user subclass that keeps its forward."""
    cls = type(module)
    base = _library_class(cls)
    if base is None or base in (nn.Module, nn.Sequential, nn.ModuleList, nn.ModuleDict):
        return False
    return cls.forward is base.forward


def in_group(kind: str, group: str) -> bool:
    return kind in GROUPS[group]


@functools.cache  # rules ask about the same few kinds and specs for every layer
def matches(kind: str, spec: str) -> bool:
    """Does ``kind`` match a pattern spec: ``@group`` or a glob such as ``BatchNorm*``."""
    if spec.startswith("@"):
        return kind in GROUPS[spec[1:]]
    return fnmatch.fnmatchcase(kind, spec)


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


class OpKeys:
    """Stable keys for functional ops: ``owner:relu``, ``owner:relu_1`` in order of use."""

    def __init__(self):
        self.counts: dict[tuple[str, str], int] = {}

    def __call__(self, owner: str, kind: str) -> str:
        local = kind.lower()
        n = self.counts.get((owner, local), 0)
        self.counts[(owner, local)] = n + 1
        local = local if n == 0 else f"{local}_{n}"
        return f"{owner}:{local}" if owner else local


# The leading parameters of ops whose Python signature cannot be read (torch.softmax and the
# Tensor methods are builtins; fx names a method by its string), for the options rules read:
# ``x.softmax(-1)`` normalises over dim -1, not the implicit dim 1.
_POSITIONAL = {"softmax": ("input", "dim"), "log_softmax": ("input", "dim")}


def signature(fn: Any) -> inspect.Signature:
    """``inspect.signature(fn)``, read once per function of torch or of Python's own modules:
    a builtin's is parsed from its text signature each time, and a graph calls the same few
    thousands of times. The user's functions are read each time (a cache would keep them, and
    their module's globals, alive in a long-lived process). Raises as inspect.signature does."""
    if str(getattr(fn, "__module__", None)).partition(".")[0] in _LIBRARIES:
        return _cached_signature(fn)
    return inspect.signature(fn)


_LIBRARIES = frozenset({"torch", "_operator", "operator", "builtins", "math"})
_cached_signature = functools.lru_cache(maxsize=1024)(inspect.signature)


def op_options(fn: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Arguments of a functional op or a Tensor method (``fn`` may be the method's name, its
    first argument the tensor) by parameter name, defaults included: scalars as given, tensor
    arguments as True (given) or False (None). F.batch_norm and F.instance_norm also get the
    module flags their tensors stand for: ``track_running_stats`` (running_mean given) and
    ``affine`` (weight given)."""
    try:
        bound = signature(fn).bind(*args, **kwargs)
        bound.apply_defaults()
        named = bound.arguments
    except (TypeError, ValueError):  # builtins without a signature, or unusual calls
        name = fn if isinstance(fn, str) else getattr(fn, "__name__", "")
        named = {**dict(zip(_POSITIONAL.get(name, ()), args)), **kwargs}
    options = {k: v if isinstance(v, (bool, int, float, str)) else v is not None
               for k, v in named.items()
               if v is None or isinstance(v, (bool, int, float, str, fx.Node))}
    if "running_mean" in options and "weight" in options:
        options.update(track_running_stats=options["running_mean"], affine=options["weight"])
    return options
