"""Real-world code: run the ``bnlint`` command on public model code as its users would, and
count what keeps it from linting (issue 10).

    python -m bench.studies.realworld --corpus DIR [--zoo] [--probe] [--only PATTERN]
                                      [--sample N] [--quick] [--timeout S] [--json FILE]
    python -m bench.studies.realworld --tables FILE   # the tables of a saved run, again

The corpus is a folder of public repositories' files in their own layout with a MANIFEST.json
(built by hand from fetched repositories, never committed: see bench/RESULTS.md); ``--zoo``
adds torchvision's classification model files and user files for a sample of timm's models
(bench/studies/realworld_cases.py; needs an environment with torchvision and timm). Nothing is
fetched at run time. Every child process uses this interpreter: run the bench from the
environment under test (``PYTHONPATH=<this repo> /path/to/venv/bin/python -m ...`` when that
environment's installed bnlint is another tree; the bench refuses to run on a mismatch).

Per file, in this order:

1. Can Python import it? ``python -c 'import pkg.mod'`` from the package root (found by walking
   up ``__init__.py`` files), with bytecode writing off.
2. ``bnlint FILE --format json --no-probe|--probe --timeout S`` from the user's folder (the
   repository's top folder), with the call tracer (bench/studies/calltrace) on its path.
3. Side effects: files created, deleted or changed in the watched folder by step 1 and by step 2
   (step 2's net of those step 1 also touches; ``__pycache__`` not counted), and the file's
   top-level functions bnlint called, each classed from the AST as a model factory or not.

Printed: a row per file (import, exit code, seconds, models linted, models not linted, findings
by code, problems), then totals (exit 2 on files Python imports is the issue's target: 0),
problems by category with an example each, warnings on the zoo's models (which are known to
train), and every call of a function that is not a factory. ``--json`` writes it all.
Corpus files are linted in a fresh temporary copy of the corpus, so the corpus itself never
changes.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.studies import realworld_cases as cases_mod
from bench.studies import realworld_effects as effects
from bench.studies.realworld_cases import Case

IMPORT_TIMEOUT = 120.0
GUARD = 15  # x --timeout: bnlint itself stuck (its own limits are per file and model)
NOT_LINTED = re.compile(r"^\s*not linted", re.IGNORECASE)
CRASH = re.compile(r"internal error in bnlint|Traceback \(most recent call last\)")

# Problem categories, tried in order on "message hint"; the first that matches names it.
# "building NAME() raised" is split by what NAME is (see ``categorize``).
CATEGORIES = (
    ("crash", r"internal error in bnlint|linting process (was killed|exited)"),  # or died
    ("relative import", r"relative import"),
    ("missing dependency", r"No module named|ModuleNotFoundError"),
    ("constructor arguments", r"needs constructor arguments|needs? .*--model"),
    ("no model found", r"no model found"),
    ("exits at import", r"raised SystemExit"),
    ("timeout", r"timed out"),
    ("inputs: helper or loss taken for the model", r"has no Conv, Linear or Embedding layer"),
    ("inputs: forward fails on the inferred inputs", r"bnlint inferred inputs"),
    ("inputs: other", r"example inputs"),
    ("user-code error at import", r"^importing the file raised"),
    ("user-code error building a model", r"^building .* raised"),
    ("user-code error in forward", r"forward"),
)
MISSING_ARGUMENTS = re.compile(r"missing \d+ required|unexpected keyword|takes \d+ positional")


@dataclass
class Result:
    label: str
    kind: str
    source: str
    expected: list[str]          # zoo architectures the file should yield
    exit: int | None = None      # None: still running at the bench's guard, killed
    seconds: float = 0.0
    importable: bool = False
    import_error: str = ""
    models: list[str] = field(default_factory=list)
    not_linted: list[str] = field(default_factory=list)   # "not linted" findings (skips)
    problems: list[dict] = field(default_factory=list)    # errors, error-severity 0xx findings
    findings: dict[str, int] = field(default_factory=dict)  # code -> count over all models
    warnings: dict[str, list[str]] = field(default_factory=dict)  # code -> models warned
    crash: str = ""
    import_effects: list[str] = field(default_factory=list)
    lint_effects: list[str] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    traced: bool = False

    @property
    def categories(self) -> list[str]:
        return [p["category"] for p in self.problems]


# ---------------------------------------------------------------- running


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return {**env, **(extra or {})}


def _tail(text: str) -> str:
    lines = [s for s in text.strip().splitlines() if s.strip()]
    return lines[-1].strip() if lines else ""


def importable(case: Case) -> tuple[bool, str]:
    """Whether ``python -c 'import pkg.mod'`` from the package root succeeds."""
    root, name = case.module
    code = f"import importlib; importlib.import_module({name!r})"  # argv stays ["-c"]
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                              text=True, timeout=IMPORT_TIMEOUT, stdin=subprocess.DEVNULL,
                              env=_child_env({"PYTHONDONTWRITEBYTECODE": "1"}))
    except subprocess.TimeoutExpired:
        return False, f"import timed out after {IMPORT_TIMEOUT:g} s"
    return proc.returncode == 0, "" if proc.returncode == 0 else _tail(proc.stderr)[:200]


def lint(case: Case, args: argparse.Namespace, bnlint_dir: Path, scratch: Path,
         index: int) -> Result:
    before = effects.snapshot(case.watch)
    ok, why = importable(case)
    middle = effects.snapshot(case.watch)
    effects_import = effects.changes(before, middle)
    log = scratch / f"trace-{index}.jsonl"
    cmd = [sys.executable, "-m", "bnlint", case.arg, "--format", "json",
           "--probe" if args.probe else "--no-probe", "--timeout", f"{args.timeout:g}"]
    env = _child_env(effects.tracer_env(log, case.roots, bnlint_dir))
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=case.cwd, capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=args.timeout * GUARD)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out = None, ""
        err = (exc.stderr or b"").decode("utf-8", "replace") if isinstance(
            exc.stderr, bytes) else (exc.stderr or "")
    seconds = time.monotonic() - start
    after = effects.snapshot(case.watch)
    touched_by_import = {c[1:] for c in effects_import}
    lint_effects = [c for c in effects.changes(middle, after) if c[1:] not in touched_by_import]
    trace = effects.read_trace(log)
    result = _parse(case, code, out, err, seconds)
    result.importable, result.import_error = ok, why
    result.import_effects, result.lint_effects = effects_import, lint_effects
    result.calls = [dataclasses.asdict(c) for c in trace.calls]
    result.traced = trace.worker_traced
    return result


def _parse(case: Case, code: int | None, out: str, err: str, seconds: float) -> Result:
    result = Result(case.label, case.kind, case.source, list(case.expected), code, seconds)
    if CRASH.search(err):
        result.crash = _tail(err)[:200]
    if code is None:
        result.crash = f"bnlint still running after {seconds:.0f} s; the bench killed it"
        result.problems.append({"category": "crash", "message": result.crash, "hint": ""})
        return result
    try:
        report = json.loads(out)
    except json.JSONDecodeError:
        report = None
    if not isinstance(report, dict):
        result.problems.append(categorize(case, _tail(err) or f"no JSON report (exit {code})",
                                          ""))
        return result
    findings: Counter[str] = Counter()
    for model in report.get("models", []):
        result.models.append(model.get("name", "?"))
        for f in model.get("findings", []):
            _take_finding(case, result, findings, f, model.get("name", "?"))
    for f in report.get("findings", []):  # file-level findings, where a version has them
        _take_finding(case, result, findings, f, None)
    for error in report.get("errors", []):
        result.problems.append(categorize(case, error.get("message", ""), error.get("hint", "")))
    result.findings = dict(sorted(findings.items()))
    if any(p["category"] == "crash" for p in result.problems) and not result.crash:
        result.crash = next(p["message"] for p in result.problems if p["category"] == "crash")
    return result


def _take_finding(case: Case, result: Result, findings: Counter, f: dict,
                  model: str | None) -> None:
    code, severity, message = f.get("code", "?"), f.get("severity", ""), f.get("message", "")
    if NOT_LINTED.match(message):
        result.not_linted.append(message)
        return
    if code.startswith("BNL0") and severity == "error":
        result.problems.append(categorize(case, message, ""))
        return
    findings[code] += 1
    if model and severity in ("warning", "error"):
        result.warnings.setdefault(code, []).append(model)


def categorize(case: Case, message: str, hint: str) -> dict:
    text = f"{message} {hint}"
    category = next((name for name, pattern in CATEGORIES if re.search(pattern, text)), "other")
    built = re.match(r"building (\w+)\(\) raised (\w+)", message)
    if category == "user-code error building a model" and built:
        verdict = effects.verdict(case.path, built.group(1))
        if _defines_function(case.path, built.group(1)) and verdict == "not a factory":
            category = "non-factory function called"
        elif built.group(2) == "TypeError" and MISSING_ARGUMENTS.search(message):
            category = "factory called without its arguments"
    return {"category": category, "message": message, "hint": hint}


def _defines_function(path: Path, name: str) -> bool:
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return False
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name
               for n in tree.body)


# ---------------------------------------------------------------- reporting


def _cell(text: str, width: int = 90) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[:width - 3] + "..."


def _names(names: list[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return f"{len(names)}: {shown}" + (", ..." if len(names) > most else "") if names else "0"


def print_rows(results: list[Result]) -> None:
    print("| file | import | exit | s | models linted | not linted | findings | problems, "
          "side effects |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        notes = [p["message"] if p["message"].startswith(p["category"])
                 else f"{p['category']}: {p['message']}" for p in r.problems[:2]]
        notes += [f"not linted: {m}" for m in r.not_linted[:2]]
        if r.crash and not any(p["category"] == "crash" for p in r.problems):
            notes.append(f"crash: {r.crash}")
        if r.lint_effects:
            notes.append("bnlint wrote: " + " ".join(r.lint_effects[:3]))
        if r.import_effects:
            notes.append("import writes: " + " ".join(r.import_effects[:3]))
        bad = [c["function"] + "()" for c in r.calls if c["verdict"] == "not a factory"]
        if bad:
            notes.append("called non-factory " + ", ".join(bad))
        found = " ".join(f"{c}x{n}" for c, n in r.findings.items()) or "-"
        imp = "ok" if r.importable else f"no ({_cell(r.import_error, 50)})"
        print(f"| {r.label} | {imp} | {'-' if r.exit is None else r.exit} | {r.seconds:.1f} "
              f"| {_names(r.models)} | {len(r.not_linted)} | {found} | "
              f"{_cell('; '.join(notes), 160) or '-'} |")


def totals(results: list[Result]) -> list[tuple[str, Any]]:
    imp = [r for r in results if r.importable]
    exits = Counter("killed" if r.exit is None else r.exit for r in results)
    expected = [(r, n) for r in results for n in r.expected]
    return [
        ("files", len(results)),
        ("files Python imports", len(imp)),
        ("exit codes (all files)", ", ".join(f"{k}: {v}" for k, v in sorted(
            exits.items(), key=lambda kv: str(kv[0])))),
        ("**exit 2 on files Python imports** (target 0)", sum(r.exit == 2 for r in imp)),
        ("exit 2 on files Python cannot import", sum(r.exit == 2 for r in results
                                                      if not r.importable)),
        ("crashes or tracebacks (target 0)", sum(bool(r.crash) for r in results)),
        ("files with zero models linted", sum(not r.models for r in results)),
        ("... of them importable", sum(not r.models for r in imp)),
        ("models linted", sum(len(r.models) for r in results)),
        ("models reported not linted", sum(len(r.not_linted) for r in results)),
        ("zoo architectures linted / expected",
         f"{sum(n in r.models for r, n in expected)} / {len(expected)}" if expected else "-"),
        ("files where bnlint wrote or deleted files, plain import writes none (target 0)",
         sum(bool(r.lint_effects) and not r.import_effects for r in results)),
        ("files whose plain import writes files", sum(bool(r.import_effects) for r in results)),
        ("... of them, bnlint's run wrote or deleted files",
         sum(bool(r.lint_effects) and bool(r.import_effects) for r in results)),
        ("calls of non-factory functions (target 0)",
         sum(c["verdict"] == "not a factory" for r in results for c in r.calls)),
        ("calls of factories / hooks", "{} / {}".format(
            sum(c["verdict"] == "factory" for r in results for c in r.calls),
            sum(c["verdict"] == "hook" for r in results for c in r.calls))),
        ("files where the call tracer saw no worker (calls unknown)",
         sum(not r.traced for r in results)),
        ("total bnlint time", f"{sum(r.seconds for r in results):.0f} s"),
    ]


def print_totals(results: list[Result]) -> None:
    print("\n| total | value |\n| --- | --- |")
    for name, value in totals(results):
        print(f"| {name} | {value} |")


def print_kinds(results: list[Result]) -> None:
    """The main counts per kind of file (issue 10 counts "ordinary model files")."""
    print("\n| kind | files | importable | exit 0 / 1 / 2 | importable, exit 2 | models linted |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in dict.fromkeys(f"{r.source} {r.kind}" if r.source != "corpus" else r.kind
                              for r in results):
        rs = [r for r in results
              if (f"{r.source} {r.kind}" if r.source != "corpus" else r.kind) == kind]
        exits = " / ".join(str(sum(r.exit == c for r in rs)) for c in (0, 1, 2))
        print(f"| {kind} | {len(rs)} | {sum(r.importable for r in rs)} | {exits} | "
              f"{sum(r.importable and r.exit == 2 for r in rs)} | "
              f"{sum(len(r.models) for r in rs)} |")


def print_categories(results: list[Result]) -> None:
    """Files per problem category (a file counts once per category), with an example."""
    rows: dict[str, list[tuple[Result, dict]]] = {}
    for r in results:
        for category in dict.fromkeys(r.categories):
            problem = next(p for p in r.problems if p["category"] == category)
            rows.setdefault(category, []).append((r, problem))
    if not rows:
        return
    print("\n| problem category | files | exit 2 | importable, exit 2 | example |")
    print("| --- | --- | --- | --- | --- |")
    for category, items in sorted(rows.items(), key=lambda kv: -len(kv[1])):
        r, problem = items[0]
        print(f"| {category} | {len(items)} | {sum(x.exit == 2 for x, _ in items)} | "
              f"{sum(x.exit == 2 and x.importable for x, _ in items)} | "
              f"{r.label}: {_cell(problem['message'], 110)} |")


def print_zoo_warnings(results: list[Result]) -> None:
    """Warning- and error-severity findings on torchvision's and timm's models: these
    architectures are known to train, so each is a candidate false warning to check."""
    codes: dict[str, list[str]] = {}
    for r in results:
        if r.source in ("torchvision", "timm"):
            for code, models in r.warnings.items():
                codes.setdefault(code, []).extend(
                    f"{r.source}:{m}" for m in dict.fromkeys(models))
    if codes:
        print("\n| code on a zoo model (warning or error) | models | which |\n| --- | --- | --- |")
        for code, models in sorted(codes.items()):
            print(f"| {code} | {len(models)} | {_cell(', '.join(models), 150)} |")


def print_calls(results: list[Result]) -> None:
    bad = [(r, c) for r in results for c in r.calls if c["verdict"] == "not a factory"]
    if bad:
        print("\n| non-factory function bnlint called | file |\n| --- | --- |")
        for r, c in bad:
            print(f"| {c['function']}() | {r.label} |")


def report(results: list[Result]) -> None:
    print_rows(results)
    print_totals(results)
    print_kinds(results)
    print_categories(results)
    print_zoo_warnings(results)
    print_calls(results)


def header(args: argparse.Namespace, bnlint_dir: Path) -> str:
    versions = ", ".join(f"{p} {_version(p)}" for p in ("torch", "torchvision", "timm")
                         if _version(p))
    command = shlex.join([Path(sys.executable).name, "-m", "bench.studies.realworld",
                          *sys.argv[1:]])
    commit = subprocess.run(["git", "-C", str(bnlint_dir), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    return (f"# bnlint on real-world code\n\n"
            f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; machine: "
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{versions}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n"
            f"- bnlint: {bnlint_dir} ({commit or 'not a git checkout'})\n"
            f"- command: {command}\n")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _bnlint_dir(scratch: Path) -> Path:
    """The bnlint package this interpreter's child processes import, which must be the one
    this bench belongs to."""
    mine = Path(importlib.util.find_spec("bnlint").origin).parent
    proc = subprocess.run([sys.executable, "-c", "import bnlint; print(bnlint.__file__)"],
                          cwd=scratch, capture_output=True, text=True, env=_child_env())
    theirs = Path(proc.stdout.strip()).parent if proc.returncode == 0 else None
    if theirs != mine:
        sys.exit(f"realworld: child processes import bnlint from {theirs}, but this bench is "
                 f"{mine}; run with PYTHONPATH={mine.parent}.")
    return mine


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="folder of model files (with MANIFEST.json)")
    parser.add_argument("--zoo", action="store_true",
                        help="add torchvision's model files and timm/torchvision user files")
    parser.add_argument("--probe", action=argparse.BooleanOptionalAction, default=False,
                        help="run bnlint with its probe (default: --no-probe)")
    parser.add_argument("--only", help="files whose label matches this glob or substring")
    parser.add_argument("--sample", type=int, help="N files spread evenly over the selection")
    parser.add_argument("--quick", action="store_true",
                        help="one file per repository, a few zoo models")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="bnlint --timeout (seconds per file import and per model)")
    parser.add_argument("--json", type=Path, help="also write every result here (after each file)")
    parser.add_argument("--tables", type=Path, metavar="JSON",
                        help="print the tables of a run saved with --json, and lint nothing")
    args = parser.parse_args(argv)
    if args.tables:
        report([Result(**r) for r in json.loads(args.tables.read_text())])
        return
    if not args.corpus and not args.zoo:
        parser.error("give --corpus DIR, --zoo, or both")
    if args.corpus and not args.corpus.is_dir():
        parser.error(f"--corpus {args.corpus}: no such folder")
    if args.zoo and cases_mod.zoo_missing():
        parser.error(f"--zoo needs {' and '.join(cases_mod.zoo_missing())} in this environment "
                     f"({sys.executable})")

    with tempfile.TemporaryDirectory(prefix="bnlint-realworld-") as tmp:
        scratch = Path(tmp)
        bnlint_dir = _bnlint_dir(scratch)
        print(header(args, bnlint_dir))
        cases: list[Case] = []
        if args.corpus:
            cases += cases_mod.corpus_cases(args.corpus.resolve(), scratch / "corpus", args.quick)
        if args.zoo:
            cases += cases_mod.zoo_cases(scratch, args.quick)
        cases = cases_mod.pick(cases, args.only, args.sample)
        started = time.monotonic()
        results = []
        for i, case in enumerate(cases):
            results.append(lint(case, args, bnlint_dir, scratch, i))
            print(f"[{i + 1}/{len(cases)}] {case.label}: exit {results[-1].exit}, "
                  f"{results[-1].seconds:.1f} s", file=sys.stderr, flush=True)
            if args.json:  # after every file, so a run stopped early keeps what it did
                args.json.write_text(json.dumps([dataclasses.asdict(r) for r in results],
                                                indent=1))
        report(results)
        print(f"\nwall time of the run: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
