"""Input errors: problems with what the user gave bnlint (an option, the config, a path),
reported as a message with exit code 2; and :class:`UserCodeError`, a problem in the user's
model code, which reports turn into a finding of its 0xx rule."""

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
        if data.get("code"):
            return UserCodeError(data["code"], data["message"], data.get("path"),
                                 data.get("line"), data.get("hint"))
        return cls(data["message"], data.get("path"), data.get("line"), data.get("hint"))


# The 0xx rules a UserCodeError reports under (bnlint/rules/BNL00*.yaml).
IMPORT_FAILED = "BNL002"   # importing the file raised, hung or ended the process
BUILD_FAILED = "BNL003"    # a model's constructor or factory raised, hung or ended the process
FORWARD_FAILED = "BNL004"  # the forward pass (or linting a model) raised, hung or ended it
NOT_LINTED = "BNL005"      # a model bnlint cannot build or run without more to go on (info)


class UserCodeError(InputError):
    """A problem in the user's code or in what bnlint can do with it (an import that raises, a
    constructor or forward that raises, a hang, a model it cannot build): reported as a
    finding of rule ``code`` (the 0xx family), located at the user's line, not as exit 2."""

    def __init__(self, code: str, message: str, path: str | None = None,
                 line: int | None = None, hint: str | None = None):
        super().__init__(message, path, line, hint)
        self.code = code

    def to_dict(self) -> dict:
        return {**super().to_dict(), "code": self.code}
