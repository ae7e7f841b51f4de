"""The rule catalog: every rule's YAML is complete, its VALID/INVALID cases behave (and pin the
module, message and fixed source they give), the README table lists exactly the rules, and
broken rule files are refused with a located message."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from bnlint.errors import InputError
from bnlint.rules import catalog
from bnlint.rules.registry import finder
from bnlint.testing import case_fires, check_case

RULES = catalog.load()
CASES = [(code, kind, i) for code, rule in RULES.items()
         for kind in ("valid", "invalid") for i in range(len(rule.tests.get(kind, [])))]


def test_every_rule_has_a_finder_cases_and_references():
    for code, rule in RULES.items():
        assert finder(rule) is not None or rule.found_by == "discovery", code
        assert rule.tests.get("valid") and rule.tests.get("invalid"), f"{code} needs cases"
        assert rule.references, code
        assert rule.path.endswith(f"{code}.yaml"), "one file per rule, named by its code"


@pytest.mark.parametrize("code,kind,index", CASES, ids=[f"{c}-{k}{i}" for c, k, i in CASES])
def test_rule_case(code, kind, index):
    rule = RULES[code]
    try:
        check_case(rule, kind, rule.tests[kind][index], RULES)
    except AssertionError as exc:
        pytest.fail(f"{code} {kind} case {index}: {exc}")


def test_every_rule_pins_its_message_and_every_source_fix_its_result():
    for code, rule in RULES.items():
        keys = [set(c) for c in rule.tests["invalid"]]
        assert any("message" in k for k in keys), f"{code}: no invalid case pins a message"
        if rule.fix and rule.fix.edit:
            assert any({"module", "message", "fixed"} <= k for k in keys), \
                f"{code}: no invalid case pins module, message and fixed source"


@pytest.mark.parametrize("pin,wrong,complaint", [
    ("module", "1", "names ['0'], not 1"),
    ("message", "no such words", "no message holds 'no such words'"),
    ("fixed", "model = nn.Identity()\n", "the fix gives"),
])
def test_a_case_that_pins_the_wrong_result_fails(pin, wrong, complaint):
    rule = RULES["BNL102"]
    case = {**rule.tests["invalid"][0], pin: wrong}
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        check_case(rule, "invalid", case, RULES)


def test_a_case_pins_fixed_only_for_a_rule_with_an_edit(tmp_path):
    src = (ROOT / "bnlint" / "rules" / "BNL101.yaml").read_text()  # ends in an invalid case
    for extra, complaint in (
            ("      fixed: x\n", "only for a rule whose fix has an edit"),
            ("      modul: x\n", "unknown keys ['modul'] in a tests.invalid case")):
        (tmp_path / "BNL199.yaml").write_text(src.replace("BNL101", "BNL199").replace(
            "dropout-before-batchnorm", "my-rule") + extra)
        with pytest.raises(InputError, match=re.escape(complaint)):
            catalog.load(str(tmp_path))


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
