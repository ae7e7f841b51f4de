"""--format html: one self-contained page (nothing fetched, no script) with the findings, the
source lines they point at, the inputs used and the probe's charts; rendered by a real browser
in a slow test."""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import pytest
from conftest import EXAMPLES, line_of, run_cli


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    proc = run_cli(EXAMPLES / "vgg_bn.py", "--format", "html", "--output-file", out,
                   "--probe-steps", "2", "--probe-budget", "20")
    assert proc.returncode == 1, proc.stderr
    return out.read_text()


def test_page_is_self_contained(page):
    assert page.startswith("<!doctype html>")
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page), "nothing may be fetched"
    assert "@import" not in page and "url(" not in page


def test_page_shows_findings_with_their_source_lines(page):
    line = line_of(EXAMPLES / "vgg_bn.py", "nn.Dropout(0.5)")
    assert "BNL101" in page and "BNL102" in page
    hit = re.search(r'<span class="hit">\s*(\d+)  ([^<]*)</span>', page)
    assert hit, "the finding's line is highlighted"
    assert f'<span class="hit">{line:>5}  ' in page  # the dropout line BNL101 points at
    assert "inferred: 3 channels, from the first layer" in page  # how the inputs were chosen


def test_page_has_the_probe_charts(page):
    charts = [html.unescape(label)
              for label in re.findall(r'<svg [^>]*aria-label="([^"]+)"', page)]
    assert "Weight-gradient norm per affine layer" in charts
    assert "Loss over the probe's steps" in charts
    assert page.count("<polyline") >= 3


def test_text_from_the_model_is_escaped(tmp_path, write_model):
    path = write_model("""
        import torch.nn as nn
        # <b>not bold</b>
        model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.BatchNorm1d(4))
    """, name="m_<x>.py")
    out = tmp_path / "r.html"
    proc = run_cli(path, "--format", "html", "-o", out, "--no-probe")
    assert proc.returncode == 1, proc.stderr
    page = out.read_text()
    assert "m_&lt;x&gt;.py" in page and "<b>not bold</b>" not in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_page_renders_in_headless_chromium_without_errors(page, tmp_path):
    """The page loads in a real browser with no console error, and the screenshot shows the
    charts: their line colour covers a visible area."""
    import matplotlib.image

    from bnlint.output.svg import COLOURS
    saved = tmp_path / "report.html"
    saved.write_text(page)
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
         "--v=0", "--window-size=1280,4000", f"--screenshot={shot}", saved.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    pixels = matplotlib.image.imread(shot)[..., :3]
    blue = tuple(int(COLOURS[0][i:i + 2], 16) / 255 for i in (1, 3, 5))
    near = (abs(pixels - blue) < 0.08).all(axis=-1)
    assert near.sum() > 500, "the charts' lines are visible"
