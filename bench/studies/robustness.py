"""Robustness: lint a few hundred random layer stacks and check that bnlint never raises,
always returns JSON, and never leaves a NaN/Inf unreported.

    python -m bench.studies.robustness [--n 300] [--seed 0] [--steps 2] [--budget 1.0]
                               [--retry-ignore BNL202,BNL204]

Each model is drawn from ``generate``: an MLP on (B, F) or a CNN on (B, C, H, W), 1..60
blocks of affine (Linear, or Conv2d with kernel 1 or 3, size-preserving) with BatchNorm
before the affine, before or after the activation, or none; ReLU/Tanh/GELU/LeakyReLU or none,
spelled as modules or functionally; optional dropout and residual add; weights sometimes zeroed,
constant, tiny or huge, and now and then a NaN/Inf in one weight; some forwards have a
data-dependent branch so that torch.fx cannot trace them (bnlint then uses hooks). The same
``Chooser`` drives hypothesis (tests/test_robustness.py) and ``random.Random`` (here), and
``model_source`` writes any drawn model as a standalone file for the CLI.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import re
import statistics
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MAX_DEPTH = 60
STATUS_CODES = ("BNL304", "BNL904")  # non-finite weights; measured NaN/Inf


# ---------------------------------------------------------------- drawing


class Chooser:
    """Random choices from one primitive, ``integer(lo, hi)`` (inclusive), so hypothesis
    (``draw(st.integers(lo, hi))``) and ``random.Random.randint`` drive the same generator.
    Every choice shrinks towards its first option."""

    def __init__(self, integer: Callable[[int, int], int]):
        self.integer = integer

    def choice(self, options: tuple | list) -> Any:
        return options[self.integer(0, len(options) - 1)]

    def weighted(self, table: dict[Any, int]) -> Any:
        """An option of ``table`` with probability proportional to its weight."""
        pick = self.integer(0, sum(table.values()) - 1)
        for option, weight in table.items():
            if pick < weight:
                return option
            pick -= weight
        raise AssertionError("unreachable")

    def chance(self, percent: int) -> bool:
        return self.integer(0, 99) >= 100 - percent


# ---------------------------------------------------------------- specs


@dataclass
class Block:
    """One block: [bn] affine [bn] act [dropout] [bn] (+ input)."""
    affine: str          # linear | conv
    kernel: int          # conv kernel, 1 or 3 (padding keeps the size)
    width_in: int
    width: int           # output features / channels
    bias: bool
    bn: str              # none | pre (before the affine) | before (the act) | after (the act)
    act: str             # none | relu | tanh | gelu | leaky
    act_spelling: str    # "module" or a key of FUNCTIONS
    dropout: float       # 0: none
    dropout_spelling: str  # module | F.dropout
    residual: str        # none | + | torch.add (only when width_in == width)
    scale: str           # a key of SCALES
    scale_arg: float = 1.0


@dataclass
class Spec:
    kind: str            # mlp | cnn
    batch: int
    width: int           # input features / channels
    size: int            # CNN height = width (1 for MLPs)
    blocks: list[Block]
    pool: str            # cnn: mean | flatten | module; mlp: none
    classes: int
    head: str            # none | relu | relu_f | bn
    branch_at: int | None = None        # block before which a data-dependent `if` sits
    poison: tuple[int, str] | None = None  # (block, "nan" | "inf") in its affine weight
    seed: int = 0

    @property
    def depth(self) -> int:
        return len(self.blocks)


ACT_MODULES = {"relu": "nn.ReLU()", "tanh": "nn.Tanh()", "gelu": "nn.GELU()",
               "leaky": "nn.LeakyReLU(0.1)"}
ACT_FUNCTIONS = {"relu": ("F.relu", "torch.relu", ".relu()"), "tanh": ("torch.tanh",),
                 "gelu": ("F.gelu",), "leaky": ("F.leaky_relu",)}
SCALES = {"default": 70, "zero": 5, "constant": 5, "tiny": 5, "huge": 15}  # weights (percent)


def _block(c: Chooser, kind: str, width_in: int, max_width: int, perturbed: bool) -> Block:
    width = width_in if c.chance(70) else c.integer(1, max_width)
    act = c.weighted({"relu": 4, "tanh": 2, "gelu": 1, "leaky": 1, "none": 2})
    spelling = "module" if act == "none" or c.chance(60) else c.choice(ACT_FUNCTIONS[act])
    dropout = c.choice((0.1, 0.5)) if c.chance(15) else 0.0
    scale = c.weighted(SCALES) if perturbed else "default"
    scale_arg = 10.0 ** c.integer(1, 30) if scale == "huge" else \
        {"tiny": 1e-4, "constant": 0.5}.get(scale, 1.0)
    return Block(
        affine="conv" if kind == "cnn" else "linear",
        kernel=c.choice((3, 1)) if kind == "cnn" else 1,
        width_in=width_in, width=width, bias=c.chance(50),
        bn=c.weighted({"before": 4, "none": 3, "after": 2, "pre": 1}),
        act=act, act_spelling=spelling, dropout=dropout,
        dropout_spelling="module" if c.chance(60) else "F.dropout",
        residual=c.choice(("+", "torch.add")) if width == width_in and c.chance(30) else "none",
        scale=scale, scale_arg=scale_arg)


def generate(c: Chooser, max_depth: int = MAX_DEPTH) -> Spec:
    """A random model spec (small sizes: it is linted, not trained). Half the models keep
    PyTorch's init everywhere; in the others each block's weights may be rescaled."""
    kind = c.choice(("mlp", "cnn"))
    depth = c.integer(1, max_depth)
    cnn = kind == "cnn"
    perturbed = c.chance(50)
    batch, width = c.integer(2, 8), c.integer(1, 6 if cnn else 16)
    size = c.integer(3, 6) if cnn else 1
    blocks, w = [], width
    for _ in range(depth):
        blocks.append(_block(c, kind, w, 6 if cnn else 16, perturbed))
        w = blocks[-1].width
    pool = c.choice(("mean", "flatten", "module")) if cnn else "none"
    classes = c.integer(1, 5)
    head = c.weighted({"none": 6, "relu": 1, "relu_f": 1, "bn": 1})
    branch_at = c.integer(0, depth - 1) if c.chance(20) else None
    poison = (c.integer(0, depth - 1), c.choice(("nan", "inf"))) if c.chance(5) else None
    return Spec(kind, batch, width, size, blocks, pool, classes, head, branch_at, poison,
                seed=c.integer(0, 2 ** 16))


def random_spec(rng: random.Random, max_depth: int = MAX_DEPTH) -> Spec:
    return generate(Chooser(rng.randint), max_depth)


def bench_spec(seed: int, index: int) -> Spec:
    """Model ``index`` (from 0) of ``bench/studies/robustness.py --seed seed``, to rerun one."""
    rng = random.Random(seed)
    for _ in range(index):
        random_spec(rng)
    return random_spec(rng)


# ---------------------------------------------------------------- steps


@dataclass
class Step:
    """One line of the forward: ``module`` (self.<name>(x)), ``call`` (a FUNCTIONS entry),
    ``save`` (skip = x), ``add`` (skip + x, spelled ``arg``), ``branch`` (data-dependent if)."""
    op: str
    name: str = ""       # module attribute / FUNCTIONS key / add spelling
    ctor: str = ""       # module constructor expression
    arg: Any = None
    init: list[tuple[str, float]] = field(default_factory=list)  # (SCALES key, argument)


# key -> (fn(module, x, arg), source template)
FUNCTIONS: dict[str, tuple[Callable, str]] = {
    "F.relu": (lambda m, x, a: F.relu(x), "F.relu({x})"),
    "torch.relu": (lambda m, x, a: torch.relu(x), "torch.relu({x})"),
    ".relu()": (lambda m, x, a: x.relu(), "{x}.relu()"),
    "torch.tanh": (lambda m, x, a: torch.tanh(x), "torch.tanh({x})"),
    "F.gelu": (lambda m, x, a: F.gelu(x), "F.gelu({x})"),
    "F.leaky_relu": (lambda m, x, a: F.leaky_relu(x, 0.1), "F.leaky_relu({x}, 0.1)"),
    "F.dropout": (lambda m, x, a: F.dropout(x, a, m.training),
                  "F.dropout({x}, {a}, self.training)"),
    "mean": (lambda m, x, a: x.mean((2, 3)), "{x}.mean((2, 3))"),
    "flatten": (lambda m, x, a: torch.flatten(x, 1), "torch.flatten({x}, 1)"),
}

# weight perturbation -> (fn(weight, arg), source template); run under torch.no_grad()
INITS: dict[str, tuple[Callable, str]] = {
    "zero": (lambda w, a: w.zero_(), "{w}.zero_()"),
    "constant": (lambda w, a: w.fill_(a), "{w}.fill_({a!r})"),
    "tiny": (lambda w, a: w.mul_(a), "{w}.mul_({a!r})"),
    "huge": (lambda w, a: w.mul_(a), "{w}.mul_({a!r})"),
    "nan": (lambda w, a: w.view(-1).__setitem__(0, float("nan")),
            "{w}.view(-1)[0] = float('nan')"),
    "inf": (lambda w, a: w.view(-1).__setitem__(0, float("inf")),
            "{w}.view(-1)[0] = float('inf')"),
}


def _affine(b: Block) -> str:
    if b.affine == "linear":
        return f"nn.Linear({b.width_in}, {b.width}, bias={b.bias})"
    return (f"nn.Conv2d({b.width_in}, {b.width}, {b.kernel}, padding={b.kernel // 2}, "
            f"bias={b.bias})")


def _bn(kind: str, width: int) -> str:
    return f"nn.BatchNorm{'2d' if kind == 'cnn' else '1d'}({width})"


def _block_steps(spec: Spec, i: int, b: Block) -> list[Step]:
    p = f"b{i}_"
    steps = [Step("save")] if b.residual != "none" else []
    if b.bn == "pre":
        steps.append(Step("module", p + "bn", _bn(spec.kind, b.width_in)))
    init = [] if b.scale == "default" else [(b.scale, b.scale_arg)]
    if spec.poison and spec.poison[0] == i:
        init.append((spec.poison[1], 0.0))
    steps.append(Step("module", p + "affine", _affine(b), init=init))
    if b.bn == "before":
        steps.append(Step("module", p + "bn", _bn(spec.kind, b.width)))
    if b.act != "none":
        steps.append(Step("module", p + "act", ACT_MODULES[b.act]) if b.act_spelling == "module"
                     else Step("call", b.act_spelling))
    if b.dropout:
        steps.append(Step("module", p + "drop", f"nn.Dropout({b.dropout})")
                     if b.dropout_spelling == "module" else Step("call", "F.dropout",
                                                                 arg=b.dropout))
    if b.bn == "after":
        steps.append(Step("module", p + "bn", _bn(spec.kind, b.width)))
    if b.residual != "none":
        steps.append(Step("add", b.residual))
    return steps


def _head_steps(spec: Spec) -> list[Step]:
    steps, features = [], spec.blocks[-1].width
    if spec.pool == "module":
        steps += [Step("module", "pool", "nn.AdaptiveAvgPool2d(1)"),
                  Step("module", "flat", "nn.Flatten()")]
    elif spec.pool != "none":
        steps.append(Step("call", spec.pool))
    if spec.pool == "flatten":
        features *= spec.size * spec.size
    steps.append(Step("module", "head", f"nn.Linear({features}, {spec.classes})"))
    if spec.head == "relu":
        steps.append(Step("module", "head_act", "nn.ReLU()"))
    elif spec.head == "relu_f":
        steps.append(Step("call", "F.relu"))
    elif spec.head == "bn":
        steps.append(Step("module", "head_bn", f"nn.BatchNorm1d({spec.classes})"))
    return steps


def steps_of(spec: Spec) -> list[Step]:
    """The forward of ``spec`` as a flat list of steps."""
    steps: list[Step] = []
    for i, b in enumerate(spec.blocks):
        if spec.branch_at == i:
            steps.append(Step("branch"))
        steps += _block_steps(spec, i, b)
    return steps + _head_steps(spec)


# ---------------------------------------------------------------- models


class Stack(nn.Module):
    """A generated model: builds the modules of ``steps_of(spec)`` and walks the steps in
    forward (fx unrolls the loop; a ``branch`` step makes it untraceable)."""

    def __init__(self, spec: Spec):
        super().__init__()
        self.steps = steps_of(spec)
        for step in self.steps:
            if step.op == "module":
                self.add_module(step.name, eval(step.ctor, {"nn": nn}))
        with torch.no_grad():
            for step in self.steps:
                for how, arg in step.init:
                    INITS[how][0](getattr(self, step.name).weight, arg)

    def forward(self, x):
        skip = x
        for step in self.steps:
            if step.op == "module":
                x = getattr(self, step.name)(x)
            elif step.op == "call":
                x = FUNCTIONS[step.name][0](self, x, step.arg)
            elif step.op == "save":
                skip = x
            elif step.op == "add":
                x = skip + x if step.name == "+" else torch.add(skip, x)
            elif step.op == "branch" and x.mean() > 0:  # data-dependent: fx cannot trace it
                x = x.clone()
        return x


def build(spec: Spec) -> Stack:
    """The model of ``spec``, with weights seeded by ``spec.seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        return Stack(spec)


def input_shape(spec: Spec) -> tuple[int, ...]:
    if spec.kind == "cnn":
        return (spec.batch, spec.width, spec.size, spec.size)
    return (spec.batch, spec.width)


def example_inputs(spec: Spec) -> torch.Tensor:
    gen = torch.Generator().manual_seed(spec.seed)
    return torch.randn(input_shape(spec), generator=gen)


def _source_line(step: Step) -> list[str]:
    if step.op == "module":
        return [f"x = self.{step.name}(x)"]
    if step.op == "call":
        return ["x = " + FUNCTIONS[step.name][1].format(x="x", a=step.arg)]
    if step.op == "save":
        return ["skip = x"]
    if step.op == "add":
        return ["x = skip + x" if step.name == "+" else "x = torch.add(skip, x)"]
    return ["if x.mean() > 0:  # data-dependent: fx cannot trace it", "    x = x.clone()"]


def model_source(spec: Spec, name: str = "Generated") -> str:
    """A standalone model file for ``spec``: class ``name`` (same modules, init perturbations
    and forward as ``Stack``) and ``example_inputs()``."""
    steps = steps_of(spec)
    init = [f"        self.{s.name} = {s.ctor}" for s in steps if s.op == "module"]
    perturb = [" " * 12 + INITS[how][1].format(w=f"self.{s.name}.weight", a=arg)
               for s in steps for how, arg in s.init]
    if perturb:
        init += ["        with torch.no_grad():", *perturb]
    forward = [" " * 8 + line for s in steps for line in _source_line(s)]
    return "\n".join([
        "import torch", "import torch.nn.functional as F", "from torch import nn", "", "",
        f"class {name}(nn.Module):", "    def __init__(self):", "        super().__init__()",
        f"        torch.manual_seed({spec.seed})", *init, "", "    def forward(self, x):",
        "        skip = x", *forward, "        return x", "", "",
        "def example_inputs():",
        f"    gen = torch.Generator().manual_seed({spec.seed})",
        f"    return torch.randn({input_shape(spec)}, generator=gen)", ""])


# ---------------------------------------------------------------- invariants


def _shown(paths: list[str]) -> str:
    """Distinct paths with their indices blanked: ``probe.layers[].init.act_grad, ...``."""
    return ", ".join(dict.fromkeys(re.sub(r"\[\d+\]", "[]", p) for p in paths))


def nonfinite_numbers(value: Any, where: str = "") -> list[str]:
    """Paths (``.layers[3].init.std``) of the NaN/Inf floats in a JSON-like value."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [where or "."]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nonfinite_numbers(v, f"{where}.{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in nonfinite_numbers(v, f"{where}[{i}]")]
    return []


def nonfinite_tensors(model: nn.Module) -> list[str]:
    """Names of the model's floating-point parameters and buffers holding NaN/Inf."""
    return [n for n, t in (*model.named_parameters(), *model.named_buffers())
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def same_json(a: Any, b: Any) -> bool:
    """Equality of JSON-like values in which NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return a == b


def json_problems(public: dict[str, Any]) -> list[str]:
    """Whether the report survives json.dumps/json.loads unchanged (NaN == NaN here; strict
    RFC 8259 JSON, without NaN/Infinity, is ``strict_json_problems``)."""
    try:
        back = json.loads(json.dumps(public))
    except (TypeError, ValueError) as exc:
        return [f"json.dumps/loads failed: {exc}"]
    return [] if same_json(back, public) else ["the report changed in a JSON round trip"]


def strict_json_problems(public: dict[str, Any]) -> list[str]:
    """NaN/Infinity in the report: ``json.dumps`` writes them as literals that strict parsers
    (JavaScript's JSON.parse, Go, serde_json) reject."""
    try:
        json.dumps(public, allow_nan=False)
    except ValueError:
        return [f"NaN/Infinity at {p}" for p in nonfinite_numbers(public)]
    return []


_PLACEHOLDERS = re.compile(r"\b(nan|inf|None)\b")


def finding_problems(public: dict[str, Any], located: bool) -> list[str]:
    """Findings without a code, severity or message, with nan/inf/None in their message, or
    (when the model's source is known, ``located``) without path and line."""
    problems = []
    for f in public["findings"]:
        code = f.get("code")
        if not (isinstance(code, str) and re.fullmatch(r"BNL\d{3}", code)):
            problems.append(f"finding without a code: {f}")
        if f.get("severity") not in ("error", "warning", "info"):
            problems.append(f"{code}: bad severity {f.get('severity')!r}")
        if not f.get("message"):
            problems.append(f"{code}: empty message")
        elif _PLACEHOLDERS.search(f["message"]):
            problems.append(f"{code}: '{_PLACEHOLDERS.search(f['message'])[0]}' in the "
                            f"message | {f['message']}")
        if located and (f.get("path") is None or f.get("line") is None):
            problems.append(f"{code} ({f.get('module')}): no path/line")
    return problems


def note_problems(public: dict[str, Any]) -> list[str]:
    """Rules that raised: bnlint turns a crashing finder into a note and drops its findings."""
    from bnlint.engine import RULE_FAILED
    return [n.split(";")[0] for n in public["notes"] if n.startswith(RULE_FAILED)]


def nonfinite_seen(public: dict[str, Any], model: nn.Module,
                   exempt: tuple[str, ...] = ()) -> list[str]:
    """Where a NaN/Inf showed: the probe's measurements (not its ``predicted_*`` values, nor
    paths containing one of ``exempt``) or the model's parameters and buffers."""
    measured = [p for p in nonfinite_numbers(public.get("probe"), "probe")
                if "predicted" not in p and not any(e in p for e in exempt)]
    return measured + nonfinite_tensors(model)


def measured(report: Any) -> dict[str, Any]:
    """The report with the probe's and the findings' numbers as measured: ``public()`` turns
    NaN/Inf into null for JSON, which would hide exactly what these checks look for."""
    return {**report.public(), "probe": report.probe.to_dict() if report.probe else None,
            "findings": [f.to_dict() for f in report.findings]}


def unreported_nonfinite(public: dict[str, Any], model: nn.Module,
                         exempt: tuple[str, ...] = ()) -> list[str]:
    """NaN/Inf in the weights or the probe's measurements that no finding reports (BNL304
    non-finite-weights, BNL904 measured-nonfinite); non-finite weights need BNL304."""
    codes = {f["code"] for f in public["findings"]}
    problems = []
    seen = nonfinite_seen(public, model, exempt)
    if seen and not codes & set(STATUS_CODES):
        problems.append(f"NaN/Inf unreported at {_shown(seen)}")
    if nonfinite_tensors(model) and "BNL304" not in codes:
        problems.append(f"non-finite {', '.join(nonfinite_tensors(model))} without BNL304")
    probe = public.get("probe")
    if probe and probe.get("nan") and "BNL904" not in codes:
        problems.append("probe.nan is true but there is no BNL904")
    return problems


def nonfinite_predictions(public: dict[str, Any]) -> list[str]:
    """bnlint's own predictions (``predicted`` in the probe's layers or a finding's evidence)
    that are NaN/Inf: a prediction it cannot make should be left out, not NaN."""
    paths = [p for p in nonfinite_numbers(public) if "predicted" in p]
    return [f"NaN/Inf prediction at {_shown(paths)}"] if paths else []


def lint_config(probe: bool, steps: int = 2, budget: float = 1.0, ignore: tuple = ()):
    """The bench's and tests' settings: a short probe on a small batch."""
    from bnlint.config import Config
    return Config(probe=probe, probe_steps=steps, probe_budget=budget, probe_batch=8,
                  ignore=list(ignore))


# ---------------------------------------------------------------- bench


@dataclass
class Outcome:
    index: int
    spec: Spec
    seconds: float
    error: str = ""          # what lint raised, and where in bnlint
    retried: bool = False    # re-linted with --retry-ignore rules after raising
    method: str = ""
    codes: list[str] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)  # broken invariants by check
    strict_json: bool = True
    nonfinite: bool = False
    probe_skipped: bool = False

    def broke(self, check: str) -> bool:
        return bool(self.problems.get(check))


def _where(exc: BaseException) -> str:
    """The innermost bnlint frame of an exception: ``deep_unnormalised_stack
    (checks/depth.py:148)``."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f"{os.sep}bnlint{os.sep}" in f.filename]
    if not frames:
        return "outside bnlint"
    f = frames[-1]
    return f"{f.name} ({f.filename.split(os.sep + 'bnlint' + os.sep)[-1]}:{f.lineno})"


def lint_one(index: int, spec: Spec, config, retry_ignore: tuple[str, ...] = ()) -> Outcome:
    """Lint one generated model and check every invariant; never raises. A model whose lint
    raises is linted again with ``retry_ignore`` rules off, so its other invariants are still
    checked."""
    import bnlint
    model, inputs = build(spec), example_inputs(spec)
    start = time.perf_counter()
    error = ""
    try:
        report = bnlint.lint(model, inputs, config=config)
    except Exception as exc:  # noqa: BLE001 - any exception is what we count
        error = f"{type(exc).__name__} in {_where(exc)}"
        report = None
    seconds = time.perf_counter() - start
    if report is None and retry_ignore:
        retry = dataclasses.replace(config, ignore=[*config.ignore, *retry_ignore])
        try:
            report = bnlint.lint(model, inputs, config=retry)
        except Exception as exc:  # noqa: BLE001
            error += f"; retry: {type(exc).__name__} in {_where(exc)}"
    if report is None:
        return Outcome(index, spec, seconds, error=error)
    public, raw = report.public(), measured(report)
    return Outcome(index, spec, seconds, error=error, retried=bool(error),
                   method=report.trace["method"], codes=[f["code"] for f in public["findings"]],
                   problems={"note": note_problems(public), "json": json_problems(public),
                             "finding": finding_problems(public, located=True),
                             "unreported": unreported_nonfinite(raw, model),
                             "prediction": nonfinite_predictions(raw)},
                   strict_json=not strict_json_problems(public),
                   nonfinite=bool(nonfinite_seen(raw, model)),
                   probe_skipped=config.probe and public["probe"] is None)


def _count(outcomes: list[Outcome], test: Callable[[Outcome], bool]) -> int:
    return sum(1 for o in outcomes if test(o))


def summary(outcomes: list[Outcome]) -> list[str]:
    """The bench table (markdown)."""
    times = [o.seconds for o in outcomes]
    depths = [o.spec.depth for o in outcomes]
    linted = [o for o in outcomes if o.method]
    nan_cases = [o for o in linted if o.nonfinite]
    mlp = _count(outcomes, lambda o: o.spec.kind == "mlp")
    rows = [
        ("models (MLP / CNN)", f"{len(outcomes)} ({mlp} / {len(outcomes) - mlp})"),
        ("depth min / median / max",
         f"{min(depths)} / {statistics.median(depths):g} / {max(depths)}"),
        ("traced by fx / hooks", f"{_count(linted, lambda o: o.method == 'fx')} / "
                                 f"{_count(linted, lambda o: o.method == 'hooks')}"),
        ("raised (must be 0)", _count(outcomes, lambda o: bool(o.error))),
        ("  re-linted without the rules that raised", _count(outcomes, lambda o: o.retried)),
        ("a rule raised, turned into a note by bnlint (must be 0)",
         _count(linted, lambda o: o.broke("note"))),
        ("JSON round-trip failures (must be 0)", _count(linted, lambda o: o.broke("json"))),
        ("reports with NaN/Infinity (not strict JSON)",
         _count(linted, lambda o: not o.strict_json)),
        ("findings without code/severity/message/path+line, or nan in the message",
         _count(linted, lambda o: o.broke("finding"))),
        ("probe skipped", _count(linted, lambda o: o.probe_skipped)),
        ("reports with a NaN/Inf prediction (must be 0)",
         _count(linted, lambda o: o.broke("prediction"))),
        ("NaN/Inf cases (weights or probe) / reported (must be all)",
         f"{len(nan_cases)} / {_count(nan_cases, lambda o: not o.broke('unreported'))}"),
        ("  of them a NaN/Inf injected in a weight", _count(nan_cases, lambda o: o.spec.poison)),
        ("time per model: total / median / max (s)",
         f"{sum(times):.1f} / {statistics.median(times):.2f} / {max(times):.2f}"),
    ]
    lines = ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    counts = Counter(c for o in outcomes for c in o.codes)
    models_with = Counter(c for o in outcomes for c in set(o.codes))
    lines += ["", "| code | findings | models |", "|---|---|---|",
              *(f"| {c} | {counts[c]} | {models_with[c]} |" for c in sorted(counts))]
    return lines


def _kind(problem: str) -> str:
    """A problem without its specifics (the message after `` | ``), to group like with like."""
    return problem.split(" | ")[0]


def failures(outcomes: list[Outcome]) -> list[str]:
    """Each kind of broken invariant: how many models, and the first (``bench_spec(seed,
    index)`` rebuilds it)."""
    kinds: dict[str, list[Outcome]] = {}
    for o in outcomes:
        problems = [p for found in o.problems.values() for p in found]
        for problem in ([o.error] if o.error else []) + problems:
            kinds.setdefault(_kind(problem), []).append(o)
    return [f"| {len(found)} | {kind} | #{found[0].index} ({found[0].spec.kind}, depth "
            f"{found[0].spec.depth}) |" for kind, found in
            sorted(kinds.items(), key=lambda item: -len(item[1]))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2, help="probe steps")
    parser.add_argument("--budget", type=float, default=1.0, help="probe budget (s)")
    parser.add_argument("--retry-ignore", default="",
                        help="rules (comma-separated) to turn off when re-linting a model whose "
                             "lint raised, to check its other invariants")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    rng = random.Random(args.seed)
    config = lint_config(True, args.steps, args.budget)
    retry = tuple(c.strip().upper() for c in args.retry_ignore.split(",") if c.strip())
    wall = time.perf_counter()
    outcomes = []
    for i in range(args.n):
        outcomes.append(lint_one(i, random_spec(rng), config, retry))
        if (i + 1) % 50 == 0:
            print(f"... {i + 1}/{args.n}", file=sys.stderr, flush=True)
    print(f"torch {torch.__version__}, 1 thread; {args.n} models from seed {args.seed}; probe "
          f"steps {args.steps}, budget {args.budget:g} s, batch 8; wall "
          f"{time.perf_counter() - wall:.0f} s\n")
    print("\n".join(summary(outcomes)))
    broken = failures(outcomes)
    if broken:
        print("\nBroken invariants:\n\n| models | problem | first: index (bench_spec) |\n"
              "|---|---|---|")
        print("\n".join(broken))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
