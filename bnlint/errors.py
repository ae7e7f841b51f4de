"""Input errors: problems with what the user gave us, reported as a message with exit code 2."""

from __future__ import annotations


def _one_period(text: str) -> str:
    """``text`` without the second period that "...: {exc}." leaves after an exception's own
    sentence (an ellipsis stays)."""
    return text[:-1] if text.endswith("..") and not text.endswith("...") else text


class InputError(Exception):
    """A bad input (file, option, model, config). Rendered without a traceback.

    ``path``/``line`` locate the problem when known; ``hint`` says what to do about it.
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 hint: str | None = None):
        message, hint = _one_period(message), hint and _one_period(hint)
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.hint = hint

    def location(self) -> str:
        if self.path and self.line:
            return f"{self.path}:{self.line}"
        return self.path or ""

    def render(self) -> str:
        where = self.location()
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f" {self.hint}"
        return text

    def to_dict(self) -> dict:
        return {"path": self.path, "line": self.line, "message": self.message, "hint": self.hint}

    @classmethod
    def from_dict(cls, data: dict) -> InputError:
        return cls(data["message"], data.get("path"), data.get("line"), data.get("hint"))
