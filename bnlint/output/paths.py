"""Paths as reports show them: relative to the working directory when under it."""

from __future__ import annotations

import os


def relative(path: str | None) -> str:
    """A path relative to the working directory when it lies under it."""
    if not path:
        return ""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
