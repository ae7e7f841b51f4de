"""The launcher of ``bnlint model.py --nproc N``: a child of the CLI that speaks JSON lines to
:mod:`.ranked` and starts N ranks on this host with torch's elastic launcher
(``torch.distributed.launcher.api.elastic_launch``, what torchrun runs), each running
:func:`.ranks.run_ranks`. It relays rank 0's events from the ranks' board, and turns a rank
that fails, dies or hangs into one located error:

- a rank that raises has written its error: the launcher reports it, naming the rank;
- a rank that dies (a signal, ``os._exit``) is found by the elastic agent's monitoring, which
  ends the others; the launcher reports the exit and the phase it was in;
- when no rank moves to a new phase for ``--timeout`` seconds, the launcher asks every rank
  for its stack (SIGUSR1, ``faulthandler``), kills them all, and names the rank that was not
  waiting in a collective and the line of the model file it was running.

After a failure the files left are linted by a new set of ranks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InputError

Emit = Callable[..., None]

POLL = 0.2  # seconds between looks at the board
STARTING = 60.0  # at least this long for the ranks to start (each imports torch)
_FRAME = re.compile(r'^\s*File "(?P<path>.+)", line (?P<line>\d+) in (?P<func>\S+)')


def _frames(text: str) -> list[tuple[str, int, str]]:
    """(file, line, function) of a faulthandler dump's first thread, innermost first."""
    frames = []
    for line in text.splitlines():
        if frames and not line.strip():
            break
        match = _FRAME.match(line)
        if match:
            frames.append((match["path"], int(match["line"]), match["func"]))
    return frames


def _spawned() -> list[int]:
    """This process's children that multiprocessing spawned (the ranks)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


class _Watch(threading.Thread):
    """Relays rank 0's events from the board and ends ranks that stop making progress."""

    def __init__(self, folder: Path, nproc: int, timeout: float, emit: Emit):
        super().__init__(daemon=True)
        self.folder, self.nproc, self.timeout, self.emit = folder, nproc, timeout, emit
        self.finished: set[str] = set()
        self.current: str | None = None
        self.expired: InputError | None = None
        self._offset = 0
        self._began = time.time()
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(POLL):
            self._relay()
            if self._stalled():
                self.expired = self._expire()
                return
        self._relay()

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    def _relay(self) -> None:
        try:
            with open(self.folder / "events.jsonl", "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            event = json.loads(line)
            if event["event"] in ("file", "phase"):
                self.current = event["path"]
            elif event["event"] == "result":
                self.finished.add(event["path"])
            self.emit(event.pop("event"), **event)

    def states(self) -> dict[int, dict[str, Any]]:
        """Each rank's last state on the board: pid, phase (``what``, ``path``, ``since``)
        and its error, if it failed."""
        found = {}
        for rank in range(self.nproc):
            try:
                found[rank] = json.loads((self.folder / f"rank{rank}.json").read_text())
            except (OSError, ValueError):
                continue
        return found

    def _stalled(self) -> bool:
        moves = [s["since"] for s in self.states().values() if "since" in s]
        limit = self.timeout if moves else max(self.timeout, STARTING)
        return time.time() - max([self._began, *moves]) > limit

    def _expire(self) -> InputError:
        """Ask every rank for its stack, kill them all, and say which one was stuck where."""
        states = self.states()
        pids = {r: s["pid"] for r, s in states.items()}
        for pid in pids.values():
            _signal(pid, signal.SIGUSR1)
        time.sleep(2.0)  # faulthandler writes at once; a rank blocked in C code too
        for pid in {*pids.values(), *_spawned()}:
            _signal(pid, signal.SIGKILL)
        stuck, waiting = {}, []
        for rank in range(self.nproc):
            try:
                dump = (self.folder / f"rank{rank}.stack").read_text()
            except OSError:
                dump = ""
            sys.stderr.write(f"bnlint: rank {rank} when it timed out:\n{dump}\n")
            frames = _frames(dump)
            if frames and "torch/distributed/" in frames[0][0].replace(os.sep, "/"):
                waiting.append(rank)
            elif frames:
                stuck[rank] = frames
        what = next((s["what"] for s in states.values() if "what" in s),
                    "starting the ranks (importing torch)")
        path = next((s["path"] for s in states.values() if s.get("path")), self.current)
        hint = ("If the model is just slow, raise --timeout; if it hangs, the code it was "
                "running is where to look (--verbose shows every rank's stack).")
        if not stuck:
            ranks = "every rank was waiting in a collective (torch.distributed)" if waiting \
                else f"the {self.nproc} ranks had not reported"
            return InputError(f"timed out after {self.timeout:g} s while {what}: {ranks}.",
                              path=path, hint=hint)
        rank, frames = next(iter(stuck.items()))
        user = [f for f in frames if f[0] == path] or \
            [f for f in frames if not f[0].startswith("<")] or frames  # not <frozen importlib>
        where_path, where_line, func = user[0]
        who = f"rank {rank} of {self.nproc}" if len(stuck) == 1 else \
            f"ranks {', '.join(map(str, stuck))} of {self.nproc}"
        others = "; the other ranks waited for it" if waiting and len(stuck) == 1 else ""
        was = "was" if len(stuck) == 1 else "were"
        return InputError(f"timed out after {self.timeout:g} s while {what}: {who} {was} still "
                          f"running {func}(){others}.", path=where_path, line=where_line,
                          hint=hint)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _follows(error: dict[str, Any]) -> bool:
    """Whether a rank's error only says that another rank went away."""
    return any(text in json.dumps(error) for text in ("closed by peer", "reset by peer"))


def _failure(watch: _Watch, failure: Exception) -> tuple[str, dict[str, Any]]:
    """The event (kind, data) reporting a launch that ended with ``failure``: the first error
    a rank recorded that is not about another rank going away, else a rank that died without
    recording one (the ones the agent stopped last)."""
    states, n = watch.states(), watch.nproc
    path = next((s["path"] for s in states.values() if s.get("path")), watch.current)
    errors = sorted((s["failed"], r, s["error"]) for r, s in states.items() if "error" in s)
    causes = [e for e in errors if not _follows(e[2])]
    stopped = {-signal.SIGTERM}  # how the agent stops the others
    died = sorted((f.exitcode in stopped, f.timestamp, rank, f.exitcode)
                  for rank, f in getattr(failure, "failures", {}).items()
                  if "error" not in states.get(rank, {}))
    if died and not causes:
        _, _, rank, code = died[0]
        how = f"was killed by signal {signal.Signals(-code).name}" if code < 0 else \
            f"exited with code {code}"
        memory = " (SIGKILL is also how the kernel ends a process out of memory)" \
            if code == -signal.SIGKILL else ""
        what = states.get(rank, {}).get("what", "starting")
        return "error", {"path": path, "error": InputError(
            f"rank {rank} of {n} {how} while {what}{memory}.", path=path,
            hint="The model code may call os._exit or crash the interpreter; --verbose shows "
                 "the ranks' output.").to_dict()}
    if causes or errors:
        _, rank, error = (causes or errors)[0]
        same = len(errors) == n and all(e[2] == error for e in errors)
        where = "on every rank" if same else f"on rank {rank} of {n}"
        path = states[rank].get("path") or path
        if "input" in error:
            found = InputError.from_dict(error["input"])
            found.message = f"{where}: {found.message}"
            found.path = found.path or path
            return "error", {"path": path, "error": found.to_dict()}
        return "crash", {"path": path, "traceback": f"{where}:\n{error['crash']}"}
    return "error", {"path": path, "error": InputError(
        f"the ranks could not run: {type(failure).__name__}: {failure}.", path=path).to_dict()}


def _launch(request: dict[str, Any], emit: Emit) -> set[str]:
    """Lint ``request["files"]`` on ``request["nproc"]`` new ranks: the files it reported."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from .ranks import run_ranks

    folder = Path(tempfile.mkdtemp(prefix="bnlint-ranks-"))
    watch = _Watch(folder, request["nproc"], request["config"]["timeout"], emit)
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=request["nproc"],
        run_id=f"bnlint-{uuid.uuid4().hex}", rdzv_backend="c10d", rdzv_endpoint="localhost:0",
        max_restarts=0, start_method="spawn", shutdown_timeout=2,
        logs_specs=DefaultLogsSpecs(log_dir=str(folder / "logs")))
    watch.start()
    failure = None
    try:
        elastic_launch(config, run_ranks)(request, str(folder))
    except Exception as exc:  # noqa: BLE001 - ChildFailedError, or ranks that could not start
        failure = exc
    finally:
        watch.stop()
    try:
        if watch.expired is not None:
            path = watch.expired.path or watch.current or request["files"][0]
            emit("error", path=path, error=watch.expired.to_dict())
            watch.finished.add(path)
        elif failure is not None:
            kind, data = _failure(watch, failure)
            data["path"] = data["path"] or request["files"][0]
            emit(kind, **data)
            watch.finished.add(data["path"])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return watch.finished


def channel() -> Emit:
    """Keep the real stdout for the protocol (:mod:`.ranked` reads it) and point fd 1 at
    stderr for everything else."""
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(event: str, **data: Any) -> None:
        out.write(json.dumps({"event": event, **data}) + "\n")
        out.flush()
    return emit


def main() -> None:
    emit = channel()  # the ranks inherit stdout pointing at stderr
    import logging
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # we report
    request = json.loads(sys.stdin.read())
    emit("ready")
    remaining = list(request["files"])
    while remaining:
        finished = _launch({**request, "files": remaining}, emit)
        remaining = [f for f in remaining if f not in finished]
    emit("done")


if __name__ == "__main__":
    main()
