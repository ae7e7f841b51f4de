"""Side effects of linting, for bench/studies/realworld.py: files written or deleted in a folder
(snapshots of content hashes), and the user's top-level functions that bnlint called (read from
the log of bench/studies/calltrace/sitecustomize.py), each classed from the file's AST as a
model factory or not, the way issue 10 defines one.

What must be zero is bnlint calling a function that does not build a model. A function the
model itself calls while bnlint runs it (its forward's helper, reached through torch's module
call or torch.fx's interpreter, with no frame of the user's file above it) is the model's
call, counted apart as "model": bnlint ran the model, which is what it is for. Helpers a
constructor or factory calls are the user's code calling them, which the tracer does not log."""

from __future__ import annotations

import ast
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

TRACER = Path(__file__).resolve().parent / "calltrace"
HOOKS = ("example_inputs", "example_targets")  # bnlint's documented entry points in a file
# Annotations that say a function returns something other than a module.
_NOT_MODULE_TYPES = {"None", "bool", "int", "float", "str", "bytes", "dict", "list", "tuple",
                     "set", "Tensor", "torch.Tensor"}


def snapshot(folder: Path) -> dict[str, str]:
    """Content hash of every file under ``folder``, and ``dir`` for every folder (an empty one
    made, say, for a dataset download counts too); ``__pycache__`` is left out: Python writes
    bytecode there whenever it imports a module, and so may any tool."""
    hashes = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in dirnames:
            hashes[str(Path(dirpath, name).relative_to(folder)) + "/"] = "dir"
        for name in filenames:
            path = Path(dirpath, name)
            try:
                hashes[str(path.relative_to(folder))] = hashlib.sha1(path.read_bytes()).hexdigest()
            except OSError:
                hashes[str(path.relative_to(folder))] = "unreadable"
    return hashes


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """``+path`` created, ``-path`` deleted, ``~path`` modified."""
    out = [f"+{p}" for p in after if p not in before]
    out += [f"-{p}" for p in before if p not in after]
    out += [f"~{p}" for p in before if p in after and before[p] != after[p]]
    return sorted(out, key=lambda c: c[1:])


def tracer_env(log: Path, roots: list[Path], bnlint_dir: Path) -> dict[str, str]:
    """Environment additions that load the call tracer into every process bnlint starts."""
    path = os.pathsep.join(p for p in (str(TRACER), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "REALWORLD_TRACE_LOG": str(log),
            "REALWORLD_TRACE_ROOTS": os.pathsep.join(str(r) for r in roots),
            "REALWORLD_TRACE_BNLINT": str(bnlint_dir)}


@dataclass
class Call:
    file: str
    function: str
    verdict: str  # "factory", "hook", "not a factory" (made by bnlint); "model" (by the model)


@dataclass
class Trace:
    processes: list[list[str]]  # argv of each traced process
    calls: list[Call]

    @property
    def worker_traced(self) -> bool:
        """Whether a process other than the bnlint command itself was traced (the worker that
        runs the user's code); without one the tracer saw nothing and proves nothing."""
        return len(self.processes) >= 2

    @property
    def non_factory(self) -> list[Call]:
        return [c for c in self.calls if c.verdict == "not a factory"]


def read_trace(log: Path) -> Trace:
    processes, calls, seen = [], [], set()
    if log.exists():
        for line in log.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["event"] == "start":
                processes.append(record["argv"])
            elif (record["file"], record["function"]) not in seen:
                seen.add((record["file"], record["function"]))
                calls.append(Call(record["file"], record["function"],
                                  "model" if record.get("by") == "model"
                                  else verdict(Path(record["file"]), record["function"])))
    return Trace(processes, calls)


def verdict(path: Path, function: str) -> str:
    """Class a top-level function of ``path`` the way issue 10 defines a model factory: annotated
    with a type that is not a plain value, or every ``return`` gives a call (``return Net()``)
    or a name the function bound to a call (``model = Net(); ...; return model``)."""
    if function in HOOKS:
        return "hook"
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return "not a factory"
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                 and n.name == function), None)
    if node is None:
        return "not a factory"
    if node.returns is not None:
        return "not a factory" if ast.unparse(node.returns) in _NOT_MODULE_TYPES else "factory"
    returns = list(_own_nodes(node, ast.Return))
    built = {t.id for a in _own_nodes(node, ast.Assign) if isinstance(a.value, ast.Call)
             for t in a.targets if isinstance(t, ast.Name)}
    if returns and all(isinstance(r.value, ast.Call)
                       or (isinstance(r.value, ast.Name) and r.value.id in built)
                       for r in returns):
        return "factory"
    return "not a factory"


def _own_nodes(function: ast.AST, kind: type) -> list:
    """Nodes of ``kind`` in ``function``'s body, not in functions or classes nested in it."""
    found, stack = [], list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, kind):
            found.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
                          | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    return found
