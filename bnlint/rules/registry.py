"""Rule finders. A rule with a ``pattern`` in its YAML is found by :mod:`.patterns`; any other
rule by the function registered under its code with :func:`.base.check`, one module per family.

A finder takes the :class:`~.base.Context` and its rule and yields :class:`~.base.Hit`s;
:mod:`bnlint.lint` turns hits into located findings.
"""

from __future__ import annotations

# Importing these modules registers their finders.
from . import (  # noqa: F401
    depth,
    heads,
    init,
    measured,
    optimizer,
    ordering,
    patterns,
    scales,
    schedule,
    targets,
    trace,
)
from .base import REGISTRY, Context, Finder, Hit
from .catalog import Rule

__all__ = ["Context", "Hit", "finder"]


def finder(rule: Rule) -> Finder | None:
    """The function that finds ``rule``: its pattern's matcher or its registered finder."""
    if rule.pattern is not None:
        return patterns.find
    return REGISTRY.get(rule.code)
