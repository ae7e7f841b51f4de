"""The rule catalog: every rule's YAML is complete, its VALID/INVALID cases behave, the README
table lists exactly the rules, and broken rule files are refused with a located message."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from bnlint.errors import InputError
from bnlint.rules import catalog
from bnlint.rules.registry import finder
from bnlint.testing import case_fires

RULES = catalog.load()
CASES = [(code, kind, i) for code, rule in RULES.items()
         for kind in ("valid", "invalid") for i in range(len(rule.tests.get(kind, [])))]


def test_every_rule_has_a_finder_cases_and_references():
    for code, rule in RULES.items():
        assert finder(rule) is not None, code
        assert rule.tests.get("valid") and rule.tests.get("invalid"), f"{code} needs cases"
        assert rule.references, code
        assert rule.path.endswith(f"{code}.yaml"), "one file per rule, named by its code"


@pytest.mark.parametrize("code,kind,index", CASES, ids=[f"{c}-{k}{i}" for c, k, i in CASES])
def test_rule_case(code, kind, index):
    rule = RULES[code]
    fires = case_fires(rule, rule.tests[kind][index], RULES)
    assert fires == (kind == "invalid"), f"{code} {kind} case {index}: fired={fires}"


def test_readme_rule_table_matches_catalog():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (BNL\d{3}) \| `([a-z0-9-]+)` \| ([^|]+) \|", readme, re.M)
    assert [(c, n, s) for c, n, s in rows] == [(r.code, r.name, r.severity_label())
                                              for r in RULES.values()]


@pytest.mark.parametrize("text,complaint", [
    ("code: BNL1\nname: x", "missing keys"),
    ("- a\n- b", "mapping"),
    ("code: [unclosed", "invalid YAML"),
])
def test_broken_rule_file_is_refused(tmp_path, text, complaint):
    (tmp_path / "BNL199.yaml").write_text(text)
    with pytest.raises(InputError) as info:
        catalog.load(str(tmp_path))
    assert complaint in info.value.message
    assert info.value.path.endswith("BNL199.yaml")


def test_user_rule_without_pattern_or_finder_is_refused(tmp_path):
    src = (ROOT / "bnlint" / "rules" / "BNL105.yaml").read_text()
    (tmp_path / "BNL199.yaml").write_text(
        src.replace("BNL105", "BNL199").replace("batchnorm-on-output", "my-rule"))
    rules = catalog.load(str(tmp_path))
    with pytest.raises(InputError, match="BNL199 has no pattern"):
        case_fires(rules["BNL199"], rules["BNL199"].tests["valid"][0], rules)


def test_user_pattern_rule_runs(tmp_path):
    src = (ROOT / "bnlint" / "rules" / "BNL103.yaml").read_text()
    (tmp_path / "BNL198.yaml").write_text(
        src.replace("BNL103", "BNL198").replace("batchnorm-after-batchnorm", "bn-after-bn-2"))
    rules = catalog.load(str(tmp_path))
    rule = rules["BNL198"]
    assert case_fires(rule, rule.tests["invalid"][0], rules)
    assert not case_fires(rule, rule.tests["valid"][0], rules)


def test_duplicate_code_is_refused(tmp_path):
    (tmp_path / "dup.yaml").write_text((ROOT / "bnlint" / "rules" / "BNL101.yaml").read_text())
    with pytest.raises(InputError, match="duplicate rule BNL101"):
        catalog.load(str(tmp_path))
