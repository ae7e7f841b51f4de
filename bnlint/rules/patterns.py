"""The pattern engine: rules that are a path of layer kinds, written as data in the rule YAML.

A step is a kind spec (``BatchNorm*``, ``@batchnorm``) with optional ``attrs`` the module must
have and ``only: true`` (every consumer of the previous step, over all its calls, must match).
Paths look through transparent ops. Step ``at`` locates the finding; ``m0``, ``m1``... name the
matched layers in the message template.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..model.graph import Layer, ModelGraph
from .base import Context, Hit
from .catalog import Rule


def _step_matches(layer: Layer, step: dict[str, Any]) -> bool:
    return (any(layer.is_(spec) for spec in step["type"])
            and all(layer.attr(k) == v for k, v in step["attrs"].items()))


def consumers(graph: ModelGraph, layer: Layer) -> list[Layer]:
    """Consumers of a layer over every call of its module (a shared module counts once)."""
    return [c for call in graph.calls(layer) for c in graph.next(call)]


def _extend(graph: ModelGraph, chain: list[Layer], rest: list[dict]) -> Iterator[list[Layer]]:
    if not rest:
        yield chain
        return
    step = rest[0]
    following = consumers(graph, chain[-1]) if step["only"] else graph.next(chain[-1])
    matched = [x for x in following if _step_matches(x, step)]
    if step["only"] and (not following or len(matched) != len(following)):
        return
    for layer in matched:
        yield from _extend(graph, [*chain, layer], rest[1:])


def find(ctx: Context, rule: Rule) -> Iterator[Hit]:
    steps = rule.pattern or []
    starts = {x.name for spec in steps[0]["type"] for x in ctx.graph.layers(spec)}
    for first in ctx.graph.order:
        if first.name not in starts or not _step_matches(first, steps[0]):
            continue
        for chain in _extend(ctx.graph, [first], steps[1:]):
            yield Hit(layer=chain[rule.at], fields={f"m{i}": x for i, x in enumerate(chain)},
                      evidence={"path": [x.label for x in chain]})
