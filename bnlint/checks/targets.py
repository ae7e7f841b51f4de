"""Targets and dying-ReLU family (4xx) finders."""

from __future__ import annotations

from typing import Iterator

from ..catalog import Rule
from .base import Context, Hit, check, heads_after_affine


@check("BNL401")
def relu_on_output(ctx: Context, rule: Rule) -> Iterator[Hit]:
    for act, layer in heads_after_affine(ctx.graph, "@relu"):
        yield Hit(act, {"act": act, "layer": layer}, {"output_layer": layer.label})
