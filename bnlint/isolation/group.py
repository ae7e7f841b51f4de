"""A process bnlint starts in a session of its own (the fork server, the ranks' launcher), so
that its process group is everything it starts: the last lines of its output kept for error
messages, and one way to end it; and what a process the model code stopped is reported as (by
the fork server for its children, by the parent for the launcher). Imports no torch."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from typing import IO

from ..errors import BUILD_FAILED, FORWARD_FAILED, IMPORT_FAILED, UserCodeError

# The groups running now, for runner.stop_all to end on a signal.
live: set[ProcessGroup] = set()


class ProcessGroup:
    """``proc`` (started with ``start_new_session=True``), whose ``output`` stream is read on
    a thread: the last 40 lines kept, and echoed to stderr when ``verbose``."""

    def __init__(self, proc: subprocess.Popen, output: IO[bytes], verbose: bool):
        self.proc, self.verbose = proc, verbose
        self.output: collections.deque[str] = collections.deque(maxlen=40)
        live.add(self)
        threading.Thread(target=self._drain, args=(output,), daemon=True).start()

    def _drain(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace")
            self.output.append(line)
            if self.verbose:
                sys.stderr.write(line)

    def last_output(self) -> list[str]:
        return last_lines(self.output)

    def kill(self) -> None:
        """End the process and everything it started (they share its process group)."""
        live.discard(self)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def exit_status(self) -> str:
        code = self.proc.wait()
        if code < 0:
            return f"was killed by signal {signal.Signals(-code).name}"
        return f"exited with code {code}"


def last_lines(lines: Iterable[str]) -> list[str]:
    """The last 5 non-blank ``lines``, stripped: a stopped process's output in a message."""
    return [s.strip() for s in lines if s.strip()][-5:]


def stopped_code(what: str) -> str:
    """The rule of a process the model code stopped (a hang, a crash), by what it was doing."""
    if what.startswith(("importing", "starting")):
        return IMPORT_FAILED
    return BUILD_FAILED if what.startswith("building") else FORWARD_FAILED


def timed_out(path: str, what: str, timeout: float, line: int | None = None) -> UserCodeError:
    return UserCodeError(stopped_code(what), f"timed out after {timeout:g} s while {what}.",
                         path=path, line=line,
                         hint="If the model is just slow, raise --timeout; if it hangs, the "
                              f"code run while {what} is where to look.")
