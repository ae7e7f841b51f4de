"""A graph repair written as plain PyTorch for the user's file (``--fix --unsafe-fixes``): the
statements that make :mod:`.repairs`' repair once the model is built, choosing the modules it
chooses, with no import of bnlint.

Each group of modules that take the same statements is written the first way that names them
all and nothing else, tried on the built model: a loop over ``root.modules()`` with an
``isinstance`` of their class (or of the block that holds each, as torchvision zero-inits
``m.bn2.weight`` of every ``BasicBlock``); a loop over a slice of the ``nn.Sequential`` or
``nn.ModuleList`` whose items are or hold them (with an ``isinstance`` where the slice holds
others too); else one line per module, by its attribute path (``root.layers[0].bn2``). A
single module is written directly.

The code is a template (:class:`Code`); :mod:`.source` fills it in for the file: ``{root}``
(``self`` in ``__init__``, the model's variable elsewhere), ``{nn}`` (what the file calls
torch.nn), ``{T0}``... (a class, by one of the dotted names it may be imported as) and the
loop's variables (names the scope does not use). Templates indent by four spaces.
"""

from __future__ import annotations

import keyword
import os
import types
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import InputError
from ..model.graph import ModelGraph
from ..predict import flow
from ..predict.theory import SHAPING_ALPHA
from . import repairs

# What each repair's code does, for its first line (a comment); he_init's says which init
# each activation gets (:func:`_he_why`).
WHY = {
    "zero_init_residual": "each residual branch starts at 0 (arXiv:1706.02677)",
    "orthogonal_init": "orthogonal weights (arXiv:2310.02012)",
    "shape_activations": f"ReLU n leaks with slope 1 - n ** -{SHAPING_ALPHA} (arXiv:2310.02012)",
}


@dataclass(frozen=True)
class Form:
    """One way to write a group's code: ``lines`` (templates), the dotted names each class
    slot ``{T0}``... may be written as, and the local variables the lines bind."""
    lines: tuple[str, ...]
    classes: tuple[tuple[str, ...], ...] = ()
    variables: tuple[str, ...] = ()


@dataclass(frozen=True)
class Code:
    """A repair as plain PyTorch: a comment, then per group of modules its forms, the
    preferred first (:mod:`.source` writes the first whose classes the file can name)."""
    comment: str
    groups: tuple[tuple[Form, ...], ...]


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _path(root: nn.Module, qualname: str) -> str | None:
    """How code reaches submodule ``qualname`` from ``root``: ``.layers[0].bn2``; None when
    a name is not an attribute (``get_submodule`` would be needed)."""
    out, module = [], root
    for part in qualname.split(".") if qualname else []:
        if isinstance(module, (nn.Sequential, nn.ModuleList)) and part.isdigit():
            out.append(f"[{part}]")
        elif isinstance(module, nn.ModuleDict) and part.isprintable() and '"' not in part:
            out.append(f'["{_escape(part)}"]')
        elif part.isidentifier() and not keyword.iskeyword(part):
            out.append(f".{part}")
        else:
            return None
        module = getattr(module, "_modules", {}).get(part)
        if module is None:
            return None
    return "".join(out)


def class_names(cls: type, path: str) -> tuple[str, ...]:
    """The dotted names code may write ``cls`` as: ``torch.nn.Linear`` for torch.nn's classes,
    ``:Block`` for a top-level class of the model's own file, else its module's name."""
    name = cls.__qualname__
    if getattr(nn, cls.__name__, None) is cls:
        return (f"torch.nn.{cls.__name__}",)
    # where its methods were compiled (a file run with exec is no importable module)
    source = next((f.__code__.co_filename for f in vars(cls).values()
                   if isinstance(f, types.FunctionType)), None)
    if source and "." not in name and os.path.realpath(source) == os.path.realpath(path):
        return (f":{name}",)
    return (f"{cls.__module__}.{name}",) if "<" not in name else ()


Statements = Callable[[str], list[str]]  # module reference -> the lines that repair it
_CONTAINERS = tuple(f"torch.nn.{c}" for c in ("Sequential", "ModuleList", "ModuleDict"))


def _by_type(root: nn.Module, names: list[str], action: Statements, path: str) -> list[Form]:
    """Loops over ``root.modules()`` with an isinstance that picks exactly ``names``: of a
    module's own class, or of the class of a module that holds it (the nearest first)."""
    wanted, forms = set(names), []
    modules = dict(root.named_modules())
    for depth in range(len(names[0].split(".")), 0, -1):
        holder = ".".join(names[0].split(".")[:depth])
        rest = names[0][len(holder) + 1:]
        cls = type(modules[holder])
        held = [(name, m) for name, m in modules.items() if isinstance(m, cls)]
        paths = {_path(m, rest) for _, m in held}
        if len(paths) != 1 or None in paths or not class_names(cls, path):
            continue
        if {f"{name}.{rest}" if rest and name else name or rest for name, _ in held} != wanted:
            continue
        reach = "{m}" + _escape(paths.pop())
        forms.append(Form(("for {m} in {root}.modules():", "    if isinstance({m}, {T0}):",
                           *(f"        {line}" for line in action(reach))),
                          (class_names(cls, path),), ("m",)))
    return forms


def _cut(start: int, stop: int, length: int) -> str:
    """The slice ``[start:stop]`` of a container of ``length`` as it reads best: an end that
    is the container's left out, a stop near the end counted from it ("" for all of it)."""
    first = str(start) if start else ""
    last = "" if stop >= length else str(stop - length) if length - stop <= 2 else str(stop)
    return f"[{first}:{last}]" if first or last else ""


def _by_slice(root: nn.Module, names: list[str], action: Statements, path: str) -> list[Form]:
    """Loops over a slice of an nn.Sequential or nn.ModuleList whose items are, or hold at
    one path, the modules ``names``: over the slice alone where its items are exactly those,
    else with an isinstance of their class that picks them there."""
    forms, parts = [], names[0].split(".")
    split = [name.split(".") for name in names]
    for k in range(len(parts) - 1, -1, -1):
        parent, rest = ".".join(parts[:k]), ".".join(parts[k + 1:])
        if any(len(p) != len(parts) or ".".join(p[:k]) != parent or ".".join(p[k + 1:]) != rest
               or not p[k].isdigit() for p in split):
            continue
        container, where = root.get_submodule(parent), _path(root, parent)
        if not isinstance(container, (nn.Sequential, nn.ModuleList)) or where is None:
            continue
        indices = sorted(int(p[k]) for p in split)
        items = [container[i] for i in indices]
        reach = {_path(item, rest) for item in items}
        if len(reach) != 1 or None in reach:
            continue
        body = [f"    {line}" for line in action("{m}" + _escape(reach.pop()))]
        seq, first, last = "{root}" + _escape(where), indices[0], indices[-1] + 1
        if indices == list(range(first, last)):
            forms.append(Form((f"for {{m}} in {seq}{_cut(first, last, len(container))}:", *body),
                              (), ("m",)))
        classes = {type(item) for item in items}
        if len(classes) != 1:
            continue
        cls = classes.pop()
        of_class = [i for i, m in enumerate(container) if isinstance(m, cls)]
        if [i for i in of_class if first <= i < last] != indices or not class_names(cls, path):
            continue
        after = [i for i in of_class if i >= last]  # the slice stops at the next one left out
        cut = _cut(first if of_class[0] < first else 0, after[0] if after else len(container),
                   len(container))
        forms.append(Form((f"for {{m}} in {seq}{cut}:", "    if isinstance({m}, {T0}):",
                           *(f"    {line}" for line in body)), (class_names(cls, path),), ("m",)))
    return forms


def _one_by_one(root: nn.Module, names: list[str], action: Statements) -> Form | None:
    paths = [_path(root, name) for name in names]
    if None in paths:
        return None
    return Form(tuple(line for p in paths for line in action("{root}" + _escape(p))))


def _group(root: nn.Module, names: list[str], action: Statements, path: str) -> tuple[Form, ...]:
    """The forms that write ``action`` for exactly ``names``, the preferred first."""
    explicit = _one_by_one(root, names, action)
    by_type = _by_type(root, names, action, path)
    generic = [f for f in by_type if f.classes[0][0].startswith(_CONTAINERS)]
    # an isinstance of nn.Sequential says less than a loop over the container that holds them
    loops = [f for f in by_type if f not in generic] + _by_slice(root, names, action, path) \
        + generic
    if explicit is not None and len(names) == 1:
        return (explicit, *loops)
    forms = (*loops, *([explicit] if explicit else []))
    if not forms:
        raise InputError(f"no code can reach {names[0]} by attributes.")
    return forms


def _init(function: str) -> Statements:
    return lambda module: [f"{{nn}}.init.{function}({module}.weight)"]


def _grouped(root: nn.Module, targets: list[tuple[str, tuple]], actions: dict[tuple, Statements],
             path: str) -> tuple[tuple[Form, ...], ...]:
    """The targets (module, action key) grouped by action, in model order, and written."""
    keys = list(dict.fromkeys(key for _, key in targets))
    return tuple(_group(root, [name for name, k in targets if k == key], actions[key], path)
                 for key in keys)


# Activations whose variance-preserving gain torch's kaiming_normal_ computes: sqrt(2 / (1 +
# negative_slope^2)), He et al.'s (arXiv:1502.01852), which theory.activation_gain equals.
_KAIMING = ("ReLU", "LeakyReLU")


def _he_key(init: repairs.InitTarget) -> tuple:
    """How :func:`_he` writes one layer's init: (None and kaiming_normal_'s negative slope, or
    what the layer feeds and its gain as written for normal_; whether it has a bias)."""
    bias = getattr(init.layer.obj, "bias", None) is not None
    act = init.activation
    if act.kind in _KAIMING and init.scale == 1:
        return None, float(act.attr("negative_slope") or 0.0), bias
    options = ", ".join(f"{k}={v:g}" for k, v in flow.activation_options(act).items())
    feeds = act.kind + (f"({options})" if options else "")
    if init.scale != 1:
        feeds += f" after x{init.scale:g}"
    return feeds, f"{init.gain:.6g}", bias


def _he(feeds: str | None, how: float | str, bias: bool) -> Statements:
    """kaiming_normal_ for the ReLU family, normal_ with std gain / sqrt(fan_in) (fan_in =
    ``weight[0].numel()``, as torch.nn.init counts it) for any other activation."""
    def lines(module: str) -> list[str]:
        if feeds is None:
            kind = 'nonlinearity="relu"' if how == 0 else f'a={how!r}, nonlinearity="leaky_relu"'
            out = [f"{{nn}}.init.kaiming_normal_({module}.weight, {kind})"]
        else:
            out = [f"{{nn}}.init.normal_({module}.weight, "
                   f"std={how} / {module}.weight[0].numel() ** 0.5)"]
        return out + ([f"{{nn}}.init.zeros_({module}.bias)"] if bias else [])
    return lines


def _he_why(keys: list[tuple]) -> str:
    """The comment of a written he_init: He init where kaiming_normal_ does it all, else the
    std each other activation gets."""
    gains = [f"{feeds}: std {how} / sqrt(fan_in)" for feeds, how, _ in keys if feeds]
    biases = ", zero biases" if any(bias for _, _, bias in keys) else ""
    if not gains:
        return f"He init{biases} (arXiv:1502.01852)"
    he = ["He for ReLU"] if any(feeds is None for feeds, _, _ in keys) else []
    return f"variance-preserving init ({'; '.join(he + gains)}){biases} (arXiv:1502.01852)"


def _inplace(root: nn.Module, name: str) -> bool:
    return bool(getattr(root.get_submodule(name), "inplace", False))


def _shaped(root: nn.Module, graph: ModelGraph, path: str) -> tuple[tuple[Form, ...], ...]:
    """Each depth-shaped ReLU as ``nn.LeakyReLU(1 - l ** -alpha)`` in its place: a loop over
    the ReLUs of the container that holds a chain, else one assignment per ReLU."""
    found, _ = repairs.shaped_activations(graph)
    if any(family != "relu" for _, _, family in found):
        raise InputError("tanh and sin have no depth-shaped form in plain PyTorch "
                         "(bnlint.repair.shape_activations applies bnlint.nn.ShapedActivation).")
    relus = [(act, depth) for act, depth, _ in found if act.kind == "ReLU"]
    if not relus:
        raise InputError("its activations are shaped already, or have no shaped form.")
    if any(act.module is None for act, _ in relus):
        raise InputError("its ReLUs are functional calls; write them as nn.ReLU modules to "
                         "have them replaced.")
    depths: dict[str, set[int]] = {}
    for act, depth in relus:
        depths.setdefault(act.module, set()).add(depth)
    shared = next((name for name, ds in depths.items() if len(ds) > 1), None)
    if shared:
        raise InputError(f"ReLU module {shared} is used at several depths; give each use a "
                         "module of its own.")
    leaky = "{nn}.LeakyReLU(1 - %s ** -" + repr(SHAPING_ALPHA) + "%s)"
    groups = []
    by_parent: dict[str, list[tuple[str, int]]] = {}
    for act, depth in relus:
        by_parent.setdefault(act.module.rpartition(".")[0], []).append((act.module, depth))
    for parent, members in by_parent.items():
        forms = []
        inplace = {_inplace(root, name) for name, _ in members}
        container = root.get_submodule(parent)
        where = _path(root, parent)
        if (isinstance(container, (nn.Sequential, nn.ModuleList)) and where is not None
                and len(inplace) == 1):
            positions = [i for i, m in enumerate(container) if isinstance(m, nn.ReLU)]
            if [f"{parent}.{i}" if parent else str(i) for i in positions] == \
                    [name for name, _ in members] and \
                    [d for _, d in members] == list(range(1, len(members) + 1)):
                seq = "{root}" + _escape(where)
                forms.append(Form((
                    f"{{relus}} = [{{i}} for {{i}}, {{m}} in enumerate({seq}) "
                    "if isinstance({m}, {nn}.ReLU)]",
                    "for {n}, {i} in enumerate({relus}, start=1):",
                    f"    {seq}[{{i}}] = " + leaky % ("{n}",
                                                      ", inplace=True" if True in inplace else "")),
                    (), ("relus", "i", "m", "n")))
        paths = [_path(root, name) for name, _ in members]
        if None not in paths:
            forms.append(Form(tuple(
                "{root}" + _escape(p) + " = " + leaky % (
                    depth, ", inplace=True" if _inplace(root, name) else "")
                for p, (name, depth) in zip(paths, members))))
        if not forms:
            raise InputError(f"no code can reach {members[0][0]} by attributes.")
        groups.append(tuple(forms))
    return tuple(groups)


def repair_code(repair: str, graph: ModelGraph, path: str, code: str) -> Code:
    """The code that makes ``repair`` on the model ``graph`` traced, in the file at ``path``,
    as rule ``code``'s fix; an InputError saying why it cannot be written."""
    root = graph.model
    why = WHY.get(repair)
    if repair == "shape_activations":
        groups = _shaped(root, graph, path)
    else:
        if repair == "zero_init_residual":
            targets = [(bn.module, ()) for bn in repairs.residual_branch_ends(graph)]
            actions = {(): _init("zeros_")}
        elif repair == "orthogonal_init":
            targets = [(x.module, ()) for x in repairs.chain_members(graph, "batchnorm-linear")]
            actions = {(): _init("orthogonal_")}
        elif repair == "he_init":
            targets = [(x.layer.module, _he_key(x)) for x in repairs.he_init_targets(graph)]
            actions = {key: _he(*key) for _, key in targets}
            why = _he_why(list(actions))
        else:
            raise ValueError(f"no written form of repair {repair}")
        targets = list(dict.fromkeys(targets))  # a module the graph calls twice, once
        if not targets:
            raise InputError("the model has no module that the repair changes.")
        groups = _grouped(root, targets, actions, path)
    return Code(f"# bnlint {code}: {why}.", groups)
