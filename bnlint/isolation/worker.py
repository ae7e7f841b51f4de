"""The child process that runs the user's code: imports each file, lints its models and streams
the results to the parent as JSON lines on its own channel (the user's prints go to stderr).

Events: ready; file {path}; phase {path, what}; model {path, report} (each model's report as
soon as it is linted, so that a later model that hangs or ends the process does not take it
with it); result {path, models, problems}; error {path, error}; crash {path, traceback}; done.
A problem, or an error with a ``code``, is a problem in the user's code (a UserCodeError),
which the parent reports as a finding of that 0xx rule.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

Emit = Callable[..., None]


def channel() -> Emit:
    """Keep the real stdout for the protocol and point fd 1 at stderr for everything else."""
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(event: str, **data: Any) -> None:
        out.write(json.dumps({"event": event, **data}) + "\n")
        out.flush()
    return emit


def _models(path: Path, request: dict[str, Any], config, emit: Emit, problems: list,
            source: str | None = None):
    """The file's models, each with its example inputs: (module, found, inputs). What could
    not be built or run is added to ``problems`` (UserCodeErrors), and the others go on."""
    import torch

    from ..discover import inputs, load, models
    from ..errors import UserCodeError

    torch.manual_seed(0)  # the file's own random example inputs and init: the same every run
    module = load.load_module(path, source)
    emit("phase", path=str(path), what="building the models")
    found_models = models.find_models(module, path, config.model)
    problems.extend(found_models.problems)
    for found in found_models.models:
        emit("phase", path=str(path), what=f"linting model {found.name}")
        torch.manual_seed(0)
        try:
            yield module, found, inputs.example_inputs(
                module, found, path, request.get("cli_input_shape"), config.input_shape,
                config.batch_size)
        except UserCodeError as exc:
            problems.append(exc)


def verify_file(path: Path, request: dict[str, Any], emit: Emit,
                problems: list) -> list[dict[str, Any]]:
    """Import a patched source as the file at ``path``, build its models and run them."""
    from ..config import Config
    from ..model.sandbox import run_forward

    config = Config.from_dict(request["config"])
    names = []
    for _, found, inputs in _models(path, request, config, emit, problems,
                                    request["sources"][str(path)]):
        model, tensors = found.model, inputs.tensors
        run_forward(lambda m=model, t=tensors: m(*t), model, tensors)
        names.append(found.name)
    return [{"name": n} for n in names]


def lint_file(path: Path, request: dict[str, Any], rules, emit: Emit, problems: list) -> None:
    """Lint the file's models, emitting each one's report as a ``model`` event."""
    from ..config import Config
    from ..discover.targets import example_targets
    from ..engine import lint
    from ..errors import UserCodeError

    config = Config.from_dict(request["config"])
    for module, found, inputs in _models(path, request, config, emit, problems):
        try:
            targets = example_targets(module, found, path, config.targets,
                                      config.target_std, inputs)
            report = lint(found.model, inputs.tensors, targets, config, name=found.name,
                          path=str(path), line=found.line, rules=rules,
                          synthetic_inputs=inputs.source != "example_inputs",
                          inferred_inputs=inputs.source == "inferred", consumable=True,
                          inputs_how=inputs.how)
        except UserCodeError as exc:
            problems.append(exc)
            continue
        emit("model", path=str(path), report=report.to_dict())


def main() -> None:
    emit = channel()
    # Import the heavy parts before reading the request: the parent starts this process
    # first thing, so torch loads while it parses options and config.
    from .. import engine  # noqa: F401 - torch, the model graph, the rules, the probe
    from ..discover import inputs, load, models, targets  # noqa: F401
    from ..discover.models import NoModelError
    from ..errors import InputError
    from ..rules import catalog
    request = json.loads(sys.stdin.read())
    emit("ready")
    rules = {r["code"]: catalog.Rule.from_dict(r) for r in request["rules"]}
    for path in request["files"]:
        emit("file", path=path)
        problems: list[InputError] = []
        try:
            if request.get("mode") == "verify":
                models = verify_file(Path(path), request, emit, problems)
            else:
                lint_file(Path(path), request, rules, emit, problems)
                models = []  # sent one by one
            emit("result", path=path, models=models,
                 problems=[p.to_dict() for p in problems])
        except NoModelError as exc:  # a folder's file, or one allow-no-models skips: quiet
            quiet = request["config"]["allow_no_models"] or path in request.get("may_be_empty",
                                                                                  ())
            emit("result", path=path, models=[],
                 problems=[] if quiet else [exc.note().to_dict()])
        except InputError as exc:  # a UserCodeError here stops the file (its import)
            emit("error", path=path, error=exc.to_dict())
        except Exception:  # noqa: BLE001 - a bug in bnlint, not in the user's input
            emit("crash", path=path, traceback=traceback.format_exc())
    emit("done")


if __name__ == "__main__":
    main()
