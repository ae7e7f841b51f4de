"""Import the user's file and read values from it: the file runs as a module (not as
``__main__``), its modules' construction sites recorded; a failure in it names its line."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import types
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..model import sites
from ..model.sandbox import first_line


def _module_name(path: Path) -> str:
    return "bnlint_user_" + "".join(c if c.isalnum() else "_" for c in str(path.resolve()))


def user_error(exc: BaseException, path: Path, doing: str, hint: str) -> InputError:
    site = sites.traceback_site(exc.__traceback__)
    return InputError(f"{doing} raised {type(exc).__name__}: {first_line(exc)}".rstrip(": ") + ".",
                      path=site.path if site else str(path), line=site.line if site else None,
                      hint=hint)


def load_module(path: Path, source: str | bytes | None = None) -> types.ModuleType:
    """Import the user's file (or ``source`` as if it were that file). The file is compiled
    as bytes, so Python itself reads its encoding (a BOM, a coding line, else UTF-8), and
    without inheriting bnlint's own ``from __future__`` imports: it runs as ``python`` runs it
    (under bnlint's ``annotations``, a ``-> None`` would read as the string 'None')."""
    if source is None:
        try:
            source = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read the file: {exc.strerror}.", path=str(path)) from None
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise InputError(f"SyntaxError: {exc.msg}.", path=str(path), line=exc.lineno,
                         hint="Fix the syntax error, then run bnlint again.") from None
    name = _module_name(path)
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[name] = module
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        with sites.recording():
            exec(code, module.__dict__)
    except ImportError as exc:
        raise user_error(exc, path, "importing the file",
                          "Install the missing package in the environment that runs bnlint, "
                          "or run bnlint from the environment your model uses.") from None
    except SystemExit as exc:
        raise user_error(exc, path, "importing the file",
                          "The file exits when imported; move that code under "
                          "`if __name__ == '__main__':`.") from None
    except Exception as exc:  # noqa: BLE001 - the user's code raised: located, not fatal
        raise user_error(exc, path, "importing the file",
                          "bnlint imports your file as a module; code under "
                          "`if __name__ == '__main__':` does not run.") from None
    return module


def required_params(obj: Any) -> list[str]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                                   p.KEYWORD_ONLY)]


def _call_with_name(fn: Any, name: str, path: Path, what: str) -> Any:
    try:
        return fn(name) if required_params(fn) else fn()
    except Exception as exc:  # noqa: BLE001 - the user's code raised
        raise user_error(exc, path, f"{what}()", f"Fix {what}() in the model file.") from None


def from_file(module: types.ModuleType, name: str, path: Path, fn_name: str,
               value_name: str) -> Any:
    """A value from ``fn_name()`` (optionally taking the model name) or ``value_name``."""
    fn = getattr(module, fn_name, None)
    if callable(fn):
        return _call_with_name(fn, name, path, fn_name)
    return getattr(module, value_name, None)
