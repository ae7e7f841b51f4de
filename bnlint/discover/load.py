"""Import the user's file and read values from it: the file runs as a module (not as
``__main__``), as part of its package when it is in one (``pkg.sub.module``, imported from the
package root, so relative imports work), its modules' construction sites recorded; a failure
in it is a :class:`UserCodeError` that names its line."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import types
from pathlib import Path
from typing import Any

from ..errors import BUILD_FAILED, IMPORT_FAILED, InputError, UserCodeError
from ..model import sites
from ..model.sandbox import first_line


def _module_name(path: Path) -> str:
    return "bnlint_user_" + "".join(c if c.isalnum() else "_" for c in str(path.resolve()))


def user_error(exc: BaseException, path: Path, doing: str, hint: str,
               code: str = BUILD_FAILED) -> UserCodeError:
    site = sites.traceback_site(exc.__traceback__)
    return UserCodeError(code, f"{doing} raised {type(exc).__name__}: {first_line(exc)}"
                         .rstrip(": ") + ".", path=site.path if site else str(path),
                         line=site.line if site else None, hint=hint)


def package_module(path: Path) -> tuple[Path, str]:
    """(package root, dotted name) of a file: the root is the folder above the highest of the
    file's folders that hold an ``__init__.py``; a file in no package is its own module."""
    parts, folder = [path.stem], path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return folder, ".".join(parts)


def _import_hint(exc: ImportError) -> str:
    if "relative import" in str(exc):
        return ("The file imports from a package bnlint did not find: give bnlint the file "
                "inside its package (with its folders' __init__.py files).")
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return (f"Install {exc.name.split('.')[0]} in the environment that runs bnlint, or run "
                "bnlint from the environment your model uses.")
    return "Fix the import, or run bnlint from the environment your model uses."


def _importing(path: Path, run: Any) -> Any:
    """``run()``, a failure in the user's code at import turned into a located error."""
    try:
        return run()
    except ImportError as exc:
        raise user_error(exc, path, "importing the file", _import_hint(exc),
                         IMPORT_FAILED) from None
    except SystemExit as exc:
        raise user_error(exc, path, "importing the file",
                         "The file exits when imported; move that code under "
                         "`if __name__ == '__main__':`.", IMPORT_FAILED) from None
    except Exception as exc:  # noqa: BLE001 - the user's code raised: located, not fatal
        raise user_error(exc, path, "importing the file",
                         "bnlint imports your file as a module; code under "
                         "`if __name__ == '__main__':` does not run.", IMPORT_FAILED) from None


def load_module(path: Path, source: str | bytes | None = None) -> types.ModuleType:
    """Import the user's file (or ``source`` as if it were that file): a file in a package
    as ``pkg.sub.module`` with the package root first on ``sys.path`` (an installed library's
    file is the module already imported, when its package imports it), any other file under
    a name of its own with its folder first, as ``python file.py`` would. The file is compiled
    as bytes, so Python itself reads its encoding (a BOM, a coding line, else UTF-8), and
    without inheriting bnlint's own ``from __future__`` imports: it runs as ``python`` runs it
    (under bnlint's ``annotations``, a ``-> None`` would read as the string 'None')."""
    sites.claim(str(path))  # its lines are the user's, even in an installed package
    root, dotted = package_module(path.resolve())
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    parent, _, _ = dotted.rpartition(".")
    if parent:
        _importing(path, lambda: importlib.import_module(parent))
        if source is None and dotted in sys.modules:
            return sys.modules[dotted]
    if source is None:
        try:
            source = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read the file: {exc.strerror}.", path=str(path)) from None
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise UserCodeError(IMPORT_FAILED, f"SyntaxError: {exc.msg}.", path=str(path),
                            line=exc.lineno,
                            hint="Fix the syntax error, then run bnlint again.") from None
    name = dotted if parent else _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if parent:
        setattr(sys.modules[parent], dotted.rpartition(".")[2], module)

    def run() -> None:
        with sites.recording():
            exec(code, module.__dict__)
    _importing(path, run)
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
