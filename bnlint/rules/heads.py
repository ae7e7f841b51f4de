"""Output heads against the loss and the targets (4xx): a softmax over one unit, probabilities
given to a loss that takes logits (or the reverse), an output range the targets leave, and
hand-written log-losses with nothing keeping the log's argument from 0."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from ..discover.loss import unguarded_logs
from ..model.graph import Layer
from ..model.sites import Site
from .base import Context, Hit, check
from .catalog import Rule

_SOFTMAX = ("Softmax", "LogSoftmax")


def softmax_dim(layer: Layer) -> int | None:
    """The dimension a softmax normalises, non-negative; PyTorch's implicit choice when the
    call gives none (0 for 0-, 1- and 3-d inputs, else 1); None without a shape."""
    shape = layer.shape
    if not shape:
        return None
    dim = layer.attr("dim")
    if dim is None or dim is False:
        dim = 0 if len(shape) in (0, 1, 3) else 1
    if isinstance(dim, bool) or not isinstance(dim, int) or not -len(shape) <= dim < len(shape):
        return None
    return dim % len(shape)


@check("BNL404")
def softmax_over_one(ctx: Context, rule: Rule) -> Iterator[Hit]:
    for layer in ctx.graph.order:
        if layer.kind not in _SOFTMAX:
            continue
        dim = softmax_dim(layer)
        if dim is None or layer.shape[dim] != 1:
            continue
        value = "1.0" if layer.kind == "Softmax" else "0.0"
        yield Hit(layer, {"layer": layer, "dim": dim, "shape": tuple(layer.shape),
                          "value": value},
                  {"dim": dim, "shape": list(layer.shape)})


def single_head(ctx: Context) -> Layer | None:
    """The model's one output (None for a model that returns several)."""
    heads = ctx.graph.heads()
    return heads[0] if len(heads) == 1 else None


def _classes(head: Layer) -> int | None:
    dim = softmax_dim(head) if head.kind in _SOFTMAX else None
    return head.shape[dim] if dim is not None else None


_BOUNDED_01 = ("Sigmoid", "Hardsigmoid", "Softmax")


@check("BNL405")
def probabilities_to_logits_loss(ctx: Context, rule: Rule) -> Iterator[Hit]:
    loss, head = ctx.loss, single_head(ctx)
    if loss is None or head is None or loss.expects != "logits" \
            or head.kind not in ("Softmax", "Sigmoid"):
        return
    inside = "a log-softmax" if loss.name == "ce" else "a sigmoid"
    yield Hit(head, {"head": head, "kind": head.kind.lower(), "inside": inside,
                     "loss": loss.said},
              {"loss": loss.name, "inferred": loss.inferred, "loss_source": loss.where,
               "head": head.kind})


def _mismatch(head: Layer, expects: str) -> tuple[str, str] | None:
    """(what is wrong, what to do) for a head that is not what the loss takes."""
    if expects == "probabilities" and head.kind == "Softmax" and (_classes(head) or 0) > 1:
        return ("returns a softmax over several classes to a binary cross-entropy, which "
                "scores each output as an independent yes/no; with one class per sample the "
                "matching loss is the cross-entropy of the logits (the two share their "
                "minimum, so this one still trains)",
                "Return the logits and train with nn.CrossEntropyLoss; for several labels per "
                "sample, return logits to nn.BCEWithLogitsLoss.")
    if expects == "probabilities" and head.kind not in _BOUNDED_01 \
            and (head.is_("@affine") or head.is_("@activation")):
        return (f"returns {head.kind} values, which are not confined to [0, 1], to a loss that "
                "takes probabilities: log(p) of a value <= 0 is NaN, and BCELoss rejects "
                "values outside [0, 1]",
                "Return the logits and train with nn.BCEWithLogitsLoss (sigmoid and log in one "
                "stable step), or end the model in a sigmoid.")
    if expects == "log-probabilities" and (head.kind in _BOUNDED_01 or head.is_("@affine")):
        what = "probabilities" if head.kind in _BOUNDED_01 else "raw scores"
        return (f"returns {what}, but the loss takes log-probabilities: it is -input at the "
                "target, which raw scores can push down without bound and which is no "
                "likelihood on probabilities",
                "End the model in log_softmax (nn.LogSoftmax(dim=1)), or return the logits "
                "and train with nn.CrossEntropyLoss.")
    return None


@check("BNL410")
def head_against_loss(ctx: Context, rule: Rule) -> Iterator[Hit]:
    loss, head = ctx.loss, single_head(ctx)
    if loss is None or head is None:
        return
    found = _mismatch(head, loss.expects)
    if found is None:
        return
    problem, advice = found
    severity = "info" if head.kind == "Softmax" and loss.expects == "probabilities" else None
    yield Hit(head, {"head": head, "problem": problem, "loss": loss.said, "advice": advice},
              {"loss": loss.name, "inferred": loss.inferred, "loss_source": loss.where,
               "head": head.kind}, severity=severity, fix_description=advice)


_RANGES = {"Sigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0), "Softmax": (0.0, 1.0),
           "Hardsigmoid": (0.0, 1.0), "Hardtanh": (-1.0, 1.0), "Softsign": (-1.0, 1.0)}


def _target_rows(t: torch.Tensor, head: Layer) -> torch.Tensor | None:
    """The targets as the head's output would hold them (None for class indices or a shape that
    differs)."""
    if head.shape is None or t.dim() < 1 or tuple(t.shape[1:]) != tuple(head.shape[1:]):
        return None
    return t.float()


@check("BNL407")
def output_range(ctx: Context, rule: Rule) -> Iterator[Hit]:
    head, t = single_head(ctx), ctx.targets
    if head is None or head.kind not in _RANGES or t is None or t.tensor is None:
        return
    values = _target_rows(t.tensor, head)
    if values is None:
        return
    low, high = _RANGES[head.kind]
    outside = float(((values < low) | (values > high)).float().mean())
    problems = []
    if outside > ctx.threshold(rule, "outside_share"):
        problems.append(f"{outside:.0%} of the targets ({t.source}) lie outside the head's range "
                        f"[{low:g}, {high:g}] (they span {float(values.min()):.3g} to "
                        f"{float(values.max()):.3g}), which it can never output")
    dim = softmax_dim(head) if head.kind == "Softmax" else None
    if dim is not None and values.shape[dim] > 1 and outside == 0:
        positives = (values > 0.5).sum(dim)
        several = float((positives > 1).float().mean())
        sums = values.sum(dim)
        off = float(((sums - 1).abs() > 1e-3).float().mean())
        if several > 0:
            problems.append(f"{several:.0%} of the target rows have more than one positive label "
                            "(multi-label), but a softmax's outputs sum to 1 and compete, so it "
                            "cannot give two labels a high score")
        elif off > 0:
            problems.append(f"{off:.0%} of the target rows do not sum to 1, but a softmax's "
                            "outputs always do")
    if not problems:
        return
    error = outside >= ctx.threshold(rule, "outside_share_error")
    yield Hit(head, {"head": head, "problems": "; ".join(problems),
                     "loss": f" The loss: {ctx.loss.said}." if ctx.loss else ""},
              {"outside_share": outside, "range": [low, high], "source": t.source,
               "problems": problems}, severity="error" if error else None)


# Losses that score each output against the target at the same position (and broadcast the two)
_ELEMENTWISE = ("mse", "mae", "huber", "bce", "bce_with_logits")


@check("BNL411")
def target_broadcasts_in_loss(ctx: Context, rule: Rule) -> Iterator[Hit]:
    loss, head = ctx.loss, single_head(ctx)
    t = ctx.targets.tensor if ctx.targets is not None else None
    if loss is None or loss.name not in _ELEMENTWISE or not loss.targets_as_given \
            or head is None or not head.shape or t is None:
        return
    out, target = tuple(head.shape), tuple(t.shape)
    if out == target or not out or not target or out[0] != target[0]:
        return
    try:
        both = tuple(torch.broadcast_shapes(out, target))
    except RuntimeError:
        return  # they do not broadcast: the loss raises, nothing silent
    if math.prod(both) <= max(math.prod(out), math.prod(target)):
        return  # each output still meets one target
    yield Hit(head, {"head": head, "out": out, "target": target, "both": both,
                     "loss": loss.said},
              {"output_shape": list(out), "target_shape": list(target),
               "broadcast_shape": list(both), "loss": loss.name, "loss_source": loss.where})


@check("BNL409")
def unguarded_log(ctx: Context, rule: Rule) -> Iterator[Hit]:
    logs = unguarded_logs(ctx.source)
    if not logs or ctx.source is None:
        return
    first = logs[0]
    calls = ", ".join(f"{x.text} (line {x.line})" for x in logs)
    yield Hit(None, {"calls": calls, "count": len(logs)}, {"calls": [x.text for x in logs]},
              site=Site(ctx.source, first.line, first.col, first.end_line, first.end_col))
