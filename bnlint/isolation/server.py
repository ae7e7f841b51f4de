"""The fork server: a process that imports torch and bnlint once, then forks a fresh child per
file (``jobs`` at a time, the largest file first), so each file runs isolated from the others at
the cost of a fork, not of an import. It enforces the time limits, turns a child that hangs,
dies or writes something bnlint did not into an error located at the model it was on, forks
another child for that file's remaining models, and relays each model's result to the parent
as it comes.

Started by :mod:`.runner` as ``python -m bnlint.isolation.server FD``: FD is the write end of
the channel to the parent; the first line on stdin is the run's token, each further line a
request. To the parent: ready; model {file, report}; error {file, error}; end {file, reads};
done. ``reads`` lists the files the file's run read (see :mod:`.child`), or is None when the
result is not one to cache: a child timed out, died, crashed or sent something malformed.
The server ends itself (and its children) when the parent dies.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import json
import os
import selectors
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError, UserCodeError
from . import channel, child
from .group import last_lines, stopped_code, timed_out

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.25  # how often the loop looks at deadlines and at whether its parent still lives


def die_with_parent(sig: int) -> None:
    """Have the kernel send ``sig`` to this process when its parent ends (Linux); elsewhere
    the loops below notice the parent is gone by polling."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def _end_all(*_) -> None:
    """End this process and every child and grandchild (they share its process group)."""
    os.killpg(0, signal.SIGKILL)


@dataclass
class Running:
    """A child at work on one file (``index`` in the request's list)."""
    index: int
    task: child.Task
    pid: int
    events: channel.Reader
    output: int
    deadline: float
    phase: tuple[str, str | None, int | None] = ("importing the file", None, None)
    found: list[str] | None = None
    finished: set[str] = field(default_factory=set)
    ended: bool = False
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=40))
    problem: str | None = None  # why the server killed it
    status: int = 0
    crashed: bool = False  # bnlint raised (an internal error) in it
    reads: list[str] | None = None  # the files it read, when it said
    exit_fd: int | None = None  # readable once it has ended (a pidfd), where there are pidfds


class Server:
    def __init__(self, out_fd: int, token: str, parent: int):
        self.out, self.token, self.parent = out_fd, token, parent
        self.selector = selectors.DefaultSelector()
        self.running: dict[int, Running] = {}
        self.unsettled: set[int] = set()  # files whose result is not one to cache

    def send(self, event: str, **data: Any) -> None:
        _write_all(self.out, channel.encode(self.token, event, **data))

    def serve(self, request: dict[str, Any]) -> None:
        from ..rules import catalog

        rules = {r["code"]: catalog.Rule.from_dict(r) for r in request["rules"]}
        # the largest files first (a file's bytes are the one cost known before it runs: a
        # larger file tends to define more or larger models), so that the last to start are
        # short and no core idles while one long file ends the run: the folders bench's 38
        # files, given smallest first, took 23.0 s so, and 21.7-22.0 s (bench/RESULTS.md)
        queue = collections.deque(sorted(enumerate(child.Task(p) for p in request["files"]),
                                         key=lambda item: -_size(item[1].path)))
        self.unsettled = set()
        # what the server made (torch, bnlint: millions of objects) is put out of the
        # collector's reach, so a child's collections neither walk it nor write to the pages
        # the fork shares: a -j 1 run of the folders bench took 36.5 and 37.5 user CPU-s so,
        # against 38.3 and 40.3 (bench/RESULTS.md)
        gc.freeze()
        warm = False
        while queue or self.running:
            while queue and len(self.running) < request["jobs"]:
                self._start(*queue.popleft(), request, rules)
                if queue and not warm:  # once, while the first child runs
                    _warm_up()
                    gc.freeze()
                    warm = True
            self._wait(request)
            for run in [r for r in self.running.values() if self._exited(r, request)]:
                retry = self._finish(run, request)
                if retry:
                    queue.appendleft((run.index, retry))
                else:
                    settled = run.index not in self.unsettled and run.reads is not None
                    self.send("end", file=run.index, reads=run.reads if settled else None)
        self.send("done")

    def _start(self, index: int, task: child.Task, request: dict, rules: dict) -> None:
        events_r, events_w = os.pipe()
        output_r, output_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(events_r)
            os.close(output_r)
            self._child(server, task, request, rules, events_w, output_w)
        os.close(events_w)
        os.close(output_w)
        for fd in (events_r, output_r):
            os.set_blocking(fd, False)
        run = Running(index, task, pid, channel.Reader(events_r, self.token), output_r,
                      time.monotonic() + request["timeout"])
        self.running[pid] = run
        self.selector.register(events_r, selectors.EVENT_READ, run)
        self.selector.register(output_r, selectors.EVENT_READ, run)
        run.exit_fd = _exit_fd(pid)
        if run.exit_fd is not None:
            self.selector.register(run.exit_fd, selectors.EVENT_READ, run)

    def _child(self, server: int, task: child.Task, request: dict, rules: dict, events_w: int,
               output_w: int) -> None:
        """In the forked child: keep only its own two pipes, then lint the file and exit."""
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            die_with_parent(signal.SIGKILL)
            if os.getppid() != server:
                os._exit(code)
            mine = channel.high_fd(events_w)
            private = {self.out, self.selector.fileno()} | {
                fd for r in self.running.values() for fd in (r.events.fd, r.output, r.exit_fd)
                if fd is not None}
            for fd in private:
                os.close(fd)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            os.dup2(output_w, 1)
            os.dup2(output_w, 2)
            os.close(output_w)
            _watch_parent(server)
            # a child lives for one file and makes millions of objects (the models' layers,
            # the graph): the youngest generation is collected every 10,000 allocations, not
            # 700: the folders bench's 38 files, linted in one process, spent 0.27 CPU-s in
            # collections so, against 0.65
            gc.set_threshold(10_000, 10, 10)
            import torch

            torch.set_num_threads(max(1, torch.get_num_threads() // request["jobs"]))

            def send(event: str, **data: Any) -> None:
                _write_all(mine, channel.encode(self.token, event, **data))
            child.run(task, request, rules, send)
            code = 0
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _wait(self, request: dict) -> None:
        """Read what the children sent, or wait until the nearest deadline."""
        now = time.monotonic()
        nearest = min((r.deadline for r in self.running.values() if r.problem is None),
                      default=now + _POLL_S)
        for key, _ in self.selector.select(max(0.0, min(_POLL_S, nearest - now))):
            if key.fd != key.data.exit_fd:  # that one says it ended: the loop reaps it
                self._read(key.data, key.fd, request, once=True)
        if os.getppid() != self.parent:
            _end_all()
        now = time.monotonic()
        for run in self.running.values():
            if run.problem is None and now > run.deadline:
                run.problem = "timeout"
                _kill(run.pid)

    def _read(self, run: Running, fd: int, request: dict, once: bool = False) -> None:
        """Take what ``fd`` holds, up to its end (one read with ``once``: a child printing
        without end cannot hold the loop)."""
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                self.selector.unregister(fd)
                return
            self._take(run, fd, data, request)
            if once:
                return

    def _take(self, run: Running, fd: int, data: bytes, request: dict) -> None:
        if fd == run.output:
            text = data.decode("utf-8", "replace")
            run.tail.extend(text.splitlines())
            if request["verbose"]:
                sys.stderr.write(text)
                sys.stderr.flush()
            return
        run.events.buffer += data
        try:
            for message in run.events.messages():
                self._handle(run, message, request)
        except (channel.ChannelError, KeyError, TypeError, ValueError) as exc:
            if run.problem is None:
                run.problem = f"malformed: {exc}"
                _kill(run.pid)

    def _handle(self, run: Running, message: dict, request: dict) -> None:
        event, path = message["event"], run.task.path
        if run.problem is not None:
            return
        if event == "phase":
            run.phase = (str(message["what"]), message["model"], message["line"])
            run.deadline = time.monotonic() + request["timeout"]
        elif event == "models":
            run.found = [str(m["name"]) for m in message["models"]]
        elif event == "model":
            run.finished.add(str(message["report"]["name"]))
            self.send("model", file=run.index, report=message["report"])
        elif event == "model_error":
            run.finished.add(str(message["model"]))
            error = InputError.from_dict(message["error"])
            if not error.path:  # e.g. raised inside torch: the model that was running
                error.path, error.line = path, message["line"]
            self._error(run, error)
        elif event == "error":
            error = InputError.from_dict(message["error"])
            error.path = error.path or path
            self._error(run, error)
        elif event == "read":
            files = message["files"]
            run.reads = None if files is None else [str(p) for p in files]
        elif event == "crash":
            run.crashed = True
            model = message.get("model")
            if model:
                run.finished.add(str(model))
            verbose = request["verbose"]
            self._error(run, InputError(
                "internal error in bnlint while linting "
                + (f"model {model}" if model else "this file") + "; please report it with the "
                "traceback below." + ("\n" + message["traceback"] if verbose else ""),
                path=path, line=message.get("line"),
                hint="" if verbose else "Run with --verbose to see it."))
        elif event == "end":
            run.ended = True
        else:
            raise channel.ChannelError(f"an unknown event {event!r}")

    def _error(self, run: Running, error: InputError) -> None:
        self.send("error", file=run.index, error=error.to_dict())

    def _exited(self, run: Running, request: dict) -> bool:
        """Whether the child has ended (then all it wrote has been read)."""
        pid, status = os.waitpid(run.pid, os.WNOHANG)
        if pid == 0:
            return False
        run.status = status
        for fd in (run.events.fd, run.output):  # what it wrote before it ended
            if fd in self.selector.get_map():
                self._read(run, fd, request)
        return True

    def _finish(self, run: Running, request: dict) -> child.Task | None:
        """Close an ended child's pipes and report how it failed, if it did: the task for the
        models it left, if any."""
        del self.running[run.pid]
        for fd in (run.events.fd, run.output, run.exit_fd):
            if fd is None:
                continue
            if fd in self.selector.get_map():
                self.selector.unregister(fd)
            os.close(fd)
        if run.crashed or run.problem is not None or not run.ended:
            self.unsettled.add(run.index)
        if run.ended and run.problem in (None, "timeout"):
            return None
        what, model, line = run.phase
        path, timeout = run.task.path, request["timeout"]
        if run.problem == "timeout":
            error = timed_out(path, what, timeout, line)
        elif run.problem:
            error = InputError(
                f"internal error: bnlint's channel from the linting process carried something "
                f"bnlint did not write, while {what} ({run.problem.removeprefix('malformed: ')}).",
                path=path, line=line,
                hint="The model code may write to file descriptors it did not open; its results "
                     "are not trusted.")
        else:
            tail = last_lines(run.tail)
            error = UserCodeError(
                stopped_code(what), f"the linting process {_describe(run.status)} while {what}.",
                path=path, line=line,
                hint="The model code may call os._exit or crash the interpreter."
                + (" Its last output: " + " | ".join(tail) if tail else ""))
        self._error(run, error)
        if model is None or request.get("mode") == "verify":  # a patched file fails as a whole
            return None
        run.finished.add(model)
        if run.found is not None:
            left = [n for n in run.found if n not in run.finished]
            return child.Task(path, left, run.task.skip) if left else None
        selected = run.task.selected
        if selected is None:
            return child.Task(path, None, run.task.skip | {model})
        left = [n for n in selected if n != model]
        return child.Task(path, left, run.task.skip | {model}) if left else None


def _warm_up() -> None:
    """Load and run, once, what most children would each load or run for themselves, so that
    the children forked after it inherit it (the first pays its own): the meta device's imports
    (1.1-1.3 CPU-s of the size search's trials and the probe's plan there, see
    :func:`~bnlint.discover.sizes.warm_meta`), and libcst with bnlint's source fixes (0.15 s
    for a file with a fix to write; 11 of the folders bench's 38 files)."""
    from ..discover import sizes
    from ..fixes import source  # noqa: F401

    sizes.warm_meta()


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # the child reports it
        return 0


def _exit_fd(pid: int) -> int | None:
    """A descriptor that becomes readable when child ``pid`` ends (Linux 5.3+), so the loop
    reaps it at once: its pipes close a moment before it can be reaped, and a loop that found
    it not yet ended waited out _POLL_S, a quarter second a file with a core left idle. None
    where there are none: the poll still finds it."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _watch_parent(parent: int) -> None:
    """Where the kernel cannot end this process with its parent, a thread that does."""
    if sys.platform.startswith("linux"):
        return
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


def main(argv: list[str]) -> None:
    out = channel.high_fd(int(argv[1]))
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _end_all)
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:
        _end_all()
    token = sys.stdin.readline().strip()
    os.dup2(2, 1)  # print() in bnlint or torch goes where the parent reads the output
    sys.stdout = sys.stderr
    # Import the heavy parts before reading the request: the parent sends the token first
    # thing (or once it knows a file is not served by the results cache), so torch loads
    # while it parses options and config (or looks up the cache).
    from .. import engine  # noqa: F401 - torch, the model graph, the rules, the probe
    from ..discover import inputs, load, models, targets  # noqa: F401
    server = Server(out, token, parent)
    server.send("ready")
    for line in sys.stdin:
        server.serve(json.loads(line))


if __name__ == "__main__":
    main(sys.argv)
