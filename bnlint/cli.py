"""The ``bnlint`` command. Parses options and config, runs the linting child process and
prints the report; never imports torch itself."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from . import config as config_mod
from . import files
from .errors import InputError
from .findings import VERSION, Report
from .fixes import checkpoint
from .fixes import plan as fixes
from .isolation import runner
from .isolation.cache import Cache
from .output import baseline, plots, render
from .rules import catalog, suppress


def expand_paths(paths: tuple[str, ...], only_models: bool = False,
                 excluded: files.Exclusions | None = None) -> list[str]:
    """Files as given, and under folders every file :func:`files.may_hold_models` accepts that
    ``excluded`` does not skip (files given by name are linted even when excluded, as ruff
    does); with ``only_models`` (allow-no-models), given files are filtered the same way."""
    excluded = excluded or files.Exclusions()
    found: list[str] = []
    for given in paths:
        p = Path(given)
        if p.is_file():
            if not only_models or files.may_hold_models(p):
                found.append(str(p))
        elif p.is_dir():
            under = [str(f) for f in excluded.walk(p) if files.may_hold_models(f)]
            if not under and not only_models:
                raise InputError("no Python files that use torch under this folder.",
                                 path=given, hint="Point bnlint at your model files.")
            found.extend(under)
        else:
            raise InputError("no such file or folder.", path=given,
                             hint="Check the path; bnlint takes model files or folders.")
    return list(dict.fromkeys(found))


def _explain(rules: dict, code: str) -> str:
    rule = rules.get(code.upper())
    if rule is None:
        raise InputError(f"unknown rule code {code}.", hint="See bnlint --list-rules.")
    parts = [f"{rule.code} ({rule.name}) [{rule.severity_label()}; {rule.category}]", "",
             rule.summary, "", "Why", rule.why, "", "Example", rule.example, "",
             "Use instead", rule.use_instead]
    if rule.fix:
        parts += ["", f"Fix: {rule.fix.kind}, {rule.fix.applicability}"]
    if rule.thresholds:
        parts += ["", "Thresholds (override in [tool.bnlint] thresholds):"]
        parts += [f"  {k} = {v:g}" for k, v in rule.thresholds.items()]
    parts += ["", "References: " + ", ".join(rule.references)]
    return "\n".join(parts) + "\n"


def _list_rules(rules: dict, thresholds: dict) -> str:
    """One rule a line: code, name, severity (with its escalation, under the config's
    thresholds) and summary."""
    width = max(len(r.name) for r in rules.values())
    return "".join(f"{r.code}  {r.name:<{width}}  {r.summary} [{r.severity_label(thresholds)}]\n"
                   for r in rules.values())


def _fail(exc: InputError) -> None:
    click.echo(f"bnlint: error: {exc.render()}", err=True)
    sys.exit(2)


def _fail_before_linting(exc: InputError, fmt: str, rules: dict,
                         output_file: str | None) -> None:
    """Exit 2 for an error found before linting; a document format still gets its document,
    with the error in it (where the report would go, else stdout)."""
    if fmt in config_mod.DOCUMENTS:
        document = render.render(Report(errors=[exc]), fmt, rules, False)
        written = False
        if output_file:
            try:
                files.write_atomic(output_file, document)
                written = True
            except OSError:  # e.g. the error is that it cannot be written
                pass
        if not written:
            click.echo(document, nl=False)
    _fail(exc)


class _Seconds(click.ParamType):
    """A positive, finite number of seconds (click's FloatRange lets NaN and infinity in)."""
    name = "seconds"

    def convert(self, value, param, ctx) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            self.fail(f"{value!r} is not a positive, finite number of seconds.", param, ctx)
        return seconds


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(config_mod.FORMATS),
              default=config_mod.FORMAT, show_default=True, help="Output format.")
@click.option("--output-file", "-o", type=click.Path(dir_okay=False),
              help="Write the report here instead of stdout.")
@click.option("--select", help="Only these rule codes or prefixes (comma-separated).")
@click.option("--ignore", help="Skip these rule codes or prefixes (comma-separated).")
@click.option("--fail-on", type=click.Choice(config_mod.FAIL_ON),
              default=config_mod.FAIL_ON_DEFAULT, show_default=True,
              help="Lowest severity that makes the exit code 1.")
@click.option("--model", "models", multiple=True,
              help="Lint only this model, by name; or build one with a call with literal "
                   "arguments such as 'VGG(\"VGG16\")', the file's other models still linted "
                   "(repeatable; give both to lint only the built one).")
@click.option("--input-shape", "input_shapes", multiple=True,
              help="Example input shape, e.g. 8,3,32,32 (repeat for several inputs).")
@click.option("--targets", type=click.Path(), help="Regression targets (.pt or .npy).")
@click.option("--probe/--no-probe", default=True, show_default=True,
              help="Measure a short forward/backward and training run.")
@click.option("--device", type=click.Choice(config_mod.DEVICES), default=config_mod.DEVICE,
              show_default=True,
              help="Where the probe runs: auto picks cuda, then mps, then cpu.")
@click.option("--probe-batch", type=click.IntRange(min=2), default=config_mod.PROBE_BATCH,
              show_default=True,
              help=f"Probe batch size; the plan halves it (down to "
                   f"{config_mod.PROBE_MIN_BATCH}) for a model too big for the probe's budget, "
                   "and an out-of-memory error halves it again.")
@click.option("--probe-steps", type=click.IntRange(min=0), default=config_mod.PROBE_STEPS,
              show_default=True,
              help="Training steps the probe runs after measuring the init.")
@click.option("--probe-budget", type=_Seconds(),
              default=config_mod.PROBE_BUDGET, show_default=True,
              help=f"Seconds the probe may take per model: it plans batch, steps and "
                   f"Hessian-vector products for them at a fixed {config_mod.PROBE_FLOP_RATE:g} "
                   f"FLOP/s (the same plan on any machine), and stops a slower run there.")
@click.option("--optimizer", metavar="NAME[,KEY=VALUE...]",
              help="What you train with, for the probe and the lr rules: any of "
                   + ", ".join(config_mod.OPTIMIZERS) + ", with its arguments, e.g. "
                   "sgd,lr=0.1,momentum=0.9,nesterov=true or adam,lr=3e-4,betas=(0.9,0.98).")
@click.option("--warmup-steps", type=click.IntRange(min=0),
              help="Steps of lr warm-up you train with (0: none).")
@click.option("--nproc", type=click.IntRange(min=1),
              help="Probe across N processes on this host (torch.distributed, FSDP2): each "
                   "holds 1/N of the model, for models larger than one device.")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="Draw the probe's per-layer measurements to FILE.png or FILE.svg.")
@click.option("--timeout", type=_Seconds(),
              default=config_mod.TIMEOUT, show_default=True,
              help="Seconds allowed to import a file and to lint each model.")
@click.option("--config", "config_file", type=click.Path(), help="Config file to use.")
@click.option("--rules-dir", type=click.Path(), help="Folder of extra rule YAML files.")
@click.option("--diff", "show_diff", is_flag=True,
              help="Print the fixes as a unified diff instead of writing them (exit 1 if any).")
@click.option("--fix", "apply_fixes", is_flag=True,
              help="Apply the safe fixes to the files, then report what remains.")
@click.option("--unsafe-fixes", is_flag=True,
              help="With --fix or --diff, also apply fixes that change the model's function.")
@click.option("--baseline", "baseline_file", type=click.Path(dir_okay=False),
              help="Hide the findings recorded in this baseline file; report new ones, and "
                   "the recorded ones that are gone.")
@click.option("--write-baseline", type=click.Path(dir_okay=False),
              help="Record the current findings in this baseline file and exit 0.")
@click.option("--add-noqa", is_flag=True,
              help="Add '# bnlint: ignore[CODE]' on each finding's line, then exit.")
@click.option("--statistics", "want_statistics", is_flag=True,
              help="Print how many findings each rule has instead of the findings.")
@click.option("--allow-no-models", is_flag=True, default=None,
              help="Skip given files that define no model or never mention torch, instead of "
                   "failing (pre-commit passes every staged Python file).")
@click.option("--exclude", metavar="GLOBS",
              help="Skip files and folders matching these globs in folder runs "
                   "(comma-separated), instead of the default list (.venv, build, ...).")
@click.option("--extend-exclude", metavar="GLOBS",
              help="Skip these too, beside the default list or --exclude (comma-separated).")
@click.option("--respect-gitignore/--no-respect-gitignore", default=None,
              help="Skip what git ignores in folder runs (default: on).")
@click.option("--explain", metavar="CODE", help="Explain a rule and exit.")
@click.option("--list-rules", is_flag=True, help="List the rules and exit.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Files linted at once (default: the number of cores); the report is the "
                   "same, in the same order, for any number.")
@click.option("--no-cache", is_flag=True, default=None, envvar="BNLINT_NO_CACHE",
              help="Lint every file, neither reading nor writing the results cache "
                   "(env BNLINT_NO_CACHE=1).")
@click.option("--cache-dir", type=click.Path(file_okay=False), envvar="BNLINT_CACHE_DIR",
              show_default=f"{config_mod.CACHE_DIR} beside the config file, else here",
              help="Where results are cached, to skip files unchanged since they were linted "
                   "with the same settings (env BNLINT_CACHE_DIR).")
@click.option("--verbose", "-v", is_flag=True, help="Show the model code's output and tracebacks.")
@click.version_option(VERSION, prog_name="bnlint")
@click.pass_context
def main(ctx, paths, fmt, output_file, select, ignore, fail_on, models, input_shapes, targets,
         probe, device, probe_batch, probe_steps, probe_budget, optimizer, warmup_steps, nproc,
         plot, timeout, config_file, rules_dir, show_diff, apply_fixes, unsafe_fixes,
         baseline_file, write_baseline, add_noqa, want_statistics, allow_no_models, exclude,
         extend_exclude, respect_gitignore, explain, list_rules, jobs, no_cache, cache_dir,
         verbose) -> None:
    """Lint PyTorch models in PATHS (files or folders) for BatchNorm/ReLU ordering, depth,
    initialisation and target problems.

    Exit codes: 0 clean, 1 findings at or above --fail-on (a file or model whose code
    raises is an error finding), 2 a usage error (an option, the config, a path), 128 + the
    signal's number when stopped (130 for Ctrl-C)."""
    runner.stop_on_signals()
    in_ranks = bool(ctx.obj and ctx.obj.get("in_ranks"))  # python -m bnlint.distributed
    ranked = in_ranks or nproc is not None
    # the fork server starts now; it imports torch now unless the results cache may hold
    # every file's result, then once runner.run finds one that it does not hold
    started = runner.Worker(verbose, start=bool(no_cache)) \
        if paths and not (list_rules or explain or ranked) else None
    jobs = jobs or runner.default_jobs()

    def given(name: str, value):
        """An option's value when the command line gave it (a config file's value wins over
        the shown default)."""
        return value if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE else None

    report_format, rules = fmt, {}  # the command line's format until the config is read
    try:
        file_cfg = config_mod.load(config_file, Path.cwd())
        cli_shapes = _input_shapes(input_shapes) if input_shapes else None
        cli_codes = {"--select": config_mod.split_codes(select or ""),
                     "--ignore": config_mod.split_codes(ignore or "")}
        cfg = config_mod.override(
            file_cfg, format=given("fmt", fmt), fail_on=given("fail_on", fail_on),
            timeout=given("timeout", timeout), model=list(models) or None, targets=targets,
            rules_dir=rules_dir, probe=given("probe", probe), device=given("device", device),
            probe_batch=given("probe_batch", probe_batch),
            probe_steps=given("probe_steps", probe_steps),
            probe_budget=given("probe_budget", probe_budget),
            optimizer=config_mod.parse_optimizer(optimizer) if optimizer else None,
            warmup_steps=warmup_steps,
            select=cli_codes["--select"] or None, ignore=cli_codes["--ignore"] or None,
            allow_no_models=allow_no_models, exclude=_globs(exclude),
            extend_exclude=[*file_cfg.extend_exclude, *_globs(extend_exclude)]
            if extend_exclude else None, respect_gitignore=respect_gitignore,
            cache=False if no_cache else None, cache_dir=cache_dir)
        report_format = cfg.format
        rules = catalog.load(cfg.rules_dir)
        if list_rules:
            click.echo(_list_rules(rules, cfg.thresholds), nl=False)
            return
        if explain:
            click.echo(_explain(rules, explain), nl=False)
            return
        config_mod.check_rules(file_cfg, rules)
        for option, codes in cli_codes.items():
            config_mod.check_codes(rules, codes, option)
        if not paths:
            raise InputError("no paths given.", hint="Usage: bnlint PATH... (see bnlint --help).")
        _check_ranked(in_ranks, nproc, cfg.probe, show_diff or apply_fixes)
        _check_exclusive(show_diff=show_diff, fix=apply_fixes, add_noqa=add_noqa,
                         write_baseline=write_baseline)
        render.check(cfg.format, want_statistics)
        linted = expand_paths(paths, cfg.allow_no_models, config_mod.exclusions(cfg))
        recorded = baseline.load(baseline_file) if baseline_file else None
        if output_file:
            files.writable(output_file, "the report", linted)
        if write_baseline:
            files.writable(write_baseline, "the baseline", linted)
        if plot:
            plots.check_available(plot)
            if not cfg.probe:
                raise InputError("--plot draws the probe's measurements, but the probe is off "
                                 "(--no-probe, or probe = false in the config).",
                                 hint="Drop --plot, or let the probe run.")
            files.writable(plot, "the plot", linted)
    except InputError as exc:
        runner.stop_all()
        _fail_before_linting(exc, report_format, rules, output_file)
    # a folder's files that define no model are skipped (a utils.py), a file given is not
    in_folders = [f for f in linted if f not in {str(Path(p)) for p in paths}]
    if in_ranks:
        from .isolation import ranks  # torch: only on a rank that torchrun started
        report, rank = ranks.lint_here(linted, cfg, rules, cli_shapes)
        if rank != 0:  # every rank has the report; rank 0 writes it
            sys.exit(report.exit_code(cfg.fail_on))
    else:
        cache = Cache(config_mod.cache_folder(cfg), cfg, [r.to_dict() for r in rules.values()],
                      cli_shapes, verbose) if cfg.cache and not nproc else None
        report = runner.run(linted, cfg, rules, cli_shapes, verbose, started, jobs, nproc,
                            in_folders, cache)
    if add_noqa:  # the findings a baseline records stay as they are
        if recorded is not None:
            report = baseline.apply(report, baseline_file, recorded, linted)[0]
        _add_noqa(report, linted)
    if write_baseline:
        _write_baseline(report, write_baseline)
    if show_diff or apply_fixes:
        patches = _verified_patches(report, cfg, rules, cli_shapes, verbose, unsafe_fixes,
                                    started, jobs)
        if show_diff:
            _print_errors(report)
            click.echo("".join(p.diff for p in patches), nl=False)
            sys.exit(2 if report.errors else 1 if patches or report.exit_code("error") else 0)
        report = _apply(patches, report, cfg, rules, cli_shapes, verbose, started, jobs,
                        cache)
    outcome = None
    if recorded is not None:
        report, outcome = baseline.apply(report, baseline_file, recorded, linted)
    _emit(report, cfg, rules, output_file, want_statistics, outcome)
    if plot:
        try:
            plots.draw(report, plot)
        except InputError as exc:
            _fail(exc)
    sys.exit(report.exit_code(cfg.fail_on))


def _globs(text: str | None) -> list[str] | None:
    return [g.strip() for g in text.split(",") if g.strip()] if text is not None else None


def _check_ranked(in_ranks: bool, nproc: int | None, probe: bool, fixing: bool) -> None:
    """The probe across ranks (--nproc, or python -m bnlint.distributed under torchrun) needs
    the probe, and cannot verify fixes (which builds the model in one process)."""
    if not (in_ranks or nproc):
        return
    how = "python -m bnlint.distributed" if in_ranks else "--nproc"
    if in_ranks and nproc:
        raise InputError("--nproc starts ranks on this host, but torchrun started this one.",
                         hint="Drop --nproc: the probe uses the ranks torchrun gives it.")
    if not probe:
        raise InputError(f"{how} runs the probe across ranks, but the probe is off "
                         "(--no-probe, or probe = false in the config).",
                         hint=f"Drop {how}, or let the probe run.")
    if fixing:
        raise InputError(f"--fix and --diff check the patched file by building its models in "
                         f"one process, which {how} is there to avoid.",
                         hint=f"Run the fixes without {how}.")


def _input_shapes(given: tuple[str, ...]) -> list[list[int]]:
    shapes = []
    for text in given:
        try:
            shapes += config_mod.parse_shapes(text)
        except ValueError:
            raise InputError(f"--input-shape {text!r} is not a shape.",
                             hint="Give positive integers separated by commas, such as "
                                  "--input-shape 8,3,32,32, and repeat the option for each "
                                  "input of a model that takes several.") from None
    problem = config_mod.shape_problem(shapes)
    if problem:
        raise InputError(f"--input-shape: {problem}.",
                         hint="Give the shape of a small example batch, such as 8,3,32,32.")
    return shapes


def _verified_patches(report: Report, cfg, rules: dict, cli_shapes, verbose: bool,
                      unsafe: bool, worker: runner.Worker | None,
                      jobs: int) -> list[fixes.FilePatch]:
    """The patches, without the fixes their files do not build with; those are reported."""
    patches, warnings = fixes.plan(report, rules, unsafe)
    if patches:
        patches, dropped = fixes.verify(patches, lambda sources: runner.verify(
            sources, cfg, rules, cli_shapes, verbose, worker, jobs))
        warnings += dropped
    for warning in warnings:
        click.echo(f"bnlint: warning: {warning.render()}", err=True)
    return patches


def _apply(patches: list[fixes.FilePatch], report: Report, cfg, rules: dict, cli_shapes,
           verbose: bool, worker: runner.Worker | None, jobs: int,
           cache: Cache | None) -> Report:
    """Write the patches, then re-lint the patched files so the report shows what remains."""
    written, refused = [], []
    for patch in patches:
        try:
            files.write_atomic(patch.path, patch.new, patch.encoding, what="the fixed file",
                         unchanged=patch.old)
            written.append(patch)
        except InputError as exc:
            refused.append(exc)
        except OSError as exc:
            refused.append(InputError(f"cannot write the fixed file: {exc.strerror}.",
                                      path=patch.path))
    patches = written
    report = Report(models=report.models, errors=report.errors + refused, files=report.files,
                    file_findings=report.file_findings, cached=report.cached)
    fixed = sum(len(p.fixes) for p in patches)  # a line that two models report is fixed once
    click.echo(f"Fixed {fixed} finding{'s' if fixed != 1 else ''} in {len(patches)} "
               f"file{'s' if len(patches) != 1 else ''}.", err=True)
    for message in checkpoint.advice(patches, report):
        click.echo(f"bnlint: {message}", err=True, nl=False)
    if not patches:
        return report
    paths = {p.path for p in patches}
    again = runner.run(sorted(paths), cfg, rules, cli_shapes, verbose, worker, jobs,
                       cache=cache)
    kept = [m for m in report.models if m.path not in paths]
    return Report(models=kept + again.models, errors=report.errors + again.errors,
                  files=report.files,
                  cached=[p for p in report.cached if p not in paths] + again.cached,
                  file_findings=again.file_findings + [
                      f for f in report.file_findings if f.path not in paths])


def _print_errors(report: Report, problems: bool = True) -> None:
    """bnlint's errors and (unless the report shows them) the problems found in the code."""
    for error in report.errors:
        click.echo(f"bnlint: error: {error.render()}", err=True)
    for f in report.file_findings if problems else ():
        where = f"{f.path}:{f.line}: " if f.path and f.line else f"{f.path}: " if f.path else ""
        click.echo(f"bnlint: {f.severity}: {where}{f.code} {f.message}", err=True)


def _check_exclusive(**given) -> None:
    """Refuse two of --diff, --fix, --add-noqa and --write-baseline together: each decides
    what the run writes."""
    named = [f"--{name.replace('_', '-')}" for name, value in given.items() if value]
    if len(named) > 1:
        raise InputError(f"{' and '.join(named)} cannot be used together.",
                         hint="Run bnlint once for each.")


def _add_noqa(report: Report, linted: list[str]) -> None:
    """Suppress every finding in the linted files where it is built, then exit (0, or 2 when
    a file could not be linted or written)."""
    ours = {os.path.realpath(p): p for p in linted}
    spans: dict[str, list[tuple[int, int, str]]] = {}
    for f in report.findings:
        if f.path and f.line and os.path.realpath(f.path) in ours:
            spans.setdefault(ours[os.path.realpath(f.path)], []).append(
                (f.line, f.end_line or f.line, f.code))
    _print_errors(report)
    added, failed = {}, False
    for path, wanted in spans.items():
        try:
            added[path] = suppress.add_directives(path, wanted)
        except InputError as exc:
            click.echo(f"bnlint: error: {exc.render()}", err=True)
            failed = True
    total = sum(added.values())
    changed = sum(1 for n in added.values() if n)
    click.echo(f"Added {total} code{'s' if total != 1 else ''} to '# bnlint: ignore' "
               f"directives in {changed} file{'s' if changed != 1 else ''}.", err=True)
    sys.exit(2 if failed or report.errors else 0)


def _write_baseline(report: Report, path: str) -> None:
    """Record the findings in ``path``, then exit (0, or 2 when a file could not be linted:
    its findings are missing from the baseline)."""
    _print_errors(report)
    try:
        recorded = baseline.write(report, path)
    except InputError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(InputError(f"cannot write the baseline: {exc.strerror}.", path=path))
    click.echo(f"Recorded {recorded} finding{'s' if recorded != 1 else ''} in {path}."
               + (" Files that could not be linted are not in it." if report.errors else ""),
               err=True)
    sys.exit(2 if report.errors else 0)


def _emit(report: Report, cfg, rules: dict, output_file: str | None,
          want_statistics: bool = False, outcome: baseline.Outcome | None = None) -> None:
    _print_errors(report, problems=False)
    colour = output_file is None and cfg.format == "text" and sys.stdout.isatty() \
        and not os.environ.get("NO_COLOR")  # https://no-color.org
    rendered = render.render(report, cfg.format, rules, colour, want_statistics, outcome)
    if outcome is not None and not render.carries_baseline(cfg.format, want_statistics):
        for line in outcome.lines():
            click.echo(f"bnlint: {line}" if not line.startswith(" ") else line, err=True)
    if output_file:
        try:
            files.write_atomic(output_file, rendered, what="the report")
        except InputError as exc:
            _fail(exc)
        except OSError as exc:
            _fail(InputError(f"cannot write the report: {exc.strerror}.", path=output_file))
    else:
        click.echo(rendered, nl=False, color=colour)
