"""The parent side of ``--nproc``: the launcher (:mod:`.launch`) speaks JSON lines on its
stdout (file, phase, result, error, crash, done) and lints one file after another across its
ranks; a file that hangs or kills the ranks becomes an error and the rest go on in a fresh
launcher. Imports no torch."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from typing import Any

from ..config import Config
from ..errors import InputError, UserCodeError
from ..findings import ModelReport, Report
from ..rules import problems
from ..rules.catalog import Rule
from .group import ProcessGroup, stopped_code, timed_out


class Worker(ProcessGroup):
    """The launcher of ``nproc`` ranks (:mod:`.launch`) and the JSON-lines channel to it. It
    reports a stuck rank itself after ``--timeout``: it gets ``grace`` seconds more before it
    is killed."""

    LAUNCH_GRACE = 15.0

    def __init__(self, verbose: bool, nproc: int):
        self.grace = self.LAUNCH_GRACE
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "bnlint.isolation.launch"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        super().__init__(proc, proc.stderr, verbose)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.buffer = b""

    def send(self, request: dict[str, Any]) -> None:
        try:
            self.proc.stdin.write(json.dumps(request).encode())
            self.proc.stdin.close()
        except BrokenPipeError:  # it died starting up; events() reports how
            pass

    def events(self, timeout: float) -> Iterator[dict[str, Any] | None]:
        """Events as they come; None when ``timeout`` passes without one."""
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                yield json.loads(line)
            if not self.selector.select(timeout):
                yield None
                continue
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                return
            self.buffer += chunk

    def tail(self) -> str:
        lines = self.last_output()
        return (" Its last output: " + " | ".join(lines)) if lines else ""


def _first_left(files: list[str], finished: set[str]) -> str:
    return next((f for f in files if f not in finished), files[0])


def _drive(files: list[str], request: dict[str, Any], timeout: float, verbose: bool,
           started: Worker | None = None,
           nproc: int | None = None) -> Iterator[tuple[str, dict[str, Any] | InputError]]:
    """Run the worker (with ``nproc``, the launcher of that many ranks) over ``files`` (in
    ``started`` first, if given), yielding (path, result event or error) per file. A file that
    hangs or kills its process becomes an error and the rest go on in a fresh process."""
    remaining = list(files)
    while remaining:
        worker, started = started or Worker(verbose, nproc), None
        worker.send({**request, "files": remaining, "nproc": nproc})
        current, what = None, "starting the linting process (importing torch)"
        deadline = time.monotonic() + max(timeout, 60.0) + worker.grace
        finished: set[str] = set()
        for event in worker.events(timeout=1.0):
            if event is None:
                if time.monotonic() > deadline:
                    worker.kill()
                    failed = current or _first_left(remaining, finished)
                    yield failed, timed_out(failed, what, timeout)
                    finished.add(failed)
                    break
                continue
            kind = event["event"]
            if kind in ("file", "phase"):
                current = event["path"]
                what = event.get("what", "importing the file")
                deadline = time.monotonic() + timeout + worker.grace
            elif kind in ("result", "error", "crash"):
                finished.add(event["path"])
                if nproc and kind != "result":  # the launcher starts new ranks for the rest
                    current, what = None, "starting the ranks again (importing torch)"
                    deadline = time.monotonic() + max(timeout, 60.0) + worker.grace
                if kind == "error":
                    error = InputError.from_dict(event["error"])
                    error.path = error.path or event["path"]  # e.g. raised inside torch
                    yield event["path"], error
                elif kind == "crash":
                    yield event["path"], InputError(
                        "internal error in bnlint while linting this file; please report it "
                        "with the traceback below." + ("\n" + event["traceback"] if verbose
                                                        else ""), path=event["path"],
                        hint="" if verbose else "Run with --verbose to see it.")
                else:
                    yield event["path"], event
            elif kind == "done":
                finished.update(remaining)
                break
        else:  # the channel closed before "done": the process died
            failed = current or _first_left(remaining, finished)
            yield failed, UserCodeError(
                stopped_code(what), f"the linting process {worker.exit_status()} while {what}.",
                path=failed,
                hint="The model code may call os._exit or crash the interpreter." + worker.tail())
            finished.add(failed)
        worker.kill()
        remaining = [f for f in remaining if f not in finished]


def _request(config: Config, rules: dict[str, Rule],
             cli_input_shape: list[list[int]] | None) -> dict[str, Any]:
    return {"config": config.to_dict(), "rules": [r.to_dict() for r in rules.values()],
            "cli_input_shape": cli_input_shape}


def run(files: list[str], config: Config, rules: dict[str, Rule],
        cli_input_shape: list[list[int]] | None, verbose: bool, nproc: int,
        may_be_empty: Collection[str] = ()) -> Report:
    """Lint ``files`` with each model's probe across ``nproc`` ranks on this host; those in
    ``may_be_empty`` (found in a folder) are skipped when they define no model."""
    report = Report(files=len(files))
    request = {**_request(config, rules, cli_input_shape),
               "may_be_empty": [f for f in files if f in may_be_empty]}
    for path, outcome in _drive(files, request, config.timeout, verbose, None, nproc):
        if isinstance(outcome, UserCodeError):
            problems.add(report, outcome, path, rules, config)
        elif isinstance(outcome, InputError):
            report.errors.append(outcome)
        else:
            report.models.extend(ModelReport.from_dict(m) for m in outcome["models"])
            for problem in outcome.get("problems", ()):
                problems.add(report, InputError.from_dict(problem), path, rules, config)
    return report
