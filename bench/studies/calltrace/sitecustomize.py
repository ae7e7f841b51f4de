"""Call tracer for bench/studies/realworld.py, loaded by every Python process of a bnlint run
through PYTHONPATH (Python imports ``sitecustomize`` at start-up).

With ``REALWORLD_TRACE_LOG`` set it writes one JSON line per process (``start``: pid, argv)
and one per call of a top-level function defined in a file under ``REALWORLD_TRACE_ROOTS``
(os.pathsep-separated folders) that bnlint's own code made, directly or through other
libraries (``call``: file, function). Whether a call is bnlint's is decided by walking up the
stack to the nearest frame in a traced file or in bnlint's package (``REALWORLD_TRACE_BNLINT``):
a helper that the user's own code calls, or a hook torch calls inside the user's forward, is
the user's. So is a function that a torch.fx graph of the user's model calls (a leaf that
``torch.fx.wrap`` kept as a call, such as torchvision's ``stochastic_depth``): the graph's
generated code (``<eval_with_key>``) and fx's Interpreter run the model's own forward, whoever
started it. The system ``sitecustomize`` this file shadows, if any, still runs.
"""

import importlib.machinery
import json
import os
import sys
import threading

_LOG = os.environ.get("REALWORLD_TRACE_LOG")
_CO_OPTIMIZED = 0x1  # set on function code objects, not on module or class bodies


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
    graph_runner = os.path.join("torch", "fx", "interpreter.py")
    kinds: dict[str, str] = {}  # co_filename -> "user", "graph", "bnlint" or ""

    def kind(filename: str) -> str:
        found = kinds.get(filename)
        if found is None:
            path = "" if filename.startswith("<") else os.path.abspath(filename)  # <frozen os>
            graph = filename.startswith("<eval_with_key") or path.endswith(graph_runner)
            found = ("user" if path.startswith(roots) else "graph" if graph else
                     "bnlint" if path.startswith(package) else "")
            kinds[filename] = found
        return found

    def caller(frame) -> str:
        while frame is not None:
            found = kind(frame.f_code.co_filename)
            if found:
                return found
            frame = frame.f_back
        return "other"

    def tracer(frame, event, arg):
        code = frame.f_code
        if (event == "call" and code.co_flags & _CO_OPTIMIZED and code.co_qualname == code.co_name
                and not code.co_name.startswith("<") and kind(code.co_filename) == "user"
                and caller(frame.f_back) == "bnlint"):
            _write({"event": "call", "pid": os.getpid(), "file": os.path.abspath(code.co_filename),
                    "function": code.co_name, "line": code.co_firstlineno})
        return None

    _write({"event": "start", "pid": os.getpid(), "argv": sys.argv[:3]})
    sys.settrace(tracer)
    threading.settrace(tracer)


if _LOG:
    _install()
_load_shadowed()
