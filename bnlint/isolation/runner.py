"""The parent side of isolation: start the fork server (:mod:`.server`), hand it the files and
turn what it sends into a Report, in the order of the files whatever order they finish in.
Ends the server's whole process tree on exit and on SIGINT, SIGTERM or SIGHUP. Imports no
torch."""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from typing import Any, NamedTuple

from ..config import Config
from ..errors import InputError, UserCodeError
from ..findings import ModelReport, Report
from ..rules import problems
from ..rules.catalog import Rule
from . import channel, group, ranked
from .cache import Cache
from .group import ProcessGroup

# The exit code on each signal that stops bnlint: 128 + its number, as a shell reports it.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def default_jobs() -> int:
    """Files linted at once when -j is not given: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def stop_all() -> None:
    """End every fork server and launcher this process started, and their children."""
    for started in list(group.live):
        started.kill()


def stop_on_signals() -> None:
    """On SIGINT, SIGTERM or SIGHUP: end the process tree and exit 128 + the signal's number
    (130 for Ctrl-C), never the 1 that means findings."""
    def stop(signum: int, _frame) -> None:
        stop_all()
        sys.stderr.write(f"bnlint: stopped by {signal.Signals(signum).name}.\n")
        raise SystemExit(128 + signum)
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)


atexit.register(stop_all)


# glibc's allocator in the server and the children it forks (others ignore these; the user's
# own settings win): tensors under 32 MB (its largest fixed threshold on 64-bit) come from the
# heap, and up to 256 MB freed at its top stays there, so a child reuses the memory its
# forward passes free instead of mapping fresh pages for each tensor and faulting them in. By
# default the threshold adapts only as large blocks are freed, from 128 KB, and each child
# starts that over. A -j 2 run of the folders bench: 4.5 system CPU-s against 6.2, wall 22.3
# and 23.1 s against 24.1 and 24.4 (bench/RESULTS.md).
_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


class Worker(ProcessGroup):
    """The fork server and the channel from it. The process starts at once and imports torch
    when :meth:`start` sends it the run's token: at once when ``start``, else when the parent
    knows a file is to be linted (the results cache may hold them all); each request is
    handed over by :meth:`messages`."""

    def __init__(self, verbose: bool, start: bool = True):
        self.token = channel.new_token()
        read, write = os.pipe()
        # -P: the current folder is not put on sys.path, so a bisect.py or numpy.py there
        # cannot shadow the standard library or an installed package (each child puts its
        # file's package root on the path itself)
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "bnlint.isolation.server", str(write)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(write,),
            start_new_session=True, env={**_MALLOC, **os.environ})
        os.close(write)
        super().__init__(proc, proc.stdout, verbose)
        self.events = channel.Reader(read, self.token)
        self.selector = selectors.DefaultSelector()
        self.selector.register(read, selectors.EVENT_READ)
        self.ready = self.started = False
        if start:
            self.start()

    def start(self) -> None:
        """Have the server import torch and bnlint's linting code (once)."""
        if not self.started:
            self.started = True
            self._write(self.token + "\n")

    def _write(self, text: str) -> None:
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
        except OSError:  # it died starting up; messages() reports how
            pass

    def messages(self, request: dict[str, Any], startup: float) -> Iterator[dict[str, Any]]:
        """Send ``request``; then the server's messages up to "done". Raises InputError when
        it does not start within ``startup`` seconds, dies, or sends something malformed."""
        self.start()
        self._write(json.dumps(request) + "\n")
        deadline = time.monotonic() + startup
        while True:
            for message in self.events.messages():
                if message["event"] == "ready":
                    self.ready = True
                    continue
                yield message
                if message["event"] == "done":
                    return
            if not self.selector.select(1.0):
                if not self.ready and time.monotonic() > deadline:
                    self.kill()
                    raise InputError(f"timed out after {startup:g} s while starting the linting "
                                     "process (importing torch).",
                                     hint="The machine may be too busy; try again.")
                continue
            if self.events.feed() is None:
                self.kill()
                what = "while linting" if self.ready else "while starting (importing torch)"
                lines = self.last_output()
                raise InputError(f"the linting process {self.exit_status()} {what}.",
                                 hint="Its last output: " + " | ".join(lines) if lines else None)

    def alive(self) -> bool:
        return self.proc.poll() is None  # kill() waits for it



def _internal(problem: str, path: str) -> InputError:
    return InputError(f"internal error in bnlint: {problem}.", path=path,
                      hint="Please report it; run with --verbose to see the linting process's "
                           "output.")


class Collected(NamedTuple):
    """What the server sent of each file, in file order: its model reports, its errors, and
    the files its run read (None: not a result to cache, see :mod:`.server`)."""
    reports: list[list[dict]]
    errors: list[list[InputError]]
    reads: list[list[str] | None]


def _collect(files: list[str], request: dict[str, Any], worker: Worker | None,
             verbose: bool) -> Collected:
    if worker is None or not worker.alive():
        worker = Worker(verbose)
    reports: list[list[dict]] = [[] for _ in files]
    errors: list[list[InputError]] = [[] for _ in files]
    reads: list[list[str] | None] = [None for _ in files]
    ended = [False] * len(files)
    try:
        for message in worker.messages(request, startup=max(request["timeout"], 60.0)):
            kind = message["event"]
            if kind == "done":
                break
            index = message["file"]
            if not (isinstance(index, int) and 0 <= index < len(files)) or ended[index]:
                raise channel.ChannelError(f"a message for no file being linted: {kind}")
            if kind == "model" and isinstance(message["report"], dict):
                reports[index].append(message["report"])
            elif kind == "error" and isinstance(message["error"], dict):
                errors[index].append(InputError.from_dict(message["error"]))
            elif kind == "end":
                ended[index] = True
                reads[index] = _paths(message["reads"])
            else:
                raise channel.ChannelError(f"an unknown message {kind!r}")
    except InputError as exc:  # the server did not start, or died
        for i, path in enumerate(files):
            if not ended[i]:
                errors[i].append(InputError(exc.message, path=path, hint=exc.hint))
                ended[i] = True
    except (channel.ChannelError, KeyError, TypeError, ValueError) as exc:
        worker.kill()
        for i, path in enumerate(files):
            if not ended[i]:
                errors[i].append(_internal(f"a malformed message from the linting process "
                                           f"({exc})", path))
                ended[i] = True
    for i, path in enumerate(files):
        if not ended[i]:
            errors[i].append(_internal("the linting process reported no end for this file",
                                       path))
    return Collected(reports, errors, reads)


def _paths(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and all(isinstance(p, str) for p in value)):
        raise channel.ChannelError("an end message with malformed reads")
    return value


def _request(files: list[str], config: Config, rules: dict[str, Rule],
             cli_input_shape: list[list[int]] | None, verbose: bool, jobs: int) -> dict[str, Any]:
    return {"files": files, "config": config.to_dict(),
            "rules": [r.to_dict() for r in rules.values()], "cli_input_shape": cli_input_shape,
            "timeout": config.timeout, "verbose": verbose,
            "jobs": max(1, min(jobs, len(files)))}


def run(files: list[str], config: Config, rules: dict[str, Rule],
        cli_input_shape: list[list[int]] | None = None, verbose: bool = False,
        worker: Worker | None = None, jobs: int = 1, nproc: int | None = None,
        may_be_empty: Collection[str] = (), cache: Cache | None = None) -> Report:
    """Lint ``files``, ``jobs`` at a time, in ``worker`` (a fresh one when None or dead); with
    ``nproc``, one after another with each model's probe across that many ranks. Files in
    ``may_be_empty`` (found in a folder) are skipped when they define no model. With
    ``cache``, a file whose stored result still holds is not linted, and the settled results
    of those that are linted are stored."""
    if nproc:
        return ranked.run(files, config, rules, cli_input_shape, verbose, nproc, may_be_empty)
    report = Report(files=len(files))
    if not files:
        return report
    reports: list[list[dict]] = [[] for _ in files]
    errors: list[list[InputError]] = [[] for _ in files]
    stored = {i: cache.get(path, path in may_be_empty) for i, path in enumerate(files)} \
        if cache else {}
    todo = [i for i in range(len(files)) if stored.get(i) is None]
    if todo and worker is not None:
        worker.start()
    for i, hit in stored.items():
        if hit is not None:
            reports[i], errors[i] = hit
    if todo:
        linted = [files[i] for i in todo]
        request = {**_request(linted, config, rules, cli_input_shape, verbose, jobs),
                   "may_be_empty": [f for f in linted if f in may_be_empty]}
        got = _collect(linted, request, worker, verbose)
        for n, i in enumerate(todo):
            reports[i], errors[i] = got.reports[n], got.errors[n]
            if cache:
                cache.put(files[i], files[i] in may_be_empty, reports[i], errors[i],
                          got.reads[n])
    report.cached = [files[i] for i in range(len(files)) if i not in todo]
    for i in range(len(files)):
        try:
            report.models.extend(ModelReport.from_dict(m) for m in reports[i])
        except (KeyError, TypeError, ValueError) as exc:
            errors[i].append(_internal(f"a malformed model report ({exc})", files[i]))
        for error in errors[i]:
            if isinstance(error, UserCodeError):
                problems.add(report, error, files[i], rules, config)
            else:
                report.errors.append(error)
    return report


def verify(sources: dict[str, str], config: Config, rules: dict[str, Rule],
           cli_input_shape: list[list[int]] | None = None, verbose: bool = False,
           worker: Worker | None = None, jobs: int = 1) -> dict[str, InputError | list[str]]:
    """Import each patched source as if it were the file at its path, build its models and
    run their forward passes: the names of the models built, or the (first) error (a problem
    in the code fails it when its rule is an error, not a "not linted" note)."""
    files = list(sources)
    request = {**_request(files, config, rules, cli_input_shape, verbose, jobs),
               "mode": "verify", "sources": sources}
    reports, errors, _ = _collect(files, request, worker, verbose)
    failed = [[e for e in errors[i] if not isinstance(e, UserCodeError)
               or rules[e.code].severity == "error"] for i in range(len(files))]
    return {path: failed[i][0] if failed[i] else [str(m.get("name")) for m in reports[i]]
            for i, path in enumerate(files)}
