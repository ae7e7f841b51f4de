"""The JSON report (docs/DESIGN.md's contract), strict JSON: NaN/Inf become null."""

from __future__ import annotations

import json
from typing import Any

from ..findings import Report, finite_json


def dumps(value: Any) -> str:
    return json.dumps(finite_json(value), indent=2, allow_nan=False) + "\n"


def to_json(report: Report) -> str:
    return dumps(report.public())
