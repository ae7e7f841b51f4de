"""SARIF for GitHub code scanning: within its limits (25,000 results per run, 1,000 locations
per result, 10 MB gzipped; the most severe results kept and the run saying what was left
out), valid against the SARIF 2.1.0 schema, URIs percent-encoded, and columns counted in
characters for findings and fixes alike."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from urllib.parse import unquote

import jsonschema
from conftest import ROOT, run_cli

from bnlint.findings import Finding, ModelReport, Report
from bnlint.output import sarif
from bnlint.rules import catalog

RULES = catalog.load()
SCHEMA = json.loads((ROOT / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
CODES = {"error": "BNL401", "warning": "BNL101", "info": "BNL102"}


def _report(counts: dict[str, int], path: str = "models/net.py", message=lambda i: "") -> Report:
    """One model per 1,000 findings, severities interleaved (so a cut must pick, not slice)."""
    severities = [s for s, n in counts.items() for _ in range(n)]
    random.Random(0).shuffle(severities)
    findings = [Finding(CODES[s], RULES[CODES[s]].name, RULES[CODES[s]].category, s,
                        f"finding {i}. {message(i)}", path, i + 1, 5, f"layer{i}")
                for i, s in enumerate(severities)]
    return Report(models=[ModelReport(f"m{k}", path, 1, {}, findings[k:k + 1000])
                          for k in range(0, len(findings), 1000)], files=1)


def test_sarif_keeps_the_most_severe_25000_results_and_says_what_it_left_out():
    report = _report({"error": 1500, "warning": 6000, "info": 20000})
    text = sarif.sarif(report, RULES)
    doc = json.loads(text)
    run = doc["runs"][0]
    results = run["results"]
    # The schema, on every 50th result (all 25,000 take 17 s; they are made alike)
    jsonschema.validate({**doc, "runs": [{**run, "results": results[::50]}]}, SCHEMA)
    assert len(results) == sarif.MAX_RESULTS == 25_000
    assert Counter(r["level"] for r in results) == {"error": 1500, "warning": 6000,
                                                    "note": 17500}
    assert all(len(r["locations"]) <= 1000 for r in results)
    lines = [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in results]
    assert lines == sorted(lines)  # the kept results stay in report order
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["level"] for n in notes] == ["warning"]
    assert notes[0]["message"]["text"] == (
        "2500 results left out to stay within GitHub code scanning's limits (25000 results per "
        "run, 10 MB gzipped); the 25000 most severe are kept. Left out by level: note 2500; by "
        "rule: BNL102 2500.")
    assert len(gzip.compress(text.encode())) <= sarif.MAX_GZIP_BYTES


def test_sarif_drops_the_least_severe_results_to_fit_the_gzipped_size(monkeypatch):
    """Messages of random hex barely compress: at a 100 kB limit (GitHub's is 10 MB, which
    would take minutes to fill here) the infos go first, then warnings."""
    rng = random.Random(1)
    report = _report({"error": 20, "warning": 100, "info": 400},
                     message=lambda i: f"{rng.getrandbits(2000):0500x}")
    monkeypatch.setattr(sarif, "MAX_GZIP_BYTES", 100_000)
    text = sarif.sarif(report, RULES)
    size = len(gzip.compress(text.encode(), compresslevel=sarif.GZIP_LEVEL))
    doc = json.loads(text)
    jsonschema.validate(doc, SCHEMA)
    levels = Counter(r["level"] for r in doc["runs"][0]["results"])
    kept = sum(levels.values())
    assert size <= 100_000 and levels["error"] == 20 and 0 < kept < 520
    assert levels["note"] == 0 or levels["warning"] == 100  # infos dropped before warnings
    one_more = sarif.sarif(report, RULES)  # deterministic: the same cut again
    assert one_more == text
    note = doc["runs"][0]["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]
    assert note.startswith(f"{520 - kept} results left out") and f"the {kept} most severe" in note


def test_sarif_uris_are_percent_encoded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "my models/net #1 100% é.py"
    report = _report({"warning": 1}, path=name)
    outside = _report({"warning": 1}, path="/elsewhere/a b#é.py")
    for rep, uri in ((report, "my%20models/net%20%231%20100%25%20%C3%A9.py"),
                     (outside, "file:///elsewhere/a%20b%23%C3%A9.py")):
        doc = json.loads(sarif.sarif(rep, RULES))
        jsonschema.validate(doc, SCHEMA)
        location = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == uri
        assert unquote(uri).endswith(rep.models[0].findings[0].path)


def test_sarif_columns_count_characters_on_non_ascii_lines(write_model):
    """Python reports a call's columns in UTF-8 bytes; bnlint reports characters, as SARIF's
    columnKind says and as the fix's replacements count: the region starts at the call, and
    applying the fix by those columns puts bias=False inside it."""
    path = write_model("""
        import torch.nn as nn
        名前 = "réseau"; model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    """)
    doc = json.loads(run_cli(path, "--format", "sarif", "--no-probe").stdout)
    jsonschema.validate(doc, SCHEMA)
    run = doc["runs"][0]
    assert run["columnKind"] == "unicodeCodePoints"
    result = next(r for r in run["results"] if r["ruleId"] == "BNL102")
    line = path.read_text().splitlines()[1]
    region = result["locations"][0]["physicalLocation"]["region"]
    assert line[region["startColumn"] - 1:region["endColumn"] - 1] == "nn.Linear(4, 4)"
    change = result["fixes"][0]["artifactChanges"][0]["replacements"][0]
    at = change["deletedRegion"]["startColumn"] - 1
    assert line[:at] + change["insertedContent"]["text"] + line[at:] == line.replace(
        "nn.Linear(4, 4)", "nn.Linear(4, 4, bias=False)")
    text = run_cli(path, "--no-probe").stdout  # the text report gives the same column
    assert f"{path}:2:{region['startColumn']}: BNL102" in text


def test_sarif_of_an_empty_report_has_no_notification():
    doc = json.loads(sarif.sarif(Report(), RULES))
    jsonschema.validate(doc, SCHEMA)
    assert doc["runs"][0]["invocations"][0]["toolExecutionNotifications"] == []
