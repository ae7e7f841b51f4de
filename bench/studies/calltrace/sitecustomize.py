"""Call tracer for bench/studies/realworld.py, loaded by every Python process of a bnlint run
through PYTHONPATH (Python imports ``sitecustomize`` at start-up).

With ``REALWORLD_TRACE_LOG`` set it writes one JSON line per process (``start``: pid, argv)
and one per call of a top-level function defined in a file under ``REALWORLD_TRACE_ROOTS``
(os.pathsep-separated folders) that bnlint's own code made, directly or through other
libraries (``call``: file, function, ``by``). Who made a call is decided by walking up the
stack to the nearest frame that is in a traced file (the user's: a helper the user's own code
calls, as a constructor's), runs a model (torch's module call, ``Module._call_impl``, or
torch.fx's ``Interpreter``, through which bnlint runs a traced model node by node: ``by``
"model", a function the model's forward calls, as torchvision's ``fx.wrap``-ped
``stochastic_depth``, which fx-generated code calls with no user frame above it) or is in
bnlint's package (``REALWORLD_TRACE_BNLINT``: ``by`` "bnlint", a call bnlint made itself).
The user's calls are not logged. The system ``sitecustomize`` this file shadows, if any, still
runs.
"""

import importlib.machinery
import json
import os
import sys
import threading

_LOG = os.environ.get("REALWORLD_TRACE_LOG")
_CO_OPTIMIZED = 0x1  # set on function code objects, not on module or class bodies
# Frames that run a model: torch's module call, and torch.fx's node-by-node interpreter.
_MODULE_CALL = os.path.join("torch", "nn", "modules", "module.py")
_MODULE_CALLS = ("_call_impl", "_wrapped_call_impl")
_FX_INTERPRETER = os.path.join("torch", "fx", "interpreter.py")


def _load_shadowed() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(sys.modules[__name__])


def _write(record: dict) -> None:
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


def _install() -> None:
    roots = tuple(os.path.join(os.path.abspath(r), "")
                  for r in os.environ.get("REALWORLD_TRACE_ROOTS", "").split(os.pathsep) if r)
    package = os.path.join(os.path.abspath(os.environ["REALWORLD_TRACE_BNLINT"]), "")
    kinds: dict[str, str] = {}  # co_filename -> "user", "bnlint" or ""

    def kind(filename: str) -> str:
        found = kinds.get(filename)
        if found is None:
            path = "" if filename.startswith("<") else os.path.abspath(filename)  # <frozen os>
            found = ("user" if path.startswith(roots) else
                     "bnlint" if path.startswith(package) else "")
            kinds[filename] = found
        return found

    def runs_model(code) -> bool:
        return (code.co_filename.endswith(_MODULE_CALL) and code.co_name in _MODULE_CALLS) \
            or code.co_filename.endswith(_FX_INTERPRETER)

    def caller(frame) -> str:
        while frame is not None:
            found = kind(frame.f_code.co_filename)
            if found:
                return found
            if runs_model(frame.f_code):
                return "model"
            frame = frame.f_back
        return "other"

    def tracer(frame, event, arg):
        code = frame.f_code
        if (event == "call" and code.co_flags & _CO_OPTIMIZED and code.co_qualname == code.co_name
                and not code.co_name.startswith("<") and kind(code.co_filename) == "user"):
            by = caller(frame.f_back)
            if by in ("bnlint", "model"):
                _write({"event": "call", "pid": os.getpid(), "by": by,
                        "file": os.path.abspath(code.co_filename), "function": code.co_name,
                        "line": code.co_firstlineno})
        return None

    _write({"event": "start", "pid": os.getpid(), "argv": sys.argv[:3]})
    sys.settrace(tracer)
    threading.settrace(tracer)


if _LOG:
    _install()
_load_shadowed()
