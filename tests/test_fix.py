"""Repairs: source patches (--diff / --fix) that apply, keep the rest of the file, verify and
roll back; and the graph repairs, checked for structure and measured effect."""

from __future__ import annotations

import dataclasses
import difflib
import io
import json
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from conftest import CLI_ENV, EXAMPLES, line_of, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from models import PreActResidual, bn_mlp

from bnlint import files, repair
from bnlint.api import probe
from bnlint.errors import InputError
from bnlint.findings import Finding, Fix, ModelReport, Replacement, Report
from bnlint.fixes import plan as apply_fixes
from bnlint.fixes import text as fix_text
from bnlint.fixes.plan import FilePatch, SourceFix
from bnlint.fixes.repairs import drop_bias
from bnlint.fixes.source import Parsed, Placed
from bnlint.model.traced import trace
from bnlint.nn import DepthLeakyReLU, ShapedActivation
from bnlint.rules.catalog import Edit

BROKEN = ["vgg_bn.py", "audio_cnn1d.py"]


@pytest.fixture
def examples_copy(tmp_path):
    (tmp_path / "examples").mkdir()
    for name in BROKEN:
        shutil.copy(EXAMPLES / name, tmp_path / "examples" / name)
    return tmp_path


def test_diff_applies_with_git_apply_and_patch(examples_copy):
    proc = run_cli("examples/", "--diff", "--unsafe-fixes", "--no-probe", cwd=examples_copy)
    assert proc.returncode == 1, proc.stderr
    diff = examples_copy / "fixes.diff"
    diff.write_text(proc.stdout)
    for name in BROKEN:
        assert f"+++ b/examples/{name}" in proc.stdout
    subprocess.run(["git", "apply", "--check", str(diff)], cwd=examples_copy, check=True)
    subprocess.run(["patch", "-p1", "--dry-run", "-i", str(diff)], cwd=examples_copy,
                   check=True, capture_output=True)
    subprocess.run(["patch", "-p1", "-i", str(diff)], cwd=examples_copy, check=True,
                   capture_output=True)
    after = run_cli("examples/", "--no-probe", "--format", "json", cwd=examples_copy)
    assert after.returncode in (0, 1), after.stderr  # the patched files import and build
    assert "BNL102" not in after.stdout and "BNL103" not in after.stdout


def test_fix_changes_only_the_flagged_lines_and_is_idempotent(examples_copy):
    originals = {n: (examples_copy / "examples" / n).read_text() for n in BROKEN}
    first = run_cli("examples/", "--fix", "--unsafe-fixes", "--no-probe", "--format", "json",
                    cwd=examples_copy)
    assert "Fixed 4 findings in 2 files." in first.stderr, first.stderr
    flagged = {"vgg_bn.py": ["nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)",
                             "nn.Linear(512, 512)"],
               "audio_cnn1d.py": ["self.bn1b = nn.BatchNorm1d(64)",
                                  "return F.relu(self.out(x))"]}
    fixed = {}
    for name, old in originals.items():
        fixed[name] = (examples_copy / "examples" / name).read_text()
        old_lines, new_lines = old.splitlines(keepends=True), fixed[name].splitlines(keepends=True)
        changed = [line for tag, i1, i2, _, _ in
                   difflib.SequenceMatcher(None, old_lines, new_lines).get_opcodes()
                   if tag != "equal" for line in old_lines[i1:i2]]
        assert len(changed) == len(flagged[name])
        assert all(any(s in line for s in flagged[name]) for line in changed), changed
    second = run_cli("examples/", "--fix", "--unsafe-fixes", "--no-probe", cwd=examples_copy)
    assert "Fixed 0 findings in 0 files." in second.stderr
    assert all((examples_copy / "examples" / n).read_text() == fixed[n] for n in BROKEN)


def test_safe_fix_leaves_unsafe_ones_alone(examples_copy):
    run_cli("examples/audio_cnn1d.py", "--fix", "--no-probe", cwd=examples_copy)
    assert "self.bn1b = nn.BatchNorm1d(64)" in (examples_copy / "examples" /
                                               "audio_cnn1d.py").read_text()


def test_fix_that_would_break_the_file_is_rolled_back(write_model):
    path = write_model("""
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3)  # the fix sets bias=False...
                self.bn = nn.BatchNorm2d(8)
                self.conv.bias.data.zero_()     # ...and this line then fails

            def forward(self, x):
                return self.bn(self.conv(x))
    """)
    before = path.read_bytes()
    proc = run_cli(path, "--fix", "--no-probe")
    warning = next(line for line in proc.stderr.splitlines() if "not applied" in line)
    assert f"{path}:{line_of(path, 'self.conv = ')}: BNL102 fix not applied, the patched file " \
           "fails" in warning and "AttributeError" in warning
    assert ".." not in warning and "--model" not in warning  # no hint about picking models
    assert path.read_bytes() == before
    assert "BNL102" in proc.stdout  # still reported


def test_a_fix_that_breaks_the_file_does_not_hold_back_the_others(write_model):
    path = write_model("""
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3)
                self.bn = nn.BatchNorm2d(8)
                self.conv.bias.data.zero_()  # fails once the conv has no bias
                self.conv2 = nn.Conv2d(8, 8, 3)
                self.bn2 = nn.BatchNorm2d(8)

            def forward(self, x):
                return self.bn2(self.conv2(self.bn(self.conv(x))))
    """)
    before = path.read_text()
    proc = run_cli(path, "--fix", "--no-probe", "--select", "BNL102")
    assert "Fixed 1 finding in 1 file." in proc.stderr, proc.stderr
    assert f"{path}:{line_of(path, 'self.conv = ')}: BNL102 fix not applied" in proc.stderr
    assert path.read_text() == before.replace("nn.Conv2d(8, 8, 3)",
                                              "nn.Conv2d(8, 8, 3, bias=False)")


def _finding(path, line: int) -> Finding:
    return Finding("BNL102", "bias-before-batchnorm", "structure", "info", "", str(path), line, 1,
                   None)


def test_failing_fixes_are_found_by_bisection_in_few_checks(tmp_path):
    """Eight fixes in one file, one of which breaks it, and a second file whose only fix
    breaks it: both files are checked in the same rounds, and few of them."""
    paths, patches = [tmp_path / "a.py", tmp_path / "b.py"], []
    for path, n in zip(paths, (8, 1)):
        path.write_text("".join(f"c{i} = nn.Conv2d(1, 1, 1)\n" for i in range(n)))
        fixes = [SourceFix((Replacement(str(path), i + 1, 23, i + 1, 23, ", bias=False"),),
                           [_finding(path, i + 1)]) for i in range(n)]
        patches.append(FilePatch(str(path), path.read_text(), "utf-8", [], {"m"}).keeping(fixes))
    calls = []

    def check(sources):  # line c5 of a.py and c0 of b.py fail with bias=False
        calls.append(sorted(sources))
        return {p: InputError("boom.", p, 1) if "c5 = nn.Conv2d(1, 1, 1, bias=False)" in text
                or (text.startswith("c0 = nn.Conv2d(1, 1, 1, bias=False)") and p.endswith("b.py"))
                else ["m"] for p, text in sources.items()}

    kept, warnings = apply_fixes.verify(patches, check)
    assert [p.path for p in kept] == [str(paths[0])]
    assert kept[0].new.count("bias=False") == 7 and "c5 = nn.Conv2d(1, 1, 1)\n" in kept[0].new
    assert sorted((w.path, w.line) for w in warnings) == [(str(paths[0]), 6), (str(paths[1]), 1)]
    assert all("BNL102 fix not applied, the patched file fails" in w.message for w in warnings)
    assert calls[0] == sorted(map(str, paths)) and len(calls) <= 1 + 2 * 3


@pytest.mark.parametrize("call,name", [
    ("nn.Conv2d(16, 16, **CONV_CFG)", "bias"),      # the dict may hold bias=...
    ("nn.Conv2d(16, 16, 3, *more)", "bias"),        # so may the *args
    ("F.batch_norm(x, None, None)", "affine"),      # not a module: no such keyword
])
def test_keyword_edit_refuses_calls_it_cannot_set_safely(call, name):
    text = f"y = {call}\n"
    edit = Placed(Edit("set_kwarg", name=name, value="False"), "m.py",
                  (1, 5, 1, 5 + len(call)), position=7)
    with pytest.raises(InputError):
        Parsed("m.py", text).replacements(edit)


@pytest.mark.parametrize("call", ["nn.Conv2d(*shape, bias=True)",
                                  "nn.Conv2d(1, 2, 3, 1, 0, 1, 1, True, **CFG)"])
def test_keyword_edit_replaces_an_argument_given_beside_star_args(call):
    text = f"y = {call}\n"
    edit = Placed(Edit("set_kwarg", name="bias", value="False"), "m.py",
                  (1, 5, 1, 5 + len(call)), position=7)
    replacements = Parsed("m.py", text).replacements(edit)
    assert fix_text.Text(text).apply(replacements) == text.replace("True", "False")


def test_finding_on_a_call_with_kwargs_is_not_marked_fixable(write_model):
    path = write_model("""
        import torch.nn as nn

        CONV_CFG = dict(kernel_size=3, bias=True)
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                              nn.Conv2d(8, 8, **CONV_CFG), nn.BatchNorm2d(8))
    """)
    proc = run_cli(path, "--no-probe", "--select", "BNL102", "--input-shape", "2,3,8,8")
    lines = {line.split(":")[1]: line for line in proc.stdout.splitlines() if "BNL102" in line}
    assert "[*]" in lines[str(line_of(path, "nn.Conv2d(3, 8, 3)"))]
    assert "[*]" not in lines[str(line_of(path, "**CONV_CFG"))]
    report = json.loads(run_cli(path, "--no-probe", "--select", "BNL102", "--input-shape",
                                "2,3,8,8", "--format", "json").stdout)
    fix = next(f["fix"] for f in report["models"][0]["findings"]
               if f["line"] == line_of(path, "**CONV_CFG"))
    assert fix["applicability"] == "display-only" and fix["diff"] is None
    assert ("(Not patched: the call's *args or **kwargs may already pass bias.)"
            in fix["description"])


def test_bias_stays_when_another_fix_removes_the_batchnorm_after_it(write_model):
    path = write_model("""
        import torch.nn as nn

        class Head(nn.Module):
            def __init__(self, width=16):
                super().__init__()
                self.fc = nn.Linear(4, width)
                self.fc_bn = nn.BatchNorm1d(width)
                self.out = nn.Linear(width, 8)
                self.out_bn = nn.BatchNorm1d(8)

            def forward(self, x):
                return self.out_bn(self.out(self.fc_bn(self.fc(x)).relu()))
    """)
    proc = run_cli(path, "--diff", "--unsafe-fixes", "--no-probe")
    assert proc.returncode == 1, proc.stderr
    changed = [line[1:].strip() for line in proc.stdout.splitlines()
               if line.startswith(("-  ", "+  "))]
    assert sorted(changed) == sorted([
        "self.fc = nn.Linear(4, width)", "self.fc = nn.Linear(4, width, bias=False)",
        "self.out_bn = nn.BatchNorm1d(8)", "self.out_bn = nn.Identity()"])
    assert f"{path}:{line_of(path, 'self.out =')}: BNL102 fix not applied, the BNL105 fix " \
           "removes out_bn, which it relies on." in proc.stderr


def test_fix_keeps_crlf_newlines_and_a_missing_final_newline(tmp_path):
    path = tmp_path / "model.py"
    before = (b"import torch.nn as nn\r\n\r\n# keep me\r\n"
              b"model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))")
    path.write_bytes(before)
    proc = subprocess.run([sys.executable, "-m", "bnlint", "model.py", "--diff", "--no-probe"],
                          cwd=tmp_path, capture_output=True, env=CLI_ENV)  # bytes: CRs kept
    assert proc.returncode == 1, proc.stderr
    (tmp_path / "fix.diff").write_bytes(proc.stdout)
    subprocess.run(["git", "apply", "--check", "fix.diff"], cwd=tmp_path, check=True)
    subprocess.run(["patch", "-p1", "--dry-run", "-i", "fix.diff"], cwd=tmp_path, check=True,
                   capture_output=True)
    run_cli("model.py", "--fix", "--no-probe", cwd=tmp_path)
    assert path.read_bytes() == before.replace(b"nn.Linear(4, 4)", b"nn.Linear(4, 4, bias=False)")


@pytest.mark.parametrize("raw", [
    b"\xef\xbb\xbfx = nn.Linear(4, 4)  # BOM\r\n",
    "# -*- coding: latin-1 -*-\nx = nn.Linear(4, 4)  # caf\u00e9\n".encode("latin-1"),
])
def test_patched_file_keeps_its_encoding_and_newlines(tmp_path, raw):
    path = tmp_path / "m.py"
    path.write_bytes(raw)
    text, encoding = fix_text.read(str(path))
    files.write_atomic(str(path), text.replace("4)", "4, bias=False)"), encoding)
    assert path.read_bytes() == raw.replace(b"4)", b"4, bias=False)")


def test_a_line_two_models_report_is_fixed_and_counted_once(write_model):
    path = write_model("""
        import torch.nn as nn

        def make_small_cnn(width=8):
            return nn.Sequential(nn.Conv2d(3, width, 3), nn.BatchNorm2d(width), nn.ReLU())

        model = make_small_cnn(16)
    """)
    proc = run_cli(path, "--fix", "--no-probe", "--input-shape", "2,3,8,8")
    assert "Fixed 1 finding in 1 file." in proc.stderr, proc.stderr
    assert "nn.Conv2d(3, width, 3, bias=False)" in path.read_text()


def test_summary_counts_a_fixable_line_once_across_models():
    fix = Fix("safe", "Set bias=False.", diff="--- a/m.py\n")
    report = Report(models=[ModelReport(name, "m.py", 1, {}, [
        dataclasses.replace(_finding("m.py", 5), module="0", fix=fix)]) for name in "ab"])
    assert report.summary()["findings"] == 2 and report.summary()["fixable"] == 1


def test_input_error_has_one_final_period():
    exc = ValueError("The file holds pickled data.")
    error = InputError(f"cannot read targets: {exc}.", hint="Check it...")  # as messages embed it
    assert error.render() == "cannot read targets: The file holds pickled data. Check it..."


def test_fix_keeps_file_permissions(write_model):
    path = write_model("""
        import torch.nn as nn
        model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    """)
    path.chmod(0o640)
    run_cli(path, "--fix", "--no-probe")
    assert "bias=False" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_file_is_parsed_once_for_all_its_fixable_findings(tmp_path, monkeypatch):
    """Two models built by one factory, each with 60 fixable findings (a bias before
    BatchNorm, on 60 lines): libcst parses the file once, not once per finding (120)."""
    import libcst

    from bnlint.config import Config
    from bnlint.engine import lint
    from bnlint.model import sites

    path = tmp_path / "many.py"
    source = ("import torch.nn as nn\n\n\ndef make(width):\n    return nn.Sequential(\n"
              + "        nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),\n" * 60
              + "    )\n")
    path.write_text(source)
    scope: dict = {}
    with sites.recording():
        exec(compile(source, str(path), "exec"), scope)
        models = {width: scope["make"](width) for width in (8, 16)}
    parses = []
    parse = libcst.parse_module
    monkeypatch.setattr(libcst, "parse_module", lambda *a, **k: parses.append(1) or parse(*a, **k))
    fixable = 0
    for width, model in models.items():
        report = lint(model, torch.randn(4, width), config=Config(probe=False, select=["BNL102"]),
                      name="make", path=str(path), line=4)
        fixable += sum(bool(f.fix.replacements) for f in report.findings)
    assert fixable == 120
    assert len(parses) <= 2  # one per file and run


# ------------------------------------------------------- replacements, merged and rendered


def _edit(text: str, *placed: Placed) -> str:
    """``text`` with the placed edits made (the file is "m.py")."""
    parsed = Parsed("m.py", text)
    return fix_text.Text(text).apply(fix_text.merge(r for p in placed
                                                    for r in parsed.replacements(p)))


def _kwarg(name: str, value: str, span: tuple[int, int, int, int]) -> Placed:
    return Placed(Edit("set_kwarg", name=name, value=value), "m.py", span)


@pytest.mark.parametrize("call,after", [
    ("nn.BatchNorm1d(8)", "nn.BatchNorm1d(8, affine=True, track_running_stats=True)"),
    ("nn.BatchNorm1d(\n    8,\n)", "nn.BatchNorm1d(\n    8,\n    affine=True,\n    "
                                   "track_running_stats=True,\n)"),
    ("nn.BatchNorm1d(8,\n               eps=1e-3)", "nn.BatchNorm1d(8,\n               eps=1e-3,"
                                                 "\n               affine=True,\n      "
                                                 "         track_running_stats=True)"),
])
def test_two_keywords_appended_to_one_call_merge_into_one_replacement(call, after):
    text = f"y = {call}\n"
    lines = call.split("\n")
    span = (1, 5, len(lines), (5 if len(lines) == 1 else 1) + len(lines[-1]))
    parsed = Parsed("m.py", text)
    made = [r for name in ("affine", "track_running_stats")
            for r in parsed.replacements(_kwarg(name, "True", span))]
    merged = fix_text.merge(made)
    assert len(made) == 2 and len(merged) == 1
    assert fix_text.Text(text).apply(merged) == f"y = {after}\n"


def test_overlapping_replacements_are_refused_and_a_plan_leaves_one_out(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("bn = nn.BatchNorm1d(8, affine=False)\n")
    remove = Replacement(str(path), 1, 6, 1, 37, "nn.Identity()")
    affine = Replacement(str(path), 1, 31, 1, 36, "True")
    with pytest.raises(fix_text.OverlapError):
        fix_text.merge([remove, affine])
    findings = [dataclasses.replace(_finding(path, 1), code=code, fix=Fix("unsafe", "", (r,)))
                for code, r in (("BNL103", remove), ("BNL107", affine))]
    report = Report(models=[ModelReport("m", str(path), 1, {}, findings)])
    patches, warnings = apply_fixes.plan(report, {}, unsafe=True)
    assert patches[0].new == "bn = nn.Identity()\n"
    assert [w.message for w in warnings] == [
        "BNL107 fix not applied, the BNL103 fix changes the same code."]


def test_the_same_import_is_added_once_and_two_wraps_keep_their_parentheses(tmp_path):
    text = "import torch.nn as nn\nmodel = nn.Linear(2, 2)\n"
    parsed = Parsed("m.py", text)
    wraps = [parsed.replacements(Placed(Edit("call_after_build", function=f"bnlint.repair.{f}"),
                                        "m.py", model="model"))
             for f in ("he_init", "orthogonal_init")]
    assert fix_text.Text(text).apply(fix_text.merge([*wraps[0], *wraps[1]])) == (
        "import torch.nn as nn\nimport bnlint.repair\n"
        "model = bnlint.repair.he_init(bnlint.repair.orthogonal_init(nn.Linear(2, 2)))\n")


@pytest.mark.parametrize("before,after", [
    # a class: the call ends __init__, before its trailing comment, in the file's newlines
    ('"""Doc."""\r\nfrom __future__ import annotations\r\nimport torch.nn as nn\r\n\r\n'
     "class Net(nn.Module):\r\n    def __init__(self):\r\n        super().__init__()\r\n"
     "        if True:\r\n            self.fc = nn.Linear(2, 2)  # keep\r\n"
     "        # a trailing comment\r\n\r\n    def forward(self, x):\r\n"
     "        return self.fc(x)\r\n",
     '"""Doc."""\r\nfrom __future__ import annotations\r\nimport torch.nn as nn\r\n'
     "import bnlint.repair\r\n\r\n"
     "class Net(nn.Module):\r\n    def __init__(self):\r\n        super().__init__()\r\n"
     "        if True:\r\n            self.fc = nn.Linear(2, 2)  # keep\r\n"
     "        bnlint.repair.he_init(self)\r\n"
     "        # a trailing comment\r\n\r\n    def forward(self, x):\r\n"
     "        return self.fc(x)\r\n"),
    # a factory: every return of its own, not a nested function's; no final newline
    ("import torch.nn as nn\ndef Net(deep=False):\n    def inner():\n        return 1\n"
     "    if deep:\n        return (nn.Sequential(nn.Linear(2, 2)))\n"
     "    return nn.Linear(2, 2)",
     "import torch.nn as nn\nimport bnlint.repair\ndef Net(deep=False):\n    def inner():\n"
     "        return 1\n    if deep:\n"
     "        return (bnlint.repair.he_init(nn.Sequential(nn.Linear(2, 2))))\n"
     "    return bnlint.repair.he_init(nn.Linear(2, 2))"),
    # already done: nothing to change
    ("import bnlint.repair\nNet = bnlint.repair.he_init(Linear(2, 2))\n", None),
])
def test_call_after_build_keeps_the_file_as_it_is_around_it(before, after):
    placed = Placed(Edit("call_after_build", function="bnlint.repair.he_init"), "m.py",
                    model="Net")
    assert _edit(before, placed) == (after or before)


@pytest.mark.parametrize("call,after", [
    ("nn.ReLU(inplace=True)", "nn.Identity()"),
    ("ReLU()", "Identity()"),
    ("F.relu(self.fc(x), inplace=True)", "self.fc(x)"),
    ("F.relu(x + 1)", "(x + 1)"),
    ("(x + 1).relu()", "(x + 1)"),
])
def test_remove_op_leaves_the_identity(call, after):
    text = f"y = {call} * 2\n"
    placed = Placed(Edit("remove_op"), "m.py", (1, 5, 1, 5 + len(call)))
    assert _edit(text, placed) == f"y = {after} * 2\n"


def test_a_call_is_found_by_the_byte_columns_python_reports():
    text = "s = 'é'; y = nn.Linear(2, 2)\n"  # 'é' is 2 bytes: the call is at byte 15, char 14
    start = text.encode().index(b"nn.Linear") + 1
    placed = _kwarg("bias", "False", (1, start, 1, start + len("nn.Linear(2, 2)")))
    assert _edit(text, placed) == "s = 'é'; y = nn.Linear(2, 2, bias=False)\n"
    assert Parsed("m.py", text).replacements(placed)[0].col == text.index(")") + 1  # chars


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_the_diff_of_replacements_is_difflibs(data):
    """Replacements on a file of distinct lines, rendered as a unified diff, give what difflib
    gives for the same old and new text (newlines "\n" or "\r\n", a last line with or
    without one)."""
    n = data.draw(st.integers(1, 25))
    newline = data.draw(st.sampled_from(["\n", "\r\n"]))
    end = data.draw(st.sampled_from([newline, ""]))
    old = newline.join(f"line {i} = f({i})" for i in range(n)) + end
    text = fix_text.Text(old)
    chosen = sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=6)))
    replacements = []
    for k, i in enumerate(chosen):
        kind = data.draw(st.sampled_from(["arg", "insert line", "delete line"]))
        if kind == "arg":  # "f(i)" -> "f(i, new k)"
            col = len(f"line {i} = f({i}") + 1
            replacements.append(Replacement("m.py", i + 1, col, i + 1, col, f", new{k}"))
        elif kind == "insert line":
            replacements.append(Replacement("m.py", i + 1, 1, i + 1, 1, f"added {k}{newline}"))
        elif i + 1 < len(text.starts):  # a whole line with its newline
            replacements.append(Replacement("m.py", i + 1, 1, i + 2, 1, ""))
    new = text.apply(replacements)
    expected = "".join(
        line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n"
        for line in difflib.unified_diff(*(io.StringIO(t, newline="\n").readlines()
                                           for t in (old, new)), "a/m.py", "b/m.py"))
    assert text.diff("m.py", replacements) == expected


# ---------------------------------------------------------------- graph repairs


def test_relu_chain_of_50_is_shaped_into_depth_leaky_relus():
    torch.manual_seed(0)
    model, x = bn_mlp(50, 128), torch.randn(64, 128)
    before = probe(model, x, steps=0, budget=3).grad_ratio
    repair.shape_activations(model)
    slopes = [m.negative_slope for m in model if isinstance(m, DepthLeakyReLU)]
    assert len(slopes) == 49 and slopes[0] == 0.0 and slopes == sorted(slopes)
    after = probe(model, x, steps=0, budget=3).grad_ratio
    print(f"BN-ReLU depth 50: {before:.3g} -> {after:.3g}")
    assert before > 1e3 and after < 70


def test_tanh_chain_of_200_gets_layer_gains():
    torch.manual_seed(0)
    model, x = bn_mlp(200, 64, nn.Tanh), torch.randn(64, 64)
    before = probe(model, x, steps=0, budget=3).grad_ratio
    repair.shape_activations(model)
    gains = [m.gain for m in model if isinstance(m, ShapedActivation)]
    assert gains[0] == 1.0 and gains[9] == pytest.approx(10 ** -0.4)
    after = probe(model, x, steps=0, budget=3).grad_ratio
    print(f"BN-tanh depth 200: {before:.3g} -> {after:.3g}")
    assert before > 1e5 and after < 10


def test_zero_init_residual_makes_blocks_identity():
    torch.manual_seed(0)
    model, x = PreActResidual(), torch.randn(64, 64)
    before = probe(model, x, steps=0, budget=3).act_grad_ratio
    repair.zero_init_residual(model)
    assert all(float(b[6].weight.detach().abs().max()) == 0 and
               float(b[3].weight.detach().min()) == 1 for b in model.blocks)
    after = probe(model, x, steps=0, budget=3).act_grad_ratio
    print(f"residual act-gradient ratio: {before:.3g} -> {after:.3g}")
    assert after == pytest.approx(1.0, rel=1e-4) and before > 2


def test_drop_bias_keeps_the_function_in_train_and_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    x = torch.randn(16, 3, 8, 8)
    for _ in range(3):  # give the running statistics some history
        model(torch.randn(16, 3, 8, 8) + 2)
    graph = trace(model)
    fixed = trace(model).gm
    rewrite = drop_bias(graph, fixed, ["0"])
    assert rewrite.preserves_function and fixed.get_submodule("0").bias is None
    for mode in ("train", "eval"):
        getattr(model, mode)()
        getattr(fixed, mode)()
        with torch.no_grad():
            torch.testing.assert_close(fixed(x), model(x), atol=1e-5, rtol=1e-5)


def test_he_init_keeps_the_forward_scale_of_an_unnormalised_relu_stack():
    torch.manual_seed(0)
    layers = []
    for _ in range(20):
        layers += [nn.Linear(256, 256), nn.ReLU()]
    model, x = nn.Sequential(*layers, nn.Linear(256, 10)), torch.randn(128, 256)

    def rms_ratio():
        with torch.no_grad():
            h = model[:-2](x)  # output of the last hidden layer (before its ReLU)
        return float(h.pow(2).mean().sqrt() / x.pow(2).mean().sqrt())

    shrunk = rms_ratio()
    repair.he_init(model)
    kept = rms_ratio()
    print(f"forward RMS ratio over 19 layers: default {shrunk:.3g}, He {kept:.3g}")
    assert shrunk < 0.1 and 0.2 < kept < 5  # default init: the bias alone keeps it from 0


def test_fix_api_repairs_a_copy_and_reports_before_and_after():
    import bnlint
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    x = torch.randn(32, 8)
    fixed, report = bnlint.fix(model, x, steps=2, budget=5)
    assert model[0].bias is not None  # the user's model is untouched
    assert fixed.get_submodule("0").bias is None
    assert [r.repair for r in report.rewrites] == ["drop_bias"] and report.preserves_function
    assert report.before["grad_ratio"] is not None and report.after["grad_ratio"] is not None
    assert "drop_bias (keeps the function)" in str(report)
    assert report.findings == ["BNL102"]  # the finding repaired, not every finding


def test_fix_api_probes_with_the_configs_settings():
    import bnlint
    from bnlint.config import Config
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    config = Config(probe_steps=3, probe_budget=5)
    _, report = bnlint.fix(model, torch.randn(32, 8), config=config)
    assert report.before["steps"] == report.after["steps"] == 3
    _, report = bnlint.fix(model, torch.randn(32, 8), config=config, steps=1)
    assert report.before["steps"] == 1  # keyword options win over the config


@pytest.mark.parametrize("depth,act,width,before_above,after_below", [
    (50, nn.ReLU, 128, 1e3, 70),     # DepthLeakyReLU, docs/SCIENCE.md §2
    (200, nn.Tanh, 64, 1e5, 10),     # ShapedActivation, Meterez et al. arXiv:2310.02012
])
def test_fix_api_shapes_a_deep_plain_chain(depth, act, width, before_above, after_below):
    import bnlint
    torch.manual_seed(0)
    model, x = bn_mlp(depth, width, act), torch.randn(64, width)
    fixed, report = bnlint.fix(model, x, steps=0, budget=5)
    assert [r.repair for r in report.rewrites] == ["drop_bias", "shape_activations"]
    assert not report.preserves_function
    shaped = (DepthLeakyReLU, ShapedActivation)
    assert sum(isinstance(m, shaped) for m in fixed.modules()) == depth - 1
    print(f"depth {depth} {act.__name__}: {report.before['grad_ratio']:.3g} -> "
          f"{report.after['grad_ratio']:.3g}")
    assert report.before["grad_ratio"] > before_above
    assert report.after["grad_ratio"] < after_below


def test_fix_api_zero_inits_residual_branches():
    import bnlint
    torch.manual_seed(0)
    model, x = PreActResidual(depth=30), torch.randn(64, 64)
    fixed, report = bnlint.fix(model, x, steps=0, budget=5)
    assert "zero_init_residual" in [r.repair for r in report.rewrites]
    assert all(float(fixed.get_submodule(f"blocks.{i}.6").weight.detach().abs().max()) == 0
               for i in range(30))
    print(f"residual act-gradient ratio: {report.before['act_grad_ratio']:.3g} -> "
          f"{report.after['act_grad_ratio']:.3g}")
    assert report.after["act_grad_ratio"] == pytest.approx(1.0, rel=1e-4)
    assert report.before["act_grad_ratio"] > 2


def test_fix_api_standardises_regression_targets_and_drops_the_final_relu():
    import bnlint
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 1), nn.ReLU())
    x = torch.linspace(-3, 3, 64).unsqueeze(1)
    y = 1e-3 * torch.sin(2 * x)
    fixed, report = bnlint.fix(model, x, y, probe=False)
    assert isinstance(fixed.get_submodule("3"), nn.Identity)
    z = report.standardizer(y)
    assert float(z.mean().abs()) < 1e-5 and float(z.std()) == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(report.standardizer.inverse(z), y)
