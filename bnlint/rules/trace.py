"""Trace family (0xx): what bnlint could not see."""

from __future__ import annotations

from collections.abc import Iterator

from .base import Context, Hit, check
from .catalog import Rule


@check("BNL001")
def trace_fallback(ctx: Context, rule: Rule) -> Iterator[Hit]:
    graph = ctx.graph
    if graph.method == "hooks":
        yield Hit(None, {"reason": graph.reason, "coverage": graph.coverage},
                  {"reason": graph.reason, "coverage": round(graph.coverage, 4)},
                  site=graph.reason_site)
