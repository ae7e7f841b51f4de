"""Lint one model: trace it, run the static rules, probe it, run the measured rules; each
finding located at the code that built its layer, suppressible there, with its fix."""

from __future__ import annotations

import dataclasses
import inspect
import math
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .config import Config
from .discover.inputs import Examples, Inputs
from .discover.loss import Loss
from .discover.targets import Targets
from .errors import InputError, UserCodeError
from .findings import Evidence, Finding, Fix, InputsUsed, ModelReport, Verdict
from .measurement import ProbeResult
from .model import sites
from .model.build import build
from .model.graph import ModelGraph
from .model.sandbox import first_line
from .model.sites import Site
from .model.traced import forward_defaults
from .probing.advice import suggestions
from .probing.run import ProbeOptions, probe_batch, run_probe
from .rules import catalog, problems, suppress
from .rules import measured as measured_rules
from .rules import registry as checks
from .rules.base import Context, Hit
from .rules.catalog import Edit, Rule

if TYPE_CHECKING:
    from .fixes.source import Placed


def _model_site(model: nn.Module, path: str | None, line: int | None) -> Site | None:
    """Where the model is defined: the given file, else its class's (not torch's own)."""
    if path is None:
        try:
            path = inspect.getsourcefile(type(model))
            line = inspect.getsourcelines(type(model))[1]
        except (OSError, TypeError):
            return None
        if path is None or sites.is_library_file(path):
            return None
    return Site(path, line or 1, 1, line or 1, 1)


def _positioned(edit: Edit, hit: Hit, site: Site) -> Placed:
    """An edit anchored at the call that built the hit's module, with the argument's position."""
    from .fixes.source import Placed
    position = None
    if edit.action == "set_kwarg" and hit.layer is not None and hit.layer.obj is not None:
        params = list(inspect.signature(type(hit.layer.obj).__init__).parameters)[1:]
        if edit.name in params:
            position = params.index(edit.name)
    return Placed(edit, site.path, (site.line, site.col, site.end_line, site.end_col), position)


def _unpatchable(edits: list[Edit], site: Site | None, graph: ModelGraph, unflagged_here: bool,
                 model_site: Site | None) -> str | None:
    """Why the edits cannot be applied to the user's file, if they cannot."""
    if not any(e.action in catalog.CALL_ACTIONS for e in edits):
        if model_site is None:
            return "the model's source file is unknown"
        if graph.method != "fx":
            return "the repair needs a model torch.fx can trace"
        return None
    if site is None:
        return "its source line is unknown"
    if unflagged_here:  # editing the line would change modules that do not have the problem
        return f"line {site.line} also builds modules that do not have this problem"
    if model_site is not None and site.path != model_site.path:
        return f"the code is in {site.path}, not the model's file"
    return None


def _fix(rule: Rule, hits: list[Hit], site: Site | None, graph: ModelGraph,
         unflagged_here: bool, model_site: Site | None, model: str) -> Fix | None:
    """The finding's fix: a source patch's replacements (its file parsed once per run, for
    all its findings) where the rule's edit can be made, with how it changes the state_dict
    keys of the modules the finding's ``hits`` name; else what to do, display-only."""
    hit = hits[0]
    if rule.fix is None:
        return None
    description = fill(hit.fix_description or rule.fix.description or rule.use_instead, hit,
                       rule)
    edits = [rule.fix.edit] if rule.fix.edit else []
    if not edits:
        return Fix(rule.fix.applicability, description)
    problem = _unpatchable(edits, site, graph, unflagged_here, model_site)
    if problem is None:
        from .fixes import source, written  # libcst loads only when there is a patch to make
        from .fixes.keys import key_change
        try:
            placed = [_positioned(e, hit, site) if e.action in catalog.CALL_ACTIONS
                      else source.Placed(e, model_site.path, model=model,
                                         code=written.repair_code(rule.fix.repair, graph,
                                                                  model_site.path, rule.code))
                      for e in edits]
            replacements, diff = source.patch(placed)
            keys = key_change(edits, [h.layer for h in hits if h.layer is not None], graph)
            if keys is not None:
                description = f"{description} {keys.sentence()}"
            return Fix(rule.fix.applicability, description, replacements, diff or None, keys)
        except InputError as exc:  # cannot be written safely (e.g. the call takes **kwargs)
            problem = exc.message.rstrip(".")
    return Fix("display-only", f"{description} (Not patched: {problem}.)")


def fill(template: str, hit: Hit, rule: Rule) -> str:
    """A rule's template with the hit's fields (the catalog has checked that it names fields
    only); one that names a field the finder does not give is the rule file's error."""
    try:
        return template.format(**hit.fields).strip()
    except (KeyError, AttributeError, ValueError, TypeError) as exc:
        raise InputError(f"rule {rule.code}'s template cannot be filled: "
                         f"{type(exc).__name__}: {first_line(exc)}.", path=rule.path,
                         hint="A pattern rule's fields are m0, m1... (one per step), each "
                              "with .label and .what.") from None


RULE_FAILED = "internal error in rule"  # how a note about a crashed finder starts


def _hits(ctx: Context, rules: dict[str, Rule], notes: list[str]) -> list[tuple[Rule, Hit]]:
    """Every enabled rule's hits, one per rule and layer. A finder that crashes (a bnlint bug)
    costs its own findings only, and leaves a note."""
    hits: list[tuple[Rule, Hit]] = []
    for rule in rules.values():
        if not ctx.config.enabled(rule.code) or rule.found_by:  # found_by: not from the graph
            continue
        find = checks.finder(rule)
        if find is None:
            raise InputError(f"rule {rule.code} has no pattern and no built-in finder.",
                             path=rule.path, hint="Give a rule from --rules-dir a pattern.")
        found, seen = [], set()
        try:
            for hit in find(ctx, rule):
                key = hit.layer.key or hit.layer.name if hit.layer else None
                if key not in seen:
                    seen.add(key)
                    found.append((rule, hit))
        except Exception as exc:  # noqa: BLE001 - reported, and the other rules still run
            where = traceback.extract_tb(exc.__traceback__)[-1]
            notes.append(f"{RULE_FAILED} {rule.code}: {type(exc).__name__}: {first_line(exc)} "
                         f"({Path(where.filename).name}:{where.lineno}); its findings are "
                         "missing. Please report it.")
            continue
        hits.extend(found)
    return hits


def run_rules(ctx: Context, rules: dict[str, Rule], model_site: Site | None,
              model: str, notes: list[str]) -> list[Finding]:
    """Findings from the rules' hits: one per rule and source site (a line that builds many
    flagged modules, such as a helper called in a loop, is reported once, naming them all)."""
    groups: dict[tuple, list[Hit]] = {}
    for rule, hit in _hits(ctx, rules, notes):
        site = hit.site or (hit.layer.site if hit.layer else None)
        groups.setdefault((rule.code, site or id(hit)), []).append(hit)
    built_at: dict[Site, set[int]] = {}
    for module in ctx.model.modules():
        built = sites.site_of(module)
        if built is not None:
            built_at.setdefault(built, set()).add(id(module))
    findings = []
    for (code, _), group in groups.items():
        rule, hit = rules[code], group[0]
        site = hit.site or (hit.layer.site if hit.layer else None)
        where = site or model_site
        if where and suppress.is_suppressed(code, where.path, where.line, where.end_line):
            continue
        flagged = {id(h.layer.obj) for h in group if h.layer is not None}
        unflagged_here = bool(site is not None and built_at.get(site, set()) - flagged)
        message = fill(rule.message, hit, rule)
        evidence = Evidence.of(hit.evidence)
        if len(group) > 1:
            others = [h.layer.key for h in group[1:] if h.layer is not None]
            evidence = dataclasses.replace(evidence, modules=(hit.layer.key, *others))
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            message = f"{message} The same line builds {len(others)} more like it: {shown}."
        findings.append(Finding(
            code=code, name=rule.name, category=rule.category,
            severity=hit.severity or rule.severity, message=message,
            path=where.path if where else None, line=where.line if where else None,
            column=where.col if where else None, module=hit.layer.key if hit.layer else None,
            evidence=evidence,
            fix=_fix(rule, group, site, ctx.graph, unflagged_here, model_site, model),
            end_line=where.end_line if where else None,
            end_column=where.end_col if where else None))
    return sorted(findings, key=Finding.sort_key)


def _measured(finding: Finding, probe: ProbeResult) -> dict[str, float]:
    """The probe's value of each quantity a static finding predicted."""
    predicted, facts = finding.evidence.predicted, finding.evidence.facts
    first, last = facts.get("first_module"), facts.get("last_module")
    out: dict[str, float] = {}
    if "grad_ratio" in predicted and first and last:
        ratio = probe.measured_ratio(first, last)
        if ratio is not None:
            out["grad_ratio"] = ratio
    if "forward_rms_ratio" in predicted and first and last:
        a, b = probe.layer(first), probe.layer(last)
        if a and b:
            rms = [math.hypot(x.init["mean"], x.init["std"]) for x in (a, b)]
            if rms[0] > 0:
                out["forward_rms_ratio"] = rms[1] / rms[0]
    if "dead_fraction" in predicted:
        counted = facts.get("relu_units")  # BNL403's share: of these layers' units, together
        if counted:
            stats = [x for x in probe.layers if x.key in counted and "dead" in x.init]
            units = sum(x.units for x in stats)
            if units:
                out["dead_fraction"] = sum(x.init["dead"] * x.units for x in stats) / units
        else:
            layer = probe.layer(finding.module or "")
            if layer and "dead" in layer.init:
                out["dead_fraction"] = layer.init["dead"]
    return out


def _verdict(finding: Finding, rule: Rule, value: float, device: str,
             config: Config) -> Verdict | None:
    """What a measured ``value`` says of a finding whose rule names the quantity that must
    confirm it; None for a value that is not finite (an overflow: BNL904 reports it), or when
    the finding's own prediction of that quantity is not on that side either (it was raised for
    another reason, as BNL302 for a stack that explodes: a measurement cannot contradict what
    was not predicted)."""
    check = rule.measured
    if check is None or not math.isfinite(value):
        return None
    bound = rule.threshold(check.threshold, config.thresholds)

    def on_side(x: float) -> bool:
        return x > bound if check.side == "above" else x < bound

    predicted = finding.evidence.static(check.key)
    if isinstance(predicted, (int, float)) and math.isfinite(predicted) \
            and not on_side(predicted):
        return None
    confirmed = on_side(value)
    lowered = None if confirmed or finding.severity == "info" else finding.severity
    return Verdict(check.key, value, device, check.side, bound, confirmed, lowered)


def with_measurements(findings: list[Finding], probe: ProbeResult, rules: dict[str, Rule],
                      config: Config) -> list[Finding]:
    """The findings with ``evidence.measured`` beside ``evidence.predicted`` and, where the
    rule names the measured quantity that must confirm it, the verdict: a measurement that
    falls short of the rule's threshold lowers the finding to info."""
    out = []
    for f in findings:
        measured = _measured(f, probe)
        if measured:
            rule = rules[f.code]
            key = rule.measured.key if rule.measured else None
            verdict = _verdict(f, rule, measured[key], probe.device, config) \
                if key in measured else None
            evidence = dataclasses.replace(f.evidence, measured={**measured,
                                                                 "device": probe.device},
                                           verdict=verdict)
            f = dataclasses.replace(f, evidence=evidence,
                                    severity="info" if verdict and verdict.lowered_from
                                    else f.severity)
        out.append(f)
    return out


def _at_defaults(model: nn.Module, given: int) -> str:
    """The forward's other arguments, which it ran (and fx traced) at their defaults."""
    defaults = forward_defaults(model, given)
    return "; forward's " + ", ".join(f"{k}={v!r}" for k, v in defaults.items()) + \
        (" at its default" if len(defaults) == 1 else " at their defaults") if defaults else ""


def at_inferred_size(findings: list[Finding], probe: ProbeResult,
                     inputs: tuple) -> list[Finding]:
    """The findings whose numbers the probe measured, saying so when it ran on image inputs
    whose size bnlint inferred: gradients, dead units and the lr ceiling depend on it."""
    x = inputs[0] if inputs else None
    if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() >= 3):
        return findings
    size = probe.plan.resolution if probe.plan and probe.plan.resolution else tuple(x.shape[2:])
    note = (f" (Measured on {'x'.join(map(str, size))} inputs, a size bnlint inferred; give "
            "--input-shape to measure at the size you train at.)")
    return [dataclasses.replace(f, message=f.message + note)
            if f.evidence.measured or f.category == "measured" else f for f in findings]


Prober = Callable[[ModelGraph, tuple, Targets | None, ProbeOptions], ProbeResult]
"""What measures a model: :func:`~bnlint.probing.run.run_probe` on its weights, or the probe
across ranks (``bnlint.isolation.ranks``) on a model built on the meta device."""


def _probe(graph: ModelGraph, inputs: tuple, targets: Targets | None, config: Config,
           synthetic_inputs: bool, inferred_inputs: bool, in_place: bool,
           notes: list[str], prober: Prober | None, loss: Loss | None) -> ProbeResult | None:
    """Run the probe when enabled; a model it cannot run is noted, not fatal (a problem of
    the model's own code, as an output without a tensor, is raised for the caller to report)."""
    if prober is None and any(t.is_meta for t in (*graph.model.parameters(),
                                                  *graph.model.buffers())):
        notes.append("probe skipped: the model is on the meta device (no weights to run)")
        return None
    scripted = [name for name, m in graph.model.named_modules()
                if isinstance(m, torch.jit.ScriptModule)]
    if scripted:
        where = scripted[0] or "the model itself"
        notes.append(f"probe skipped: the model holds TorchScript modules ({where}, ...), which "
                     "the probe cannot run; subclass nn.Module instead of "
                     "torch.jit.ScriptModule to have it measured")
        return None
    options = ProbeOptions.from_config(config, synthetic_inputs=synthetic_inputs,
                                       inferred_inputs=inferred_inputs, in_place=in_place,
                                       loss=loss)
    try:
        return (prober or run_probe)(graph, inputs, targets, options)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. an output that does not depend on any parameter
        notes.append(f"probe skipped: {type(exc).__name__}: {first_line(exc)}")
        return None


def static_examples(inputs: tuple, rules: dict[str, Rule], config: Config) -> tuple:
    """The inputs the static pass runs on, of random ones bnlint inferred: their first examples,
    as many as the enabled rules that read the static forward's activations need (their
    ``forward_examples``) and at least 2, for BatchNorm's batch statistics. That forward costs
    in proportion to its batch: a quarter to a third of a lint's CPU time for a ResNet-50 at
    ImageNet's 224 px. Its forward is the one that tries the inferred shapes
    (:func:`first_that_builds`)."""
    x = inputs[0] if inputs else None
    if not isinstance(x, torch.Tensor) or not x.dim():
        return inputs
    needed = max([2, *(math.ceil(r.threshold(r.forward_examples, config.thresholds))
                       for code, r in rules.items()
                       if r.forward_examples and config.enabled(code))])
    if needed >= x.shape[0]:
        return inputs
    return tuple(t[:needed] if isinstance(t, torch.Tensor) and t.dim() and t.shape[0] == x.shape[0]
                 else t for t in inputs)


def first_that_builds(model: nn.Module, examples: Examples, rules: dict[str, Rule],
                      config: Config, placed: Callable[[tuple], tuple] | None = None
                      ) -> tuple[Inputs, ModelGraph]:
    """The first of ``examples`` whose static pass runs the model, and its graph, for
    :func:`lint` (``built``) with the flags those inputs give (inferred ones: a static pass on
    :func:`static_examples`). A shape bnlint inferred is thus confirmed by the forward the lint
    runs anyway; one the forward fails on gives way to the next candidate. ``placed``: the
    inputs as the static pass takes them (on the meta device across ranks)."""
    def static_graph(inputs: Inputs) -> ModelGraph:
        tensors = placed(inputs.tensors) if placed else inputs.tensors
        if inputs.inferred:
            tensors = static_examples(tensors, rules, config)
        return build(model, tensors)
    return examples.first_that_runs(static_graph)


def lint(model: nn.Module, inputs: Any, targets: Targets | None = None,
         config: Config | None = None, *, name: str | None = None, path: str | None = None,
         line: int | None = None, rules: dict[str, Rule] | None = None,
         synthetic_inputs: bool = False, inferred_inputs: bool = False,
         consumable: bool = False, inputs_how: str = "given to bnlint.lint",
         prober: Prober | None = None, built: ModelGraph | None = None) -> ModelReport:
    """Lint ``model`` with example ``inputs`` (a tensor or tuple of tensors): trace, run the
    static rules, probe (when ``config.probe``), run the measured rules, and attach the
    measurements to the findings. ``synthetic_inputs``: the inputs are random, not data;
    ``inferred_inputs``: and their shape was inferred (the static pass runs on as few of them
    as its rules need, :func:`static_examples`; the probe's plan may lower an image size).
    ``consumable``: the caller will not use the model again, so the probe may train it instead
    of a copy (the CLI's worker: no second copy in memory). ``inputs_how``: how the inputs were
    chosen, for the report. ``prober``: what measures the model, when not the single-process
    probe of its own weights. ``built``: the static pass's graph, when
    :func:`first_that_builds` ran it on these inputs."""
    config = config or Config()
    rules = rules if rules is not None else catalog.load(config.rules_dir)
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    seen = static_examples(inputs, rules, config) if inferred_inputs and synthetic_inputs \
        else inputs
    graph = built if built is not None else build(model, seen)
    model_site = _model_site(model, path, line)
    notes: list[str] = []
    name = name or type(model).__name__
    ctx = Context(graph, model, seen, targets, config, None,
                  probe_batch(inputs, config.probe_batch, synthetic_inputs), synthetic_inputs,
                  rules, notes=notes, source=model_site.path if model_site else None)
    static = {c: r for c, r in rules.items() if r.category != "measured"}
    findings = run_rules(ctx, static, model_site, name, notes)
    explosion = measured_rules.explosion_threshold(rules, config)
    probe = None
    params = list(model.parameters())
    frozen = bool(params) and not any(p.requires_grad for p in params)
    if config.probe and frozen:  # no optimizer can be built, and nothing would train
        notes.append("The probe did not run: no parameter of the model is trainable "
                     "(requires_grad=False everywhere), so there is no training to measure.")
    if config.probe and not frozen:
        try:
            ctx.prediction  # noqa: B018 - predicted from the weights before the probe trains them
        except Exception:  # noqa: BLE001 - a bnlint bug; each rule that needs it leaves a note
            consumable = False  # so the probe trains a copy and the weights stay as they were
        try:
            probe = _probe(graph, inputs, targets, config, synthetic_inputs, inferred_inputs,
                           consumable, notes, prober, ctx.loss)
        except UserCodeError as exc:
            if prober is not None:  # across ranks: the other ranks learn of it as it ends this one
                raise
            findings.append(_unprobed(exc, model, model_site, rules))
    if probe is not None:
        probe = _with_weaker(probe, rules, config, notes)
        ctx.probe = probe
        measured = {c: r for c, r in rules.items() if r.category == "measured"}
        findings = sorted(findings + run_rules(ctx, measured, model_site, name, notes),
                          key=Finding.sort_key)
        findings = with_measurements(findings, probe, rules, config)
        if inferred_inputs:
            findings = at_inferred_size(findings, probe, inputs)
        probe = _with_predictions(probe, ctx.prediction.layers)
    advice = suggestions(probe, findings, config, explosion,
                         {c for c, r in rules.items() if r.symptom == "exploding-gradients"},
                         probe is not None
                         and measured_rules.normalised_by(ctx, probe.first_module) is not None)
    return ModelReport(name, model_site.path if model_site else None,
                       model_site.line if model_site else None, graph.summary(), findings,
                       probe=probe, suggestions=advice, notes=notes,
                       inputs=InputsUsed(tuple(tuple(x.shape) for x in inputs
                                               if isinstance(x, torch.Tensor)),
                                         inputs_how + _at_defaults(model, len(inputs))),
                       explosion=measured_rules.explosion_course(probe.history, explosion)
                       if probe is not None else None)


def _unprobed(error: UserCodeError, model: nn.Module, model_site: Site | None,
              rules: dict[str, Rule]) -> Finding:
    """The finding of a problem in the model's code that stopped its probe (the forward
    raised in training, the output holds no tensor), beside the static findings, located at
    the raising line, else at the model's forward when the model's file defines it."""
    if error.line is None and model_site is not None:
        error.path, error.line = model_site.path, model_site.line
        try:
            path, line = inspect.getsourcefile(type(model).forward), \
                inspect.getsourcelines(type(model).forward)[1]
        except (OSError, TypeError):
            path = None
        if path is not None and Path(path).resolve() == Path(model_site.path).resolve():
            error.line = line
    error.path = error.path or (model_site.path if model_site else None)
    return problems.finding(error, rules[error.code])


def _with_predictions(probe: ProbeResult, predicted: dict[str, float]) -> ProbeResult:
    """The probe's layers with the gradient norm predicted for each beside the measurement."""
    layers = tuple(dataclasses.replace(x, predicted_grad=predicted[x.module])
                   if x.module in predicted and math.isfinite(predicted[x.module]) else x
                   for x in probe.layers)
    return dataclasses.replace(probe, layers=layers)


def _with_weaker(probe: ProbeResult, rules: dict[str, Rule], config: Config,
                 notes: list[str]) -> ProbeResult:
    """A probe the clock cut, with the enabled rules that read what it left short (their
    ``probe_reads``), and a note naming them."""
    if probe.cut is None:
        return probe
    weaker = tuple(code for code, rule in rules.items() if config.enabled(code)
                   and set(rule.probe_reads) & set(probe.cut.short))
    if weaker:
        notes.append(f"the probe's {' and '.join(p.replace('_', ' ') for p in probe.cut.short)} "
                     f"{'was' if len(probe.cut.short) == 1 else 'were'} cut short, so "
                     f"{', '.join(weaker)} judged less than planned (and may have missed what "
                     "they look for)")
    return dataclasses.replace(probe, cut=dataclasses.replace(probe.cut, weaker=weaker))
