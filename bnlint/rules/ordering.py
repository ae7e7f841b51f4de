"""Ordering family (1xx) finders that need more than a pattern."""

from __future__ import annotations

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
