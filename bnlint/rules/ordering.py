"""Ordering family (1xx) finders that need more than a pattern."""

from __future__ import annotations

import math
from collections.abc import Iterator

from ..model.graph import Layer, ModelGraph
from .base import Context, Hit, check, heads_after_affine
from .catalog import Rule


def _norms_downstream(graph: ModelGraph, start: Layer) -> list[tuple[Layer, list[Layer]]]:
    """BatchNorms reached from ``start`` through affine layers only, with the affine path."""
    found, stack, seen = [], [(start, [])], set()
    while stack:
        layer, between = stack.pop()
        for nxt in graph.next(layer):
            if nxt.name in seen:
                continue
            seen.add(nxt.name)
            if nxt.is_("@batchnorm"):
                found.append((nxt, between))
            elif nxt.is_("@affine"):
                stack.append((nxt, [*between, nxt]))
    return found


@check("BNL101")
def dropout_before_batchnorm(ctx: Context, rule: Rule) -> Iterator[Hit]:
    for drop in ctx.graph.layers("@dropout"):
        p = drop.attr("p")
        if not p or drop.attr("training") is False:
            continue
        for bn, between in _norms_downstream(ctx.graph, drop):
            via = " through " + ", ".join(x.label for x in between) if between else ""
            yield Hit(drop, {"dropout": drop, "bn": bn, "via": via, "p": p},
                      {"p": p, "batchnorm": bn.label, "through": [x.label for x in between]})
            break


@check("BNL105")
def batchnorm_on_output(ctx: Context, rule: Rule) -> Iterator[Hit]:
    for bn, layer in heads_after_affine(ctx.graph, "@batchnorm"):
        yield Hit(bn, {"bn": bn, "layer": layer}, {"output_layer": layer.label})


_LINEAR_PASS = ("@transparent", "@dropout", "@batchnorm", "AvgPool*", "AdaptiveAvgPool*")


def _dense(layer: Layer) -> bool:
    """A Linear or an ungrouped convolution module: a general affine map of its input."""
    return layer.obj is not None and (layer.kind in ("Linear", "LazyLinear") or (
        layer.kind.startswith(("Conv", "LazyConv")) and getattr(layer.obj, "groups", 1) == 1))


def _widths(graph: ModelGraph, a: Layer, b: Layer) -> tuple[int, int, int] | None:
    """(in, between, out) widths of the map a then b: features for Linears, channels for
    convolutions, values per sample for a convolution feeding a Linear."""
    linear = [x.kind.endswith("Linear") for x in (a, b)]
    if linear[0] == linear[1]:
        names = ("in_features", "out_features") if linear[0] else ("in_channels", "out_channels")
        return (getattr(a.obj, names[0]), getattr(a.obj, names[1]), getattr(b.obj, names[1]))
    src = graph.prev(a)
    if not (src and src[0].shape and a.shape and b.shape):
        return None
    per_sample = [math.prod(s[1:]) for s in (src[0].shape, a.shape, b.shape)]
    return per_sample[0], per_sample[1], per_sample[2]


@check("BNL109")
def collapsed_linear_stack(ctx: Context, rule: Rule) -> Iterator[Hit]:
    graph = ctx.graph
    heads = {x.name for x in graph.heads()}
    linear = not any(x.name not in heads for x in graph.layers("@activation"))
    for a in graph.order:
        if not _dense(a):
            continue
        cur, between = a, []
        while True:
            readers = graph.next(cur)
            if len(readers) != 1 or len(graph.prev(readers[0])) != 1:
                break
            cur = readers[0]
            if _dense(cur):
                widths = _widths(graph, a, cur)
                if widths is None or widths[1] <= min(widths[0], widths[2]):
                    break  # a low-rank bottleneck: a factorisation one layer cannot make
                via = (" (through " + ", ".join(x.label for x in between) + ")"
                       if between else "")
                yield Hit(cur, {"first": a, "second": cur, "via": via,
                                "widths": " -> ".join(map(str, widths))},
                          {"first": a.label, "through": [x.label for x in between],
                           "widths": list(widths), "linear_model": linear},
                          severity="warning" if linear else None)
                break
            if not any(cur.is_(spec) for spec in _LINEAR_PASS):
                break
            if not cur.is_("@transparent"):
                between.append(cur)
