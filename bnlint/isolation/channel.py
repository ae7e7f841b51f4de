"""The messages between bnlint's processes: one JSON object a line, each carrying the run's
random token, on pipes kept at descriptors model code does not reach by accident. A line that
is not such a message is an internal error, never a pass. Imports no torch."""

from __future__ import annotations

import fcntl
import json
import os
import resource
import secrets
from collections.abc import Iterator
from typing import Any

# Descriptors at or above this are chosen for the channels (below RLIMIT_NOFILE): far from the
# 0-20 that code writing to "every small fd" or a handful of open files would hit.
_HIGH_FD = 400


class ChannelError(Exception):
    """A message on a channel that bnlint did not write (or could not read)."""


def new_token() -> str:
    return secrets.token_hex(16)


def encode(token: str, event: str, **data: Any) -> bytes:
    return (json.dumps({"token": token, "event": event, **data}) + "\n").encode()


def high_fd(fd: int) -> int:
    """``fd`` moved to a high, close-on-exec descriptor (the original is closed)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    roomy = limit == resource.RLIM_INFINITY or limit > 2 * _HIGH_FD
    floor = _HIGH_FD + secrets.randbelow(_HIGH_FD // 2) if roomy else 3
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    os.close(fd)
    return moved


class Reader:
    """Messages from one pipe, checked against the token."""

    def __init__(self, fd: int, token: str):
        self.fd, self.token, self.buffer = fd, token, b""

    def feed(self) -> Iterator[dict[str, Any]] | None:
        """Read what is waiting: the complete messages, or None at end of file."""
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            return None
        self.buffer += chunk
        return self.messages()

    def messages(self) -> Iterator[dict[str, Any]]:
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            yield self.decode(line)

    def decode(self, line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line)
        except ValueError:
            raise ChannelError(f"a line that is not a message: {line[:80]!r}") from None
        if not (isinstance(message, dict) and isinstance(message.get("event"), str)
                and secrets.compare_digest(str(message.get("token", "")), self.token)):
            raise ChannelError(f"a message without this run's token: {line[:80]!r}")
        return message
