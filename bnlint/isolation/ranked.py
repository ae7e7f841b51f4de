"""The parent side of ``--nproc``: the launcher (:mod:`.launch`) speaks JSON lines on its
stdout (file, phase, result, error, crash, done) and lints one file after another across its
ranks; a file that hangs or kills the ranks becomes an error and the rest go on in a fresh
launcher. Imports no torch."""

from __future__ import annotations

import collections
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..config import Config
from ..errors import BUILD_FAILED, FORWARD_FAILED, IMPORT_FAILED, InputError, UserCodeError
from ..findings import ModelReport, Report
from ..rules import problems
from ..rules.catalog import Rule

# The launchers running now, for runner.stop_all to end on a signal.
live: set[Worker] = set()


class Worker:
    """The launcher of ``nproc`` ranks (:mod:`.launch`) and the JSON-lines channel to it. It
    reports a stuck rank itself after ``--timeout``: it gets ``grace`` seconds more before it
    is killed."""

    LAUNCH_GRACE = 15.0

    def __init__(self, verbose: bool, nproc: int):
        self.grace = self.LAUNCH_GRACE
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "bnlint.isolation.launch"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        live.add(self)
        self.stderr: collections.deque[str] = collections.deque(maxlen=40)
        self.verbose = verbose
        threading.Thread(target=self._drain, daemon=True).start()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.buffer = b""

    def send(self, request: dict[str, Any]) -> None:
        try:
            self.proc.stdin.write(json.dumps(request).encode())
            self.proc.stdin.close()
        except BrokenPipeError:  # it died starting up; events() reports how
            pass

    def _drain(self) -> None:
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.stderr.append(line)
            if self.verbose:
                sys.stderr.write(line)

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

    def kill(self) -> None:
        live.discard(self)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def exit_status(self) -> str:
        code = self.proc.wait()
        if code < 0:
            return f"was killed by signal {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def tail(self) -> str:
        lines = [s.rstrip() for s in self.stderr if s.strip()][-5:]
        return (" Its last output: " + " | ".join(lines)) if lines else ""


def _stopped_code(what: str) -> str:
    """The rule of a run the model code stopped, by what the launcher was doing."""
    if what.startswith(("importing", "starting")):
        return IMPORT_FAILED
    return BUILD_FAILED if what.startswith("building") else FORWARD_FAILED


def _timed_out(path: str, what: str, timeout: float) -> UserCodeError:
    return UserCodeError(_stopped_code(what), f"timed out after {timeout:g} s while {what}.",
                         path=path,
                         hint="If the model is just slow, raise --timeout; if it hangs, the "
                              "code run while " + what + " is where to look.")


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
                    yield failed, _timed_out(failed, what, timeout)
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
                _stopped_code(what), f"the linting process {worker.exit_status()} while {what}.",
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
        cli_input_shape: list[list[int]] | None, verbose: bool, nproc: int) -> Report:
    """Lint ``files`` with each model's probe across ``nproc`` ranks on this host."""
    report = Report(files=len(files))
    request = _request(config, rules, cli_input_shape)
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
