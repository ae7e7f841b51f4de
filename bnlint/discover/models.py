"""Find what to lint in an imported file, deciding from its source what builds a model and
calling nothing else.

Models are the file's module-level nn.Module instances, the nn.Module classes it defines and
its model factories: functions whose every return is a module construction (a call of an
nn.Module class or of another factory, or a name assigned from one), or that are annotated to
return an nn.Module. Nothing else in the file is ever called. A class or factory is built with
its defaults; else with the arguments of a call of it in the file whose arguments are literals
or the file's own names (a ``test()`` function, a ``__main__`` block, module level); else with
those given by ``--model 'VGG("VGG16")'`` or ``model = [...]`` in the config. What still
cannot be built is a "not linted" finding (BNL005); a model nested too deep to lint is an
error finding (BNL004). Building blocks (a module inside another model found, or one without
parameters) are not linted on their own.
"""

from __future__ import annotations

import ast
import inspect
import types
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import FORWARD_FAILED, NOT_LINTED, InputError, UserCodeError
from ..model import sites
from . import syntax
from .load import required_params, user_error

# The deepest nesting of modules bnlint lints. torch walks a model's modules recursively
# (modules(), state_dict, deepcopy) and a nested module's forward costs about 5 Python frames per
# level, so Python's default limit of 1000 frames is reached near 200 levels. Measured on a model
# holding nn.Sequential nested n times (n + 1 levels): torch.fx's tracer fails by n = 150, the
# forward itself by 200, and everything (trace, rules, probe) works at 100 levels.
MAX_NESTING = 100

# Methods of an nn.Module that return it (``return Net().to(device)`` is still a construction).
_RETURNS_SELF = ("to", "cuda", "cpu", "eval", "train", "float", "double", "half", "bfloat16",
                 "requires_grad_", "apply")
# Alternative constructors by name, for model classes that are not nn.Module subclasses
# themselves (Hugging Face's AutoModel*.from_config builds a model from a config, offline).
_FROM_CONFIG = ("from_config",)
# Containers whose type says nothing of what they hold: parts of one are told by structure.
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_MISSING = object()


class NoModelError(InputError):
    """The file defines nothing to lint (``allow-no-models`` skips such a file)."""

    def note(self) -> UserCodeError:
        """The "not linted" note that reports it for a file given by name."""
        return UserCodeError(NOT_LINTED, f"not linted: {self.message}", self.path, self.line,
                             self.hint)


@dataclass
class FoundModel:
    name: str
    model: nn.Module
    line: int | None

    def __post_init__(self):
        # torch.compile(model) wraps the module; bnlint reads (and fx traces) the original
        original = getattr(self.model, "_orig_mod", None)
        if isinstance(original, nn.Module):
            self.model = original


@dataclass
class Discovery:
    """The models built, and what could not be built or linted (UserCodeErrors)."""
    models: list[FoundModel] = field(default_factory=list)
    problems: list[UserCodeError] = field(default_factory=list)


@dataclass
class Call:
    """Arguments to build a class or factory with, and where they come from."""
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    origin: str = "defaults"

    def made(self) -> tuple[tuple, dict]:
        """The arguments with each :class:`Nested` call in them made (when the model is built,
        so that an exception there is the model's build error)."""
        return tuple(_made(a) for a in self.args), {k: _made(v) for k, v in self.kwargs.items()}


@dataclass(frozen=True)
class Nested:
    """A call of the file's names inside a ``--model`` entry's arguments, as ``GPTConfig(
    n_layer=2)`` in ``--model 'GPT(GPTConfig(n_layer=2))'``: the user asked for it to run."""
    maker: Any
    call: Call


def _made(value: Any) -> Any:
    if isinstance(value, Nested):
        args, kwargs = value.call.made()
        return value.maker(*args, **kwargs)
    if isinstance(value, list | tuple | set):
        return type(value)(_made(v) for v in value)
    if isinstance(value, dict):
        return {k: _made(v) for k, v in value.items()}
    return value


class Source:
    """The file's syntax tree, parsed once: its top-level classes and functions, the line of
    each top-level assignment, and the names its namespace resolves."""

    def __init__(self, path: Path, namespace: dict[str, Any]):
        read = syntax.parsed(str(path))
        self.tree = read[0] if read else ast.Module(body=[], type_ignores=[])
        self.namespace = namespace
        self.defs = {n.name: n for n in self.tree.body
                     if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)}
        self.assigned: dict[str, int] = {}
        for node in self.tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AnnAssign) else [])
            for target in targets:
                if isinstance(target, ast.Name):
                    self.assigned.setdefault(target.id, node.lineno)

    def line(self, name: str) -> int | None:
        node = self.defs.get(name)
        if node is None:
            return self.assigned.get(name)
        return node.decorator_list[0].lineno if node.decorator_list else node.lineno

    def resolve(self, node: ast.expr) -> Any:
        """The object a name or dotted name stands for in the file's namespace (nothing is
        called; ``_MISSING`` when it is not a plain name)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "Net" annotation
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return _MISSING
        if isinstance(node, ast.Name):
            return self.namespace.get(node.id, _MISSING)
        if isinstance(node, ast.Attribute):
            owner = self.resolve(node.value)
            try:
                return _MISSING if owner is _MISSING else getattr(owner, node.attr, _MISSING)
            except Exception:  # noqa: BLE001 - a lazy module's __getattr__ may raise anything
                return _MISSING
        return _MISSING

    def value(self, node: ast.expr, nested: bool = False) -> Any:
        """An argument's value: a literal, a name of the file's, or a list, tuple or dict of
        those; ``_MISSING`` for anything that would run code, except, when ``nested``, a call
        of a name of the file's with such arguments (a :class:`Nested`, made at build time)."""
        try:
            return ast.literal_eval(node)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
        if nested and isinstance(node, ast.Call):
            maker = self.resolve(node.func)
            call = self.call(node, "", nested=True)
            return _MISSING if maker is _MISSING or not callable(maker) or call is None \
                else Nested(maker, call)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            items = [self.value(e, nested) for e in node.elts]
            if any(i is _MISSING for i in items):
                return _MISSING
            return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
        if isinstance(node, ast.Dict):
            keys = [self.value(k) if k is not None else _MISSING for k in node.keys]
            values = [self.value(v, nested) for v in node.values]
            if any(x is _MISSING for x in (*keys, *values)):
                return _MISSING
            return dict(zip(keys, values))
        return self.resolve(node)

    def call(self, node: ast.Call, origin: str, nested: bool = False) -> Call | None:
        """The arguments of a call, when each is a :meth:`value` (no ``*args``)."""
        if any(isinstance(a, ast.Starred) for a in node.args) \
                or any(k.arg is None for k in node.keywords):
            return None
        args = [self.value(a, nested) for a in node.args]
        kwargs = {k.arg: self.value(k.value, nested) for k in node.keywords}
        if any(v is _MISSING for v in (*args, *kwargs.values())):
            return None
        return Call(tuple(args), kwargs, origin)

    def call_sites(self, names: set[str], builders: set[str]) -> dict[str, list[Call]]:
        """Calls of ``names`` whose arguments are all values, first seen first: at module
        level, in a ``__main__`` block or a function (a test), not inside ``builders`` (the
        file's models and factories, where a call builds a part: ``conv3x3(3, 16)``)."""
        sites_of: dict[str, list[Call]] = {}
        skipped = {id(n) for name in builders for n in ast.walk(self.defs[name])}
        for node in ast.walk(self.tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in names and (node.args or node.keywords):
                call = self.call(node, f"the call at line {node.lineno}")
                if call is not None:
                    sites_of.setdefault(node.func.id, []).append(call)
        return sites_of


def _is_module_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, nn.Module)


def _body_nodes(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    """The nodes of a function's own body (not of functions or classes nested in it)."""
    out, stack = [], list(fn.body)
    while stack:
        node = stack.pop()
        out.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
                          | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    return out


def _annotated_module(source: Source, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return fn.returns is not None and _is_module_class(source.resolve(fn.returns))


def factories(source: Source) -> set[str]:
    """The file's top-level functions that build a model, decided from their source alone."""
    functions = {name: node for name, node in source.defs.items()
                 if isinstance(node, ast.FunctionDef)}
    found = {name for name, fn in functions.items() if _annotated_module(source, fn)}

    def constructs(node: ast.expr | None, assigned: dict[str, list[ast.expr]],
                   seen: frozenset = frozenset()) -> bool:
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _RETURNS_SELF \
                    and isinstance(func.value, ast.Call | ast.Name):
                return constructs(func.value, assigned, seen)
            if isinstance(func, ast.Name) and func.id in found:
                return True
            if isinstance(func, ast.Attribute) and func.attr in _FROM_CONFIG:
                return True
            target = source.resolve(func)
            if _is_module_class(target) or (inspect.ismethod(target)
                                            and _is_module_class(target.__self__)):
                return True  # a class, or an alternative constructor (a classmethod) of one
            if callable(target) and not isinstance(target, type):
                try:
                    returns = inspect.signature(target).return_annotation
                except (TypeError, ValueError):
                    return False
                return _is_module_class(returns)
            return False
        if isinstance(node, ast.Name) and node.id in assigned and node.id not in seen:
            return any(constructs(v, assigned, seen | {node.id}) for v in assigned[node.id])
        return False

    changed = True
    while changed:
        changed = False
        for name, fn in functions.items():
            if name in found:
                continue
            nodes = _body_nodes(fn)
            returns = [n.value for n in nodes if isinstance(n, ast.Return)]
            assigned: dict[str, list[ast.expr]] = {}
            for n in nodes:
                if isinstance(n, ast.Assign):
                    for t in n.targets:
                        if isinstance(t, ast.Name):
                            assigned.setdefault(t.id, []).append(n.value)
            if returns and all(constructs(r, assigned) for r in returns):
                found.add(name)
                changed = True
    return found


def _covered(source: Source, classes: set[str], makers: set[str]) -> set[str]:
    """Classes and factories another model or factory of the file builds: named in another
    nn.Module class's body (a block, a ``conv3x3`` helper), or in a factory (``ResNet(
    BasicBlock, [2, 2])``), whose own finding or note speaks for them."""
    used: set[str] = set()
    for name in classes | makers:
        used |= {n.id for n in ast.walk(source.defs[name]) if isinstance(n, ast.Name)
                 and n.id != name}
    return used & (classes | makers)


def _passed_through(source: Source, name: str) -> list[str]:
    """What a factory's ``**kwargs`` must hold: the required parameters of the models it
    constructs with them that the call does not give (``def resnet(**kwargs): return
    ResNet(**kwargs)`` needs ResNet's ``depth``)."""
    fn = source.defs[name]
    if not isinstance(fn, ast.FunctionDef) or fn.args.kwarg is None:
        return []
    needed: list[str] = []
    for node in _body_nodes(fn):
        if not (isinstance(node, ast.Call) and any(
                k.arg is None and isinstance(k.value, ast.Name)
                and k.value.id == fn.args.kwarg.arg for k in node.keywords)):
            continue
        target = source.resolve(node.func)
        if not callable(target):
            continue
        given = {k.arg for k in node.keywords if k.arg}
        params = required_params(target)
        if not any(isinstance(a, ast.Starred) for a in node.args):
            needed += [p for p in params[len(node.args):] if p not in given]
    return list(dict.fromkeys(needed))


def _build(name: str, maker: Any, call: Call, path: Path) -> Any:
    try:
        with sites.recording():
            args, kwargs = call.made()
            return maker(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the user's code raised
        how = "" if call.origin == "defaults" else f" (with the arguments of {call.origin})"
        raise user_error(exc, path, f"building {name}(){how}",
                         f"Fix {name} or give it working arguments with "
                         f"--model '{name}(...)'.") from None


def _selected(source: Source, selected: list[str],
              path: Path) -> tuple[set[str], dict[str, list[Call]]]:
    """``--model`` (and config ``model``) entries: the names to lint only, and arguments to
    build models with, from calls with literal arguments (or the file's names). A call of a
    model this file does not define is for another file: left out."""
    only: set[str] = set()
    given: dict[str, list[Call]] = {}
    for entry in selected:
        try:
            node = ast.parse(entry.strip(), mode="eval").body
        except SyntaxError:
            node = None
        if isinstance(node, ast.Name):
            only.add(node.id)
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id not in source.defs and node.func.id not in source.assigned:
            continue
        call = source.call(node, f"--model {entry!r}", nested=True) \
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None
        if call is None:
            raise InputError(f"--model {entry!r} is not a model name or a call of one with "
                             "literal arguments.", path=str(path),
                             hint="Give a name, as --model Net, or a call whose arguments are "
                                  "literals, names in the file or calls of them, as --model "
                                  "'VGG(\"VGG16\")' or 'GPT(GPTConfig(n_layer=2))'.")
        given.setdefault(node.func.id, []).append(call)
    return only, given


# Called with a model's name and line just before it is built (the isolation child marks
# where a hang or crash happens, and seeds each model alike).
OnBuild = Callable[[str, "int | None"], None]


def find_models(module: types.ModuleType, path: Path, selected: list[str],
                skip: Collection[str] = (), on_build: OnBuild | None = None) -> Discovery:
    """Build the file's models (only those ``selected`` by name, when some are; a call in
    ``selected`` gives the arguments to build that model with), never those in ``skip``,
    calling ``on_build`` before each is built."""
    namespace = vars(module)
    source = Source(path, namespace)
    here = module.__name__
    classes = {name for name, obj in namespace.items()
               if _is_module_class(obj) and obj.__module__ == here and name in source.defs}
    # a factory's name may hold a functools.partial of another by now (generated variants)
    every_maker = {name for name in factories(source) if callable(namespace.get(name))
                   and not isinstance(namespace.get(name), type | nn.Module)}
    instances = {name: obj for name, obj in namespace.items()
                 if isinstance(obj, nn.Module) and not name.startswith("_") and name not in skip}
    classes -= set(skip)
    every_maker -= set(skip)
    only, given = _selected(source, selected, path)
    wanted = only | set(given) if only else set()  # empty: every model
    unknown = [n for n in [*sorted(only), *given]
               if n not in classes | every_maker | set(instances) | set(skip)]
    if unknown:
        known = sorted(classes | set(instances) | {m for m in every_maker
                                                   if not m.startswith("_")})
        raise InputError(f"no model named {unknown[0]} in the file.", path=str(path),
                         hint="Models here: " + (", ".join(known) or "none") + ".")
    makers = {m for m in every_maker if not m.startswith("_") or m in only or m in given}
    site_calls = source.call_sites(classes | makers, classes | every_maker)
    found, result = [], Discovery()
    for name, obj in instances.items():
        if not wanted or name in wanted:
            found.append(FoundModel(name, obj, source.line(name)))
    instance_types = {type(f.model) for f in found}
    unbuilt: dict[str, list[str]] = {}
    for name in [*sorted(makers, key=source.line), *sorted(classes, key=source.line)]:
        if (wanted and name not in wanted) or (not wanted and namespace[name] in instance_types):
            continue
        maker = namespace[name]
        required = required_params(maker) + (_passed_through(source, name)
                                              if name in makers else [])
        calls = given.get(name) or ([Call()] if not required else site_calls.get(name, []))
        if not calls:
            unbuilt[name] = required
            continue
        if on_build:
            on_build(name, source.line(name))
        try:
            model = _build(name, maker, calls[0], path)
        except UserCodeError as exc:
            result.problems.append(exc)
            continue
        if isinstance(model, nn.Module):
            found.append(FoundModel(name, model, source.line(name)))
    shallow = []
    for f in found:
        too_deep = _too_deep(f, path)
        if too_deep is None:
            shallow.append(f)
        else:
            result.problems.append(too_deep)
    result.models = _drop_parts(shallow, only | set(given))
    linted = {type(m) for f in result.models for m in f.model.modules()}
    covered = _covered(source, classes, every_maker)
    for name, required in unbuilt.items():
        if name in covered or namespace[name] in linted:
            continue
        result.problems.append(UserCodeError(
            NOT_LINTED, f"not linted: {name} needs {', '.join(required)}; give "
                        f"{'it' if len(required) == 1 else 'them'} with --model '{name}(...)',",
            path=str(path), line=source.line(name),
            hint="or call it in the file with literal arguments (as a test or __main__ block "
                 "does), or list such calls as model = [...] in [tool.bnlint]."))
    if not result.models and not result.problems:
        raise NoModelError("no model found: the file defines no nn.Module class, model "
                           "factory or instance.", path=str(path),
                           hint="Define the model in this file, or point bnlint at the file "
                                "that does.")
    return result


def _structure(model: nn.Module) -> tuple:
    return tuple((name, type(m).__name__, tuple(_shape(p) for p in m.parameters(False)))
                 for name, m in model.named_modules())


def _shape(p: nn.Parameter) -> tuple | None:
    """A parameter's shape; None for a lazy module's, which has none until its first forward."""
    return None if isinstance(p, nn.parameter.UninitializedTensorMixin) else tuple(p.shape)


def nesting(model: nn.Module) -> tuple[int, str]:
    """How deep the model's modules nest, and the path of the deepest (walked without
    recursion, so a model too deep for Python's recursion limit can be measured)."""
    deepest, stack = (0, ""), [(model, 0, "")]
    while stack:
        module, depth, name = stack.pop()
        deepest = max(deepest, (depth, name))
        stack.extend((child, depth + 1, f"{name}.{key}" if name else key)
                     for key, child in module._modules.items() if child is not None)
    return deepest


def _too_deep(found: FoundModel, path: Path) -> UserCodeError | None:
    """Why the model cannot be linted, when its modules nest deeper than bnlint (and torch's
    own recursive walks) can follow: a problem located at the model."""
    depth, name = nesting(found.model)
    if depth <= MAX_NESTING:
        return None
    shown = name if len(name) <= 60 else name[:28] + "..." + name[-28:]
    return UserCodeError(
        FORWARD_FAILED,
        f"model {found.name} nests its modules {depth} levels deep ({shown}), so it was not "
        f"linted; bnlint lints up to {MAX_NESTING}: torch walks submodules recursively, and "
        "Python's recursion limit stops it near 200.", path=str(path), line=found.line,
        hint="Build a deep stack flat, as nn.Sequential(*layers) or an nn.ModuleList looped "
             "over in forward, not a Sequential inside a Sequential per layer.")


def _is_part(part: nn.Module, whole: nn.Module) -> bool:
    """Whether ``part``'s kind of module is built inside ``whole``: the same class (a
    container only with the same structure, as one ``block()`` of a Sequential of them)."""
    kind = type(part)
    shape = _structure(part) if issubclass(kind, _CONTAINERS) else None
    return any(type(sub) is kind and (shape is None or _structure(sub) == shape)
               for sub in list(whole.modules())[1:])


def _has_parameters(model: nn.Module) -> bool:
    return any(True for _ in model.parameters())


def _drop_parts(found: list[FoundModel], named: set[str]) -> list[FoundModel]:
    """Drop repeats of one model (``model = make_model()`` beside ``make_model``) and building
    blocks, unless the user ``named`` them: a model built inside another found model (a
    ResNet's block), or one without parameters beside models with some."""
    kept, seen = [], set()
    for f in found:
        shape = _structure(f.model)
        if shape in seen or (f.name not in named and any(_is_part(f.model, g.model)
                                                         for g in found if g is not f)):
            continue
        seen.add(shape)
        kept.append(f)
    if any(_has_parameters(f.model) for f in kept):
        kept = [f for f in kept if f.name in named or _has_parameters(f.model)]
    return kept
