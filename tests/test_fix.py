"""Repairs: source patches (--diff / --fix) that apply, keep the rest of the file, verify and
roll back; and the graph repairs, checked for structure and measured effect."""

from __future__ import annotations

import dataclasses
import difflib
import io
import json
import re
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from conftest import CLI_ENV, EXAMPLES, ROOT, line_of, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from models import PreActResidual, bn_mlp

from bnlint import files, repair
from bnlint.api import probe
from bnlint.errors import InputError
from bnlint.findings import Finding, Fix, ModelReport, Report
from bnlint.fixes import plan as apply_fixes
from bnlint.fixes import text as fix_text
from bnlint.fixes.plan import FilePatch, SourceFix
from bnlint.fixes.repairs import drop_bias
from bnlint.fixes.source import Parsed, Placed
from bnlint.fixes.written import Code, Form
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
        text = fix_text.Text(path.read_text())
        fixes = [SourceFix((text.made(str(path), i + 1, 23, i + 1, 23, ", bias=False"),),
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
    text = fix_text.Text(path.read_text())
    remove = text.made(str(path), 1, 6, 1, 37, "nn.Identity()")
    affine = text.made(str(path), 1, 31, 1, 36, "True")
    with pytest.raises(fix_text.OverlapError):
        fix_text.merge([remove, affine])
    findings = [dataclasses.replace(_finding(path, 1), code=code, fix=Fix("unsafe", "", (r,)))
                for code, r in (("BNL103", remove), ("BNL107", affine))]
    report = Report(models=[ModelReport("m", str(path), 1, {}, findings)])
    patches, warnings = apply_fixes.plan(report, {}, unsafe=True)
    assert patches[0].new == "bn = nn.Identity()\n"
    assert [w.message for w in warnings] == [
        "BNL107 fix not applied, the BNL103 fix changes the same code."]


# A repair's code, as bnlint.fixes.written makes it: a loop over the model's nn.Linear layers,
# or, where the file cannot name that class, a line for the one layer.
ZERO_LINEAR = Code("# bnlint BNL999: zeroed.", ((
    Form(("for {m} in {root}.modules():", "    if isinstance({m}, {T0}):",
          "        {nn}.init.zeros_({m}.weight)"), (("torch.nn.Linear",),), ("m",)),
    Form(("{nn}.init.zeros_({root}.fc.weight)",))),))
OTHER_CLASS = Code("# bnlint BNL999: zeroed.", ((
    Form(("for {m} in {root}.modules():", "    if isinstance({m}, {T0}):",
          "        {nn}.init.zeros_({m}.weight)"), (("lib.Thing", ":Thing"),), ("m",)),
    Form(("{nn}.init.zeros_({root}.fc.weight)",))),))


@pytest.mark.parametrize("code,before,after", [
    # a class: the code ends __init__, before its trailing comment, in the file's newlines
    (ZERO_LINEAR,
     '"""Doc."""\r\nimport torch.nn as nn\r\n\r\nclass Net(nn.Module):\r\n'
     "    def __init__(self):\r\n        super().__init__()\r\n        if True:\r\n"
     "            self.fc = nn.Linear(2, 2)  # keep\r\n        # a trailing comment\r\n\r\n"
     "    def forward(self, x):\r\n        return self.fc(x)\r\n",
     '"""Doc."""\r\nimport torch.nn as nn\r\n\r\nclass Net(nn.Module):\r\n'
     "    def __init__(self):\r\n        super().__init__()\r\n        if True:\r\n"
     "            self.fc = nn.Linear(2, 2)  # keep\r\n        # bnlint BNL999: zeroed.\r\n"
     "        for m in self.modules():\r\n            if isinstance(m, nn.Linear):\r\n"
     "                nn.init.zeros_(m.weight)\r\n        # a trailing comment\r\n\r\n"
     "    def forward(self, x):\r\n        return self.fc(x)\r\n"),
    # a factory: its one return (not a nested function's) returns a variable set first; the
    # file indents by two spaces and has no final newline
    (ZERO_LINEAR,
     "import torch\ndef Net(model=1):\n  def inner():\n    return 1\n"
     "  return torch.nn.Sequential(\n    torch.nn.Linear(2, 2))",
     "import torch\ndef Net(model=1):\n  def inner():\n    return 1\n"
     "  model_ = torch.nn.Sequential(\n    torch.nn.Linear(2, 2))\n  # bnlint BNL999: zeroed.\n"
     "  for m in model_.modules():\n    if isinstance(m, torch.nn.Linear):\n"
     "      torch.nn.init.zeros_(m.weight)\n  return model_"),
    # a factory returning a variable: the code goes before the return
    (ZERO_LINEAR,
     "from torch import nn\ndef Net():\n    net = nn.Linear(2, 2)\n    return net\n",
     "from torch import nn\ndef Net():\n    net = nn.Linear(2, 2)\n    # bnlint BNL999: zeroed.\n"
     "    for m in net.modules():\n        if isinstance(m, nn.Linear):\n"
     "            nn.init.zeros_(m.weight)\n    return net\n"),
    # an instance, in a file that uses m and names the class Linear: a fresh loop variable,
    # and torch.nn imported as nn
    (ZERO_LINEAR,
     "from torch.nn import Linear\nm = 2\nNet = Linear(m, m)\n",
     "from torch.nn import Linear\nfrom torch import nn\nm = 2\nNet = Linear(m, m)\n"
     "# bnlint BNL999: zeroed.\nfor m_ in Net.modules():\n    if isinstance(m_, Linear):\n"
     "        nn.init.zeros_(m_.weight)\n"),
    # a class the file cannot name: the next form, by attribute path; a top-level class of
    # the file is named as it is defined
    (OTHER_CLASS, "import torch.nn as nn\nNet = nn.Linear(2, 2)\n",
     "import torch.nn as nn\nNet = nn.Linear(2, 2)\n# bnlint BNL999: zeroed.\n"
     "nn.init.zeros_(Net.fc.weight)\n"),
    (OTHER_CLASS, "import torch.nn as nn\nclass Thing: pass\nNet = nn.Linear(2, 2)\n",
     "import torch.nn as nn\nclass Thing: pass\nNet = nn.Linear(2, 2)\n"
     "# bnlint BNL999: zeroed.\nfor m in Net.modules():\n    if isinstance(m, Thing):\n"
     "        nn.init.zeros_(m.weight)\n"),
    # written already: nothing to change
    (ZERO_LINEAR, "import torch.nn as nn\nNet = nn.Linear(2, 2)\n# bnlint BNL999: zeroed.\n",
     None),
])
def test_a_repair_is_written_where_the_model_is_built(code, before, after):
    placed = Placed(Edit("write_repair"), "m.py", model="Net", code=code)
    assert _edit(before, placed) == (after or before)


@pytest.mark.parametrize("before,complaint", [
    ("def Net(deep):\n    if deep:\n        return A()\n    return B()\n",
     "Net() does not end in one return of the model"),
    ("def Net():\n    if True: return A()\n", "the return of Net() shares its line"),
    ("class Net(Base):\n    pass\n", "class Net has no __init__ of its own"),
    ("nn = 1\nNet = A()\n", "the file binds nn to something other than torch.nn"),
])
def test_a_repair_is_not_written_where_its_place_is_unclear(before, complaint):
    placed = Placed(Edit("write_repair"), "m.py", model="Net", code=ZERO_LINEAR)
    with pytest.raises(InputError, match=re.escape(complaint)):
        Parsed("m.py", before).replacements(placed)


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


def test_a_call_is_found_by_the_character_columns_of_its_site(tmp_path):
    """Python reports columns in UTF-8 bytes ('é' is 2); a site counts characters, which is
    what the fix's edit looks the call up by and what its replacement counts."""
    from bnlint.model import sites

    path = tmp_path / "m.py"
    text = "import torch.nn as nn\ns = 'é'; y = nn.Linear(2, 2)\n"
    path.write_text(text, encoding="utf-8")
    scope: dict = {}
    with sites.recording():
        exec(compile(text, str(path), "exec"), scope)
    site = sites.site_of(scope["y"])
    line = text.splitlines()[1]
    assert (site.line, site.col, site.end_col) == (2, line.index("nn.") + 1, len(line) + 1)
    placed = Placed(Edit("set_kwarg", name="bias", value="False"), str(path),
                    (site.line, site.col, site.end_line, site.end_col))
    assert fix_text.Text(text).apply(Parsed(str(path), text).replacements(placed)) == \
        text.replace("(2, 2)", "(2, 2, bias=False)")


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
            replacements.append(text.made("m.py", i + 1, col, i + 1, col, f", new{k}"))
        elif kind == "insert line":
            replacements.append(text.made("m.py", i + 1, 1, i + 1, 1, f"added {k}{newline}"))
        elif i + 1 < len(text.starts):  # a whole line with its newline
            replacements.append(text.made("m.py", i + 1, 1, i + 2, 1, ""))
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


# ------------------------------------------------- repairs written into the user's file


def _built(source: str, path, name: str) -> nn.Module:
    """The model ``name`` (a class or an instance) that the file ``source`` builds."""
    path.write_text(source)
    scope: dict = {"__name__": "case"}
    torch.manual_seed(0)
    exec(compile(source, str(path), "exec"), scope)
    return scope[name]() if isinstance(scope[name], type) else scope[name]


STACK = ("import torch.nn as nn\nmodel = nn.Sequential(*[m for _ in range(30) for m in ("
         "nn.Linear(16, 16, bias=False), nn.BatchNorm1d(16))], nn.Linear(16, 4))\n")

# the variance-preserving gain written out: GELU's, and ReLU's behind a factor 0.5 (He init
# would be too small by 2x there)
GELU_STACK = ("import torch.nn as nn\nmodel = nn.Sequential(*[m for _ in range(20) for m in ("
              "nn.Linear(64, 64), nn.GELU())], nn.Linear(64, 2))\n")
SCALED_RELU = """import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(64, 64) for _ in range(20))
        self.head = nn.Linear(64, 2)

    def forward(self, x):
        for fc in self.fcs:
            x = (fc(x) * 0.5).relu()
        return self.head(x)
"""


@pytest.mark.parametrize("source,name,name_of_repair,shows", [
    ((EXAMPLES / "resnet56.py").read_text(), "ResNet56", "zero_init_residual",
     "if isinstance(m, BasicBlock):"),
    ((EXAMPLES / "plain_cnn30.py").read_text(), "PlainCNN30", "shape_activations",
     "self.body[i] = nn.LeakyReLU(1 - n ** -0.4)"),
    ((EXAMPLES / "deep_mlp.py").read_text(), "model", "he_init", "for m in model[:-1]:"),
    (STACK, "model", "orthogonal_init", "for m in model[:-1]:"),
    (GELU_STACK, "model", "he_init", "std=1.53353 / m.weight[0].numel() ** 0.5)"),
    (SCALED_RELU, "Model", "he_init", "std=2.82843 / m.weight[0].numel() ** 0.5)"),
])
def test_a_written_repair_changes_what_the_graph_repair_changes(tmp_path, source, name,
                                                                name_of_repair, shows):
    """The code written into the file, run, changes the same parameters and modules as
    bnlint.repair's graph repair, in the same way: zeros and slopes exactly, random inits by
    their scale; the file imports nothing from bnlint."""
    from bnlint.fixes import written

    path = tmp_path / "model.py"
    before = _built(source, path, name)
    repaired = _built(source, path, name)
    getattr(repair, name_of_repair)(repaired)
    code = written.repair_code(name_of_repair, trace(_built(source, path, name)), str(path),
                               "BNL999")
    placed = Placed(Edit("write_repair"), str(path), model=name, code=code)
    patched = fix_text.Text(source).apply(Parsed(str(path), source).replacements(placed))
    assert shows in patched and "import bnlint" not in patched
    assert patched.count("bnlint") == source.count("bnlint") + 1  # the comment saying why
    fixed = _built(patched, path, name)
    old, want, got = ({k: v.detach() for k, v in m.named_parameters()}
                      for m in (before, repaired, fixed))
    assert want.keys() == got.keys()
    changed = {k for k in old if not torch.equal(old[k], want[k])}
    assert changed == {k for k in old if not torch.equal(old[k], got[k])}
    for k in changed:
        if float(want[k].abs().max()) == 0:
            assert float(got[k].abs().max()) == 0, k
        else:
            assert float(got[k].std()) == pytest.approx(float(want[k].std()), rel=0.2), k
    slopes = [[(n, float(getattr(m, "negative_slope", -1))) for n, m in x.named_modules()
               if isinstance(m, (nn.ReLU, nn.LeakyReLU))] for x in (repaired, fixed)]
    assert slopes[0] == slopes[1]
    if name_of_repair != "shape_activations":
        assert changed


def test_a_repair_without_a_plain_pytorch_form_is_not_patched(write_model):
    """Depth-shaped tanh needs bnlint.nn.ShapedActivation: the fix is display-only, with the
    reason, rather than a dependency on bnlint in the user's file."""
    path = write_model("""
        import torch.nn as nn
        model = nn.Sequential(*[m for _ in range(70) for m in (nn.Linear(16, 16, bias=False),
                                                             nn.BatchNorm1d(16), nn.Tanh())],
                              nn.Linear(16, 4))
    """)
    report = json.loads(run_cli(path, "--no-probe", "--select", "BNL201", "--format", "json",
                                "--input-shape", "64,16").stdout)
    fix = report["models"][0]["findings"][0]["fix"]
    assert fix["applicability"] == "display-only" and fix["diff"] is None
    assert fix["description"].endswith("(Not patched: tanh and sin have no depth-shaped form in "
                                       "plain PyTorch (bnlint.repair.shape_activations applies "
                                       "bnlint.nn.ShapedActivation).)")


def test_unsafe_fixes_of_the_examples_write_plain_pytorch_once(tmp_path):
    """--fix --unsafe-fixes on ResNet-56, the plain CNN and the deep MLP: each file gets plain
    PyTorch (no import of bnlint), its finding is gone, and a second run changes nothing."""
    names = ["resnet56.py", "plain_cnn30.py", "deep_mlp.py"]
    (tmp_path / "examples").mkdir()
    for name in names:
        shutil.copy(EXAMPLES / name, tmp_path / "examples" / name)
    first = run_cli("examples/", "--fix", "--unsafe-fixes", "--no-probe", "--format", "json",
                    cwd=tmp_path)
    assert "Fixed 3 findings in 3 files." in first.stderr, first.stderr
    codes = [f["code"] for m in json.loads(first.stdout)["models"] for f in m["findings"]]
    assert not {"BNL201", "BNL202", "BNL302"} & set(codes), codes
    fixed = {n: (tmp_path / "examples" / n).read_text() for n in names}
    assert all("import bnlint" not in text and "bnlint." not in text for text in fixed.values())
    second = run_cli("examples/", "--fix", "--unsafe-fixes", "--no-probe", cwd=tmp_path)
    assert "Fixed 0 findings in 0 files." in second.stderr, second.stderr
    assert all((tmp_path / "examples" / n).read_text() == fixed[n] for n in names)


# ----------------------------------------------------------- state_dict keys and checkpoints

KEYED = """
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.bn = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
            self.bn2 = nn.BatchNorm2d(8, affine=False)

        def forward(self, x):
            return self.bn2(self.conv2(torch.relu(self.bn(self.conv(x))))).relu()
"""


def checkpoint_snippets(stderr: str) -> dict[str, str]:
    """The code --fix prints to load an old checkpoint, by model name."""
    found, name = {}, None
    for line in stderr.splitlines():
        if line.startswith("bnlint: the fixes change the state_dict keys of "):
            name = line.split(" of ", 1)[1].split(" ", 1)[0]
            found[name] = ""
        elif name and line.startswith("    "):
            found[name] += line[4:] + "\n"
        else:
            name = None
    return found


def test_a_fix_that_changes_the_state_dict_keys_says_which(write_model):
    path = write_model(KEYED)
    report = json.loads(run_cli(path, "--no-probe", "--format", "json", "--input-shape",
                                "4,3,8,8").stdout)
    fixes = {f["code"]: f["fix"] for f in report["models"][0]["findings"]}
    assert fixes["BNL102"]["state_dict"] == {"removed": ["conv.bias"], "added": [],
                                             "folded": [["conv.bias", "bn.running_mean"]]}
    assert fixes["BNL102"]["description"].endswith(
        "It changes the state_dict keys: removes conv.bias (--fix says how to load an old "
        "checkpoint).")
    assert fixes["BNL107"]["state_dict"] == {"removed": [], "added": ["bn2.bias", "bn2.weight"],
                                             "folded": []}


def test_fix_prints_code_that_loads_an_old_checkpoint_into_the_fixed_model(write_model,
                                                                          tmp_path):
    """A checkpoint of the model before --fix, with trained-looking biases and running
    statistics, loads into the fixed model through the printed code, which then computes
    the same outputs in eval mode (the bias is folded into the running mean; the added affine
    parameters start at 1 and 0)."""
    path = write_model(KEYED)
    source = path.read_text()
    old = _built(source, tmp_path / "old.py", "Net")
    with torch.no_grad():
        old.conv.bias.normal_()
        for _ in range(3):  # running statistics away from their initial values
            old(torch.randn(16, 3, 8, 8) + 1)
    torch.save(old.state_dict(), tmp_path / "old.pt")
    proc = run_cli(path, "--fix", "--unsafe-fixes", "--no-probe", "--input-shape", "4,3,8,8")
    assert "Fixed 2 findings in 1 file." in proc.stderr, proc.stderr
    code = checkpoint_snippets(proc.stderr)["Net"]
    assert 'state["bn.running_mean"] -= state.pop("conv.bias")' in code
    new = _built(path.read_text(), tmp_path / "new.py", "Net")
    exec(code.replace("checkpoint.pt", str(tmp_path / "old.pt")), {"torch": torch,
                                                                     "model": new})
    x = torch.randn(8, 3, 8, 8)
    old.eval()
    new.eval()
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x), atol=1e-5, rtol=1e-5)


def readme_block(after: str, language: str) -> str:
    """The first ``language`` code block of the README after the text ``after``."""
    readme = (ROOT / "README.md").read_text()
    rest = readme[readme.index(after):]
    start = rest.index(f"```{language}\n") + len(language) + 4
    return rest[start:rest.index("```", start)]


def test_readme_shows_the_unsafe_fix_of_resnet56_as_bnlint_writes_it():
    proc = run_cli("examples/resnet56.py", "--diff", "--unsafe-fixes", "--no-probe")
    assert proc.returncode == 1, proc.stderr
    assert readme_block("`bnlint examples/resnet56.py --diff --unsafe-fixes` gives", "diff") \
        == proc.stdout


def test_readme_checkpoint_code_is_what_fix_prints_and_loads_the_old_weights(tmp_path,
                                                                             monkeypatch):
    source = readme_block("**Checkpoints saved before a fix.**", "python")
    code = readme_block("`bnlint model.py --fix` prints", "python")
    path = tmp_path / "model.py"
    old = _built(source, path, "model")
    with torch.no_grad():
        old[0].bias.normal_()
        old(torch.randn(16, 3, 8, 8) + 1)  # running statistics away from their start
    torch.save(old.state_dict(), tmp_path / "checkpoint.pt")
    proc = run_cli("model.py", "--fix", "--no-probe", cwd=tmp_path)
    assert checkpoint_snippets(proc.stderr) == {"model": code}, proc.stderr
    new = _built(path.read_text(), tmp_path / "new.py", "model")
    monkeypatch.chdir(tmp_path)
    exec(code, {"torch": torch, "model": new})
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(new.eval()(x), old.eval()(x), atol=1e-5, rtol=1e-5)


class _Attributes(nn.Module):
    """Three Linear -> BatchNorm -> ReLU blocks held as attributes, and a head; ``shared``
    uses one ReLU module for all, ``functional`` torch.relu."""

    def __init__(self, shared: bool = False, functional: bool = False):
        super().__init__()
        for i in range(3):
            setattr(self, f"fc{i}", nn.Linear(8, 8))
            setattr(self, f"bn{i}", nn.BatchNorm1d(8))
            setattr(self, f"act{i}", nn.ReLU())
        self.head = nn.Linear(8, 2)
        self.shared, self.functional = shared, functional

    def forward(self, x):
        for i in range(3):
            x = getattr(self, f"bn{i}")(getattr(self, f"fc{i}")(x))
            x = torch.relu(x) if self.functional else getattr(self, "act0" if self.shared
                                                                   else f"act{i}")(x)
        return self.head(x)


class _OneBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.block = nn.Linear(8, 8), PreActResidual(depth=1, width=8).blocks[0]

    def forward(self, x):
        x = self.stem(x)
        return x + self.block(x)


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = PreActResidual(depth=1, width=8).blocks[0]

    def forward(self, x):
        return x + self.body(x)


@pytest.mark.parametrize("model,name_of_repair,lines", [
    # the blocks of a ModuleList: a loop over it, rather than an isinstance of nn.Sequential
    (PreActResidual(depth=4, width=8), "zero_init_residual",
     ["for m in model.blocks:", "    nn.init.zeros_(m[6].weight)"]),
    # blocks of a class the file does not import, between a stem and a head: their slice
    (nn.Sequential(nn.Linear(8, 8), *[_Residual() for _ in range(3)], nn.Linear(8, 2)),
     "zero_init_residual", ["for m in model[1:-1]:", "    nn.init.zeros_(m.body[6].weight)"]),
    # one module, by attributes: written directly
    (_OneBlock(), "zero_init_residual", ["nn.init.zeros_(model.block[6].weight)"]),
    # ReLUs held as attributes: one assignment each, with its depth
    (_Attributes(), "shape_activations",
     [f"model.act{i} = nn.LeakyReLU(1 - {i + 1} ** -0.4)" for i in range(3)]),
    (nn.Sequential(*bn_mlp(3, 8), nn.Linear(8, 2)), "shape_activations",
     ["relus = [i for i, m in enumerate(model) if isinstance(m, nn.ReLU)]",
      "for n, i in enumerate(relus, start=1):", "    model[i] = nn.LeakyReLU(1 - n ** -0.4)"]),
])
def test_a_repair_is_written_the_shortest_way_that_names_exactly_its_modules(
        model, name_of_repair, lines):
    from bnlint.fixes import written

    code = written.repair_code(name_of_repair, trace(model), "elsewhere.py", "BNL999")
    text = "import torch.nn as nn\nmodel = build()\n"
    placed = Placed(Edit("write_repair"), "m.py", model="model", code=code)
    added = fix_text.Text(text).apply(Parsed("m.py", text).replacements(placed))[len(text):]
    assert added.splitlines() == [code.comment, *lines]


@pytest.mark.parametrize("model,complaint", [
    (_Attributes(shared=True), "ReLU module act0 is used at several depths"),
    (_Attributes(functional=True), "its ReLUs are functional calls"),
    (bn_mlp(3, 8, nn.Tanh), "tanh and sin have no depth-shaped form in plain PyTorch"),
])
def test_a_shaping_that_plain_modules_cannot_hold_is_not_written(model, complaint):
    from bnlint.fixes import written

    with pytest.raises(InputError, match=re.escape(complaint)):
        written.repair_code("shape_activations", trace(model), "m.py", "BNL999")
