"""The HTML report (``--format html``): one self-contained page per run (inline CSS and SVG, no
script, nothing fetched), for a person to read: per file and model the findings with the source
lines they point at, the inputs used and how they were chosen, and the probe's measurements as
charts (gradient norm per layer, predicted against measured; dead ReLU fractions; the loss and
the first/last gradient ratio over the probe's steps)."""

from __future__ import annotations

import functools
import tokenize
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape

from ..findings import VERSION, Finding, ModelReport, Report
from ..measurement import ProbeResult
from . import text
from .paths import relative
from .svg import Series, line_chart

CONTEXT_LINES = 2  # source lines shown above and below a finding's span

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px;
       color: #222; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ccc; }
h3 { font-size: 16px; margin-bottom: 4px; }
.summary, .meta { color: #555; }
.finding { border-left: 4px solid #888; padding: 4px 10px; margin: 10px 0; background: #fafafa; }
.finding.error { border-color: #c62828; } .finding.warning { border-color: #ef8f00; }
.finding.info { border-color: #1565c0; }
.code { font-weight: 600; } .where { font-family: monospace; color: #555; }
pre { background: #f3f3f3; padding: 6px 8px; overflow-x: auto; margin: 6px 0; }
pre .hit { background: #fff2b3; display: block; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg text { font: 11px system-ui, sans-serif; fill: #333; } svg .title { font-weight: 600; }
svg .frame { fill: none; stroke: #999; } svg .grid { stroke: #e3e3e3; }
.notes { color: #555; font-size: 13px; } .clean { color: #2e7d32; }
"""


@functools.lru_cache(maxsize=256)
def _source_lines(path: str) -> tuple[str, ...]:
    try:
        with tokenize.open(path) as fh:  # the encoding Python reads the file in
            return tuple(fh.read().splitlines())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return ()


def _snippet(f: Finding) -> str:
    """The lines a finding points at, with a little context, the span highlighted."""
    lines = _source_lines(f.path) if f.path and f.line else ()
    if not lines:
        return ""
    first, last = f.line, f.end_line or f.line
    start, stop = max(first - CONTEXT_LINES, 1), min(last + CONTEXT_LINES, len(lines))
    rows = []
    for number in range(start, stop + 1):
        row = f"{number:>5}  {escape(lines[number - 1])}"
        rows.append(f'<span class="hit">{row}</span>' if first <= number <= last else row + "\n")
    return "<pre>" + "".join(rows) + "</pre>"


def _finding(f: Finding) -> str:
    where = f"{relative(f.path)}:{f.line}:{f.column}" if f.path else "(no source location)"
    parts = [f'<div class="finding {f.severity}"><div><span class="code">{f.code}</span> '
             f'{f.severity} <span class="where">{escape(where)}</span> '
             f'<span class="meta">{escape(f.name)}'
             + (f" · {escape(f.module)}" if f.module else "") + "</span></div>",
             f"<p>{escape(f.text())}</p>", _snippet(f)]
    if f.fix:
        parts.append(f"<p><b>Fix ({escape(f.fix.applicability)}):</b> "
                     f"{escape(f.fix.description)}</p>")
        if f.fix.diff:
            parts.append(f"<pre>{escape(f.fix.diff)}</pre>")
    return "".join(parts) + "</div>"


def _gradient_chart(probe: ProbeResult) -> str:
    affine = [x for x in probe.layers if x.init.get("weight_grad")]
    depth = list(range(1, len(affine) + 1))
    series = [Series("measured at init", depth, [x.init["weight_grad"] for x in affine])]
    if any(x.predicted_grad is not None for x in affine):
        scale = affine[-1].init["weight_grad"]  # predictions are relative to the output layer
        series.append(Series("predicted", depth,
                             [x.predicted_grad * scale if x.predicted_grad is not None
                              else None for x in affine], dashed=True))
    return line_chart("Weight-gradient norm per affine layer", series, log_y=True,
                      x_label="affine layer (input → output)", y_label="||grad W||")


def _dead_chart(probe: ProbeResult) -> str:
    relu = [x for x in probe.layers if "dead" in x.init]
    index = list(range(1, len(relu) + 1))
    return line_chart("Dead ReLU units per layer",
                      [Series("at init", index, [x.init["dead"] for x in relu]),
                       Series(f"after {probe.steps} steps", index,
                              [x.final.get("dead") for x in relu], dashed=True)],
                      x_label="ReLU layer", y_label="fraction dead")


def _trajectory_charts(probe: ProbeResult) -> Iterable[str]:
    steps = [h.step for h in probe.history]
    yield line_chart("Loss over the probe's steps",
                     [Series("loss", steps, [h.loss for h in probe.history])],
                     x_label="step", y_label="loss")
    yield line_chart("First/last gradient ratio over the steps",
                     [Series("||grad W_first|| / ||grad W_last||", steps,
                             [h.grad_ratio for h in probe.history])],
                     log_y=True, x_label="step", y_label="ratio")


def _probe(model: ModelReport) -> str:
    probe = model.probe
    if probe is None:
        return ""
    line = text.probe_line(model) or ""
    charts = [_gradient_chart(probe)]
    if any("dead" in x.init for x in probe.layers):
        charts.append(_dead_chart(probe))
    charts.extend(_trajectory_charts(probe))
    return (f'<h4>Probe</h4><p class="meta">{escape(line.strip())}</p>'
            f'<div class="charts">{"".join(charts)}</div>')


def _model(model: ModelReport) -> str:
    parts = [f"<article><h3>{escape(model.name)}</h3>"]
    trace = model.trace
    traced = "torch.fx" if trace.get("ok") else f"hooks ({trace.get('coverage', 0):.0%} of " \
        "the parameters seen)"
    meta = [f"traced with {traced}"]
    if model.inputs:
        shapes = ", ".join("x".join(map(str, s)) for s in model.inputs.shapes)
        meta.append(f"inputs {shapes}: {model.inputs.how}")
    parts.append(f'<p class="meta">{escape("; ".join(meta))}</p>')
    if model.findings:
        parts.extend(_finding(f) for f in model.findings)
    else:
        parts.append('<p class="clean">No findings.</p>')
    parts.append(_probe(model))
    extra = text.note_lines(model) + text.suggestion_lines(model)
    if extra:
        parts.append('<pre class="notes">' + escape("\n".join(s.strip() for s in extra))
                     + "</pre>")
    return "".join(parts) + "</article>"


def html(report: Report) -> str:
    """The whole page."""
    summary = report.summary()
    by_file: dict[str, list[ModelReport]] = {}
    problems: dict[str, list[Finding]] = {}
    for f in sorted(report.file_findings, key=Finding.sort_key):
        problems.setdefault(f.path or "(no file)", []).append(f)
        by_file.setdefault(f.path or "(no file)", [])
    for model in report.models:
        by_file.setdefault(model.path or "(no file)", []).append(model)
    body = [f"<h1>bnlint report</h1><p class='summary'>{summary['findings']} finding(s): "
            f"{summary['error']} error, {summary['warning']} warning, {summary['info']} info "
            f"in {summary['models']} model(s) from {summary['files']} file(s). bnlint "
            f"{VERSION}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>"]
    for path, models in by_file.items():
        body.append(f"<section><h2>{escape(relative(path) or path)}</h2>"
                    + "".join(_finding(f) for f in problems.get(path, []))
                    + "".join(_model(m) for m in models) + "</section>")
    if report.errors:
        body.append("<section><h2>Errors</h2>" + "".join(
            f'<div class="finding error"><p>{escape(e.render())}</p></div>'
            for e in report.errors) + "</section>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>bnlint report</title><style>{_STYLE}</style></head><body>"
            + "".join(body) + "</body></html>\n")
