"""The loss a model trains with: ``loss`` in the config, or inferred from the model's file by
its syntax tree (the torch loss classes and functions it calls, or a hand-written squared
error), and the hand-written log-losses the file computes.

Only the file's text is read (nothing runs): a file that calls one kind of torch loss (say
``nn.CrossEntropyLoss()`` and ``F.cross_entropy`` both) has that loss, inferred, with the
reduction its calls name (``reduction="sum"``); a file that calls none but assigns one
hand-written squared error to a loss variable (``loss = ((out - y) ** 2).sum() / (2 * N)``) has
that, with its reduction (``.sum()`` or ``.mean()``) and a constant divisor whose value the file
states (numbers and module-level numeric constants). A file that calls several kinds, or none
and no such squared error, has no inferred loss, and the rules that need one stay silent.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from ..config import LOSSES as LOSS_NAMES
from . import syntax

# name -> (what the loss expects of the model's output, how messages call it)
LOSSES: dict[str, tuple[str, str]] = {
    "mse": ("values", "mean squared error"),
    "mae": ("values", "mean absolute error"),
    "huber": ("values", "Huber loss"),
    "bce": ("probabilities", "binary cross-entropy on probabilities (BCELoss)"),
    "bce_with_logits": ("logits", "binary cross-entropy on logits (BCEWithLogitsLoss)"),
    "ce": ("logits", "cross-entropy on logits (CrossEntropyLoss)"),
    "nll": ("log-probabilities", "negative log-likelihood on log-probabilities (NLLLoss)"),
    "kl": ("log-probabilities", "KL divergence on log-probabilities (KLDivLoss)"),
}

assert tuple(LOSSES) == LOSS_NAMES  # the config accepts exactly these

# torch's loss classes and functions, by the name a call ends in
_CALLS = {
    "MSELoss": "mse", "mse_loss": "mse", "L1Loss": "mae", "l1_loss": "mae",
    "HuberLoss": "huber", "huber_loss": "huber", "SmoothL1Loss": "huber",
    "smooth_l1_loss": "huber", "BCELoss": "bce", "binary_cross_entropy": "bce",
    "BCEWithLogitsLoss": "bce_with_logits",
    "binary_cross_entropy_with_logits": "bce_with_logits",
    "CrossEntropyLoss": "ce", "cross_entropy": "ce", "NLLLoss": "nll", "nll_loss": "nll",
    "KLDivLoss": "kl", "kl_div": "kl",
}

# names of the variables and functions that hold a loss, for hand-written ones
_LOSS_WORDS = ("loss", "cost", "entropy", "nll", "likelihood")


@dataclass(frozen=True)
class Loss:
    """The training loss: its ``name`` (a key of LOSSES), where bnlint learned it, and (when
    inferred from the file) its reduction over the batch: "mean", or "sum" times ``scale``."""
    name: str
    inferred: bool          # from the file's calls, not the config
    where: str              # "config loss" or "nn.CrossEntropyLoss() at model.py:42"
    reduction: str = "mean"  # "mean" or "sum"
    scale: float = 1.0      # a constant the reduced loss is multiplied by (1 / a divisor)
    targets_as_given: bool = False  # the file's loss takes the targets unreshaped (a name or
                                    # rows of one), so their shape meets the output's as it is

    @property
    def reduced(self) -> str:
        """How the loss reduces over the batch, in words (empty for a plain mean)."""
        if self.reduction == "mean" and self.scale == 1:
            return ""
        scaled = f" times {self.scale:.3g}" if self.scale != 1 else ""
        return ("summed over the batch" if self.reduction == "sum" else "averaged") + scaled

    @property
    def expects(self) -> str:
        return LOSSES[self.name][0]

    @property
    def said(self) -> str:
        """How findings name it: what it is and where it comes from."""
        how = f"inferred from {self.where}" if self.inferred else f"'{self.name}' in the config"
        return f"{LOSSES[self.name][1]}, {how}"


@dataclass(frozen=True)
class UnguardedLog:
    """A log taken in a hand-written loss with nothing keeping its argument from 0."""
    line: int
    col: int
    end_line: int
    end_col: int
    text: str               # the call as written


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _spelled(node: ast.Call, source: str) -> str:
    """The call as written, its arguments elided when long: ``F.cross_entropy(...)``."""
    text = ast.get_source_segment(source, node) or ""
    if text and len(text) <= 40:
        return text
    return (ast.get_source_segment(source, node.func) or _call_name(node) or "") + "(...)"


def _reduction(node: ast.Call) -> str | None:
    """The ``reduction=`` a torch loss call names as a string constant, if any."""
    for kw in node.keywords:
        if kw.arg == "reduction" and isinstance(kw.value, ast.Constant):
            return kw.value.value if isinstance(kw.value.value, str) else None
    return None


def inferred(path: str | None) -> Loss | None:
    """The one kind of torch loss the file at ``path`` calls, if it calls exactly one (summed
    when every call of it says ``reduction="sum"``), else its one hand-written squared error."""
    read = syntax.parsed(path) if path else None
    if read is None:
        return None
    tree, source = read
    found: dict[str, list[ast.Call]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in _CALLS:
            found.setdefault(_CALLS[_call_name(node)], []).append(node)
    if not found:
        return _squared_error(tree, source, Path(path).name)
    if len(found) != 1:
        return None
    name, nodes = next(iter(found.items()))
    node = min(nodes, key=lambda n: (n.lineno, n.col_offset))
    summed = all(_reduction(n) == "sum" for n in nodes)
    as_given = all(_as_given(_target_argument(n)) for n in nodes)
    return Loss(name, True, f"{_spelled(node, source)} at {Path(path).name}:{node.lineno}",
                "sum" if summed else "mean", targets_as_given=as_given)


def _target_argument(node: ast.Call) -> ast.expr | None:
    """The target a functional torch loss call takes (its second argument), if it is one."""
    if node.func and _call_name(node)[:1].isupper():  # nn.MSELoss(): a class, no target here
        return None
    given = [kw.value for kw in node.keywords if kw.arg == "target"]
    return given[0] if given else (node.args[1] if len(node.args) > 1 else None)


def _as_given(node: ast.expr | None) -> bool:
    """Whether an operand is a tensor as the program holds it: a name, or rows of one
    (``y``, ``y[idx]``, ``y[i:j]``), not reshaped (``y.unsqueeze(1)``, ``y[:, None]``)."""
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        index = node.slice
        return not isinstance(index, ast.Tuple) and not (
            isinstance(index, ast.Constant) and index.value is None)
    return False


def _calls_model(node: ast.expr) -> bool:
    return any(isinstance(n, ast.Call) for n in ast.walk(node))


def _constants(tree: ast.Module) -> dict[str, float]:
    """Module-level names bound once, to a number."""
    bound: dict[str, list[ast.expr]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            bound.setdefault(node.targets[0].id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and node.value is not None:
            bound.setdefault(node.target.id, []).append(node.value)
    return {name: float(values[0].value) for name, values in bound.items()
            if len(values) == 1 and isinstance(values[0], ast.Constant)
            and isinstance(values[0].value, (int, float))
            and not isinstance(values[0].value, bool)}


def _number(node: ast.expr, constants: dict[str, float]) -> float | None:
    """The value of a constant arithmetic expression of numbers and module-level constants."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        left, right = _number(node.left, constants), _number(node.right, constants)
        if left is None or right is None or (isinstance(node.op, ast.Div) and right == 0):
            return None
        ops = {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}
        return ops.get(type(node.op), left / right if right else None)
    return None


def _is_square(node: ast.expr) -> bool:
    """``(a - b) ** 2`` (or with ``+``): the square of a difference."""
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) \
        and isinstance(node.right, ast.Constant) and node.right.value == 2 \
        and isinstance(node.left, ast.BinOp) and isinstance(node.left.op, ast.Sub)


def _reduced_square(node: ast.expr) -> str | None:
    """"sum" or "mean" for ``(d ** 2).sum()`` / ``torch.mean(d ** 2)`` of a squared difference."""
    if not isinstance(node, ast.Call) or _call_name(node) not in ("sum", "mean"):
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and not node.args and _is_square(func.value):
        return func.attr
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
            and func.value.id == "torch" and len(node.args) == 1 and _is_square(node.args[0]):
        return func.attr
    return None


def _squared_error(tree: ast.Module, source: str, filename: str) -> Loss | None:
    """The file's one hand-written squared error assigned to a loss variable: ``(d ** 2)``
    summed or averaged, optionally divided by a constant whose value the file states."""
    constants, found = _constants(tree), {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and _holds_loss(t.id) for t in node.targets)):
            continue
        value, scale = node.value, 1.0
        if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Div):
            divisor = _number(value.right, constants)
            if not divisor:
                continue
            value, scale = value.left, 1 / divisor
        reduction = _reduced_square(value)
        if reduction is not None:
            text = ast.get_source_segment(source, node.value) or ""
            square = value.func.value if isinstance(value.func, ast.Attribute) \
                and not value.args else value.args[0]
            sides = (square.left.left, square.left.right)
            as_given = any(_calls_model(a) and _as_given(b) for a, b in (sides, sides[::-1]))
            found[(reduction, scale)] = Loss("mse", True, f"{text} at {filename}:{node.lineno}",
                                             reduction, scale, as_given)
    return next(iter(found.values())) if len(found) == 1 else None


def loss_for(config_loss: str | None, path: str | None) -> Loss | None:
    """The configured loss, else the one inferred from the model's file."""
    if config_loss is not None:
        return Loss(config_loss, False, "config loss")
    return inferred(path)


def _guarded(arg: ast.expr) -> bool:
    """Whether a log's argument is kept off 0: clamped or clipped, or has a constant added
    (``p + 1e-8``, ``1e-8 + p``)."""
    if isinstance(arg, ast.Call) and _call_name(arg) in ("clamp", "clip", "clamp_min", "maximum",
                                                         "max", "softplus", "exp"):
        return True
    if isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add):
        return any(isinstance(side, ast.Constant) or (isinstance(side, ast.Name)
                                                      and side.id.lower().startswith("eps"))
                   for side in (arg.left, arg.right))
    return False


def _holds_loss(name: str) -> bool:
    return any(word in name.lower() for word in _LOSS_WORDS)


def unguarded_logs(path: str | None) -> list[UnguardedLog]:
    """``torch.log(p)`` / ``p.log()`` calls in a hand-written loss (an expression assigned to,
    or returned by a function named for, a loss: loss, cost, entropy, nll) whose argument
    nothing keeps from 0."""
    read = syntax.parsed(path) if path else None
    if read is None:
        return []
    tree, source = read
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and _holds_loss(t.id) for t in targets):
                roots.append(node.value)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _holds_loss(node.name):
            roots.extend(n.value for n in ast.walk(node)
                         if isinstance(n, ast.Return) and n.value is not None)
    found: dict[tuple[int, int], UnguardedLog] = {}
    for root in roots:
        for node in ast.walk(root):
            if not (isinstance(node, ast.Call) and _call_name(node) == "log"):
                continue
            owner = node.func.value if isinstance(node.func, ast.Attribute) else None
            if isinstance(owner, ast.Name) and owner.id in ("math", "np", "numpy"):
                continue  # the log of a Python or NumPy number, not of the model's output
            method = isinstance(node.func, ast.Attribute) and not node.args
            arg = node.func.value if method else (node.args[0] if node.args else None)
            if arg is None or _guarded(arg) or isinstance(arg, ast.Constant):
                continue
            found.setdefault((node.lineno, node.col_offset), UnguardedLog(
                node.lineno, node.col_offset + 1, node.end_lineno or node.lineno,
                (node.end_col_offset or node.col_offset) + 1, _spelled(node, source)))
    return sorted(found.values(), key=lambda x: (x.line, x.col))
