"""One file in a child forked by the :mod:`.server`: import it, build its models and lint each
(or, for --fix, run each), sending every model's result as soon as it is done.

Messages (each to the server): phase {what, model, line}; models {models}; model {report};
model_error {model, line, error}; error {error}; crash {traceback, model?, line?}; read {files};
end. ``read`` lists the files the run read besides the linted one (the results cache's
dependencies: imported modules, data files), leaving out the standard library, torch and
bnlint, whose versions key the cache anyway. An error with a ``code`` is a problem in the
user's code (a UserCodeError), which the parent reports as a finding of that 0xx rule; the
others go on after it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

Send = Callable[..., None]


@dataclasses.dataclass
class Task:
    """What one child does: ``path`` with the request's settings; ``selected`` names the models
    left to lint after a child before it was lost (None: all), ``skip`` those never to build."""
    path: str
    selected: list[str] | None = None
    skip: frozenset[str] = frozenset()


def run(task: Task, request: dict[str, Any], rules: dict, send: Send) -> None:
    from ..discover.models import NoModelError
    from ..errors import InputError

    read = _record_reads()
    try:
        _run(task, request, rules, send)
    except NoModelError as exc:
        send("models", models=[])
        # quiet: allow-no-models, a folder's file (a utils.py), or a retry that found none left
        if not (request["config"]["allow_no_models"] or task.skip
                or task.path in request.get("may_be_empty", ())):
            send("error", error=exc.note().to_dict())
    except InputError as exc:
        send("error", error=exc.to_dict())
    except Exception:  # noqa: BLE001 - a bug in bnlint, not in the user's input
        send("crash", traceback=traceback.format_exc())
    send("read", files=read(task.path))
    send("end")


def _record_reads() -> Callable[[str], list[str] | None]:
    """Start recording the files this process opens for reading (Python's "open" audit event:
    imports, ``open``, ``numpy.load``, ``torch.load``...); the function returned lists them,
    as real paths, without ``linted`` and the files of the standard library, torch and bnlint
    (None if one could not be recorded). An import served from ``__pycache__`` counts as a read
    of its source."""
    import torch

    opened: set[str] = set()
    lost: list = []  # reads that could not be recorded: no list at all then

    def hook(event: str, args: tuple) -> None:
        if event != "open" or not isinstance(args[0], (str, bytes)):
            return
        try:  # an exception here would fail the user's open
            mode, flags = args[1], args[2]
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) \
                else (flags or 0) & os.O_ACCMODE != os.O_RDONLY
            if not writes:
                opened.add(os.path.abspath(os.fsdecode(args[0])))
        except Exception:  # noqa: BLE001 - e.g. the current folder was deleted
            lost.append(args[0])
    sys.addaudithook(hook)
    paths = sysconfig.get_paths()
    skipped = tuple({os.path.join(os.path.realpath(d), "") for d in (
        paths["stdlib"], paths["platstdlib"], os.path.dirname(torch.__file__),
        os.path.dirname(os.path.dirname(__file__)), "/proc", "/sys", "/dev")})

    def read(linted: str) -> list[str] | None:
        if lost:
            return None
        found = set()
        for path in list(opened):
            if os.path.basename(os.path.dirname(path)) == "__pycache__":
                try:
                    path = importlib.util.source_from_cache(path)
                except ValueError:  # not a cached module's name
                    pass
            real = os.path.realpath(path)
            if not real.startswith(skipped) and not os.path.isdir(real):
                found.add(real)
        found.discard(os.path.realpath(linted))
        return sorted(found)
    return read


def _run(task: Task, request: dict[str, Any], rules: dict, send: Send) -> None:
    import torch

    from ..config import Config
    from ..discover import inputs, load, models
    from ..errors import InputError

    path = Path(task.path)
    config = Config.from_dict(request["config"])
    if task.selected is not None:  # the names left, with the arguments --model gave them
        calls = [m for m in config.model if "(" in m and m.split("(")[0].strip() in task.selected]
        config = dataclasses.replace(config, model=[*task.selected, *calls])
    verify = request.get("mode") == "verify"
    torch.manual_seed(0)  # the file's own random example inputs and init: the same every run
    send("phase", what="importing the file", model=None, line=None)
    module = load.load_module(path, request["sources"][task.path] if verify else None)

    def building(name: str, line: int | None) -> None:
        send("phase", what=f"building model {name}", model=name, line=line)
        torch.manual_seed(0)  # each model's init is the same with or without the others

    discovery = models.find_models(module, path, config.model, task.skip, building)
    found = discovery.models
    send("models", models=[{"name": f.name, "line": f.line} for f in found])
    for problem in discovery.problems:  # what could not be built: the others go on
        send("error", error=problem.to_dict())
    for f in found:
        send("phase", what=f"linting model {f.name}", model=f.name, line=f.line)
        try:
            torch.manual_seed(0)
            examples = inputs.example_inputs(module, f, path, request.get("cli_input_shape"),
                                             config.input_shape, config.batch_size)
            if verify:
                _verify(f.model, examples, config, rules)
                send("model", report={"name": f.name})
            else:
                send("model", report=_lint(module, f, path, examples, config, rules))
        except InputError as exc:
            if verify:  # a patched file that fails anywhere fails as a whole
                raise
            send("model_error", model=f.name, line=f.line, error=exc.to_dict())
        except Exception:  # noqa: BLE001 - a bug in bnlint: the other models still go on
            send("crash", model=f.name, line=f.line, traceback=traceback.format_exc())


def _verify(model, examples, config, rules) -> None:
    """Run the patched model as linting it would: inferred inputs are tried in training mode
    on the static pass's examples (the first that runs is used), then the forward runs in
    evaluation mode on all of them."""
    from ..engine import static_examples
    from ..model.sandbox import run_forward

    def static(example) -> None:
        if example.inferred:
            seen = static_examples(example.tensors, rules, config)
            run_forward(lambda: model(*seen), model, seen, train=True)

    example, _ = examples.first_that_runs(static)
    run_forward(lambda: model(*example.tensors), model, example.tensors)


def _lint(module, found, path: Path, examples, config, rules) -> dict[str, Any]:
    from ..discover.targets import example_targets
    from ..engine import first_that_builds, lint

    example, graph = first_that_builds(found.model, examples, rules, config)
    targets = example_targets(module, found, path, config.targets, config.target_std, example)
    report = lint(found.model, example.tensors, targets, config, name=found.name, path=str(path),
                  line=found.line, rules=rules, synthetic_inputs=example.synthetic,
                  inferred_inputs=example.inferred, consumable=True,
                  inputs_how=example.how, built=graph)
    return report.to_dict()
