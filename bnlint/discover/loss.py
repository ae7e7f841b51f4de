"""The loss a model trains with: ``loss`` in the config, or inferred from the model's file by
its syntax tree (the torch loss classes and functions it calls), and the hand-written log-losses
the file computes.

Only the file's text is read (nothing runs): a file that calls one kind of torch loss (say
``nn.CrossEntropyLoss()`` and ``F.cross_entropy`` both) has that loss, inferred; a file that
calls several kinds, or none, has no inferred loss, and the rules that need one stay silent.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from ..config import LOSSES as LOSS_NAMES

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
    """The training loss: its ``name`` (a key of LOSSES) and where bnlint learned it."""
    name: str
    inferred: bool          # from the file's calls, not the config
    where: str              # "config loss" or "nn.CrossEntropyLoss() at model.py:42"

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


@functools.lru_cache(maxsize=64)
def _tree(path: str) -> ast.Module | None:
    try:
        return ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def _spelled(node: ast.Call, source: str) -> str:
    """The call as written, its arguments elided when long: ``F.cross_entropy(...)``."""
    text = ast.get_source_segment(source, node) or ""
    if text and len(text) <= 40:
        return text
    return (ast.get_source_segment(source, node.func) or _call_name(node) or "") + "(...)"


def inferred(path: str | None) -> Loss | None:
    """The one kind of torch loss the file at ``path`` calls, if it calls exactly one."""
    tree = _tree(path) if path else None
    if tree is None:
        return None
    found: dict[str, ast.Call] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in _CALLS:
            found.setdefault(_CALLS[_call_name(node)], node)
    if len(found) != 1:
        return None
    name, node = next(iter(found.items()))
    source = Path(path).read_text(encoding="utf-8")
    return Loss(name, True, f"{_spelled(node, source)} at {Path(path).name}:{node.lineno}")


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
    tree = _tree(path) if path else None
    if tree is None:
        return []
    source = Path(path).read_text(encoding="utf-8")
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
