"""Models too large for one process, built without their weights: the constructor runs as
written, but each parameter moves to the meta device the moment it is registered on its
module, so building costs about the memory of the largest parameter. Buffers (running
statistics, masks, rotary frequencies) stay real: they are small, their values come from the
constructor alone, and FSDP keeps a whole copy of them on every rank anyway.

The values are the constructor's own, kept as the rows of each parameter a rank will hold
(:func:`rows`): what a parameter is created with, then every write to it while the
constructor runs, done for real at the moment it happens on a full-size temporary tensor of
the parameter's shape (only this rank's rows are kept). So the default random generator draws
exactly what it draws in ``torch.manual_seed(seed); Model()``, in the same order, and every
rank computes the same values. Writes done this way: torch.nn.init's public functions
(``uniform_``, ``normal_``, ``trunc_normal_``, ``constant_``, ``ones_``, ``zeros_``, ``eye_``,
``dirac_``, ``xavier_*``, ``kaiming_*``, ``orthogonal_``, ``sparse_``, which is how torch's
layers' ``reset_parameters()`` set them), and the in-place tensor ops whose result does not
depend on the values they overwrite (``fill_``, ``zero_``, ``copy_`` from a real tensor, the
random draws ``normal_``, ``uniform_``, ``bernoulli_``...), on the whole parameter or any view of
it (``m.weight.data``, ``w[:, 0]``), and the in-place elementwise ops (``mul_``, ``add_``,
``clamp_``, ``erfinv_``: the values a rank holds are all they read). Any other in-place write
(a copy from a meta tensor, such as one computed from parameters, an indexed ``index_fill_``,
a value depending on other elements) cannot be done without the other ranks' rows: it is not
done, and the parameter is listed in :attr:`Build.unreproduced`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn.modules.module import register_module_parameter_registration_hook
from torch.utils._python_dispatch import TorchDispatchMode

INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
                  "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                  "kaiming_normal_", "orthogonal_", "sparse_")

# In-place ops whose result does not read the tensor they write.
_OVERWRITES = frozenset(("fill_", "zero_", "copy_", "normal_", "uniform_", "bernoulli_",
                         "random_", "exponential_", "geometric_", "cauchy_", "log_normal_"))
_NOT_WRITES = frozenset(("detach_", "requires_grad_"))


def rows(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """The rows of ``t`` that rank ``rank`` of ``world`` holds: FSDP2's dim-0 sharding,
    ``torch.chunk`` with empty chunks at the end when there are fewer rows than ranks."""
    if t.dim() == 0:
        return t
    chunks = t.chunk(world)
    return chunks[rank] if rank < len(chunks) else t[:0]


@dataclasses.dataclass
class Build:
    """What a meta build keeps of its parameters, by the id of each meta parameter: this
    rank's rows of its value as the constructor left it, and, for the parameters the
    constructor wrote in a way that could not be reproduced, the op that wrote them."""
    rows: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)
    unreproduced: dict[int, str] = dataclasses.field(default_factory=dict)


class _Recorder(TorchDispatchMode):
    """Fills a :class:`Build` as parameters are created and written (module docstring)."""

    def __init__(self, rank: int, world: int):
        super().__init__()
        self.rank, self.world = rank, world
        self.build = Build()
        self.params: dict[int, tuple[int, torch.Size, tuple[int, ...]]] = {}

    def register(self, param: nn.Parameter) -> nn.Parameter:
        meta = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
        self.build.rows[id(meta)] = rows(param.detach(), self.rank, self.world).clone()
        self.params[meta.untyped_storage()._cdata] = (id(meta), meta.shape, meta.stride())
        return meta

    def _param(self, t: object) -> tuple[int, torch.Size, tuple[int, ...]] | None:
        if isinstance(t, torch.Tensor) and t.is_meta:
            return self.params.get(t.untyped_storage()._cdata)
        return None

    def write(self, t: torch.Tensor, how: Callable[[torch.Tensor], object],
              pointwise: bool = False) -> bool:
        """Do ``how`` on a full-size real tensor at the place of ``t`` (a meta parameter or a
        view of one) and keep this rank's rows where it wrote: ``how`` overwrites all of its
        tensor, or, ``pointwise``, each element from that element alone (it then starts
        from this rank's rows; the other rows are zeros, computed on and dropped). False
        when ``t`` is no parameter's."""
        found = self._param(t)
        if found is None:
            return False
        pid, shape, stride = found
        full = torch.zeros_like(torch.empty_strided(shape, stride, dtype=t.dtype))
        if pointwise:
            rows(full, self.rank, self.world).copy_(self.build.rows[pid])
        written = torch.zeros_like(full, dtype=torch.bool)
        how(full.as_strided(t.shape, t.stride(), t.storage_offset()))
        written.as_strided(t.shape, t.stride(), t.storage_offset()).fill_(True)
        mine = rows(written, self.rank, self.world)
        self.build.rows[pid] = torch.where(mine, rows(full, self.rank, self.world),
                                           self.build.rows[pid])
        return True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name not in _NOT_WRITES:
            for i, arg in enumerate(func._schema.arguments):
                if arg.alias_info is None or not arg.alias_info.is_write:
                    continue
                value = args[i] if i < len(args) else kwargs.get(arg.name)
                for t in value if isinstance(value, list | tuple) else (value,):
                    self._written(func, name, t, args, kwargs)
        return func(*args, **kwargs)

    def _written(self, func, name: str, t: object, args: tuple, kwargs: dict) -> None:
        found = self._param(t)
        if found is None:
            return
        others = [a for a in (*args[1:], *kwargs.values()) if a is not t]
        doable = bool(args) and args[0] is t and t.dtype == self.build.rows[found[0]].dtype \
            and not any(isinstance(a, torch.Tensor) and a.is_meta for a in others)
        pointwise = torch.Tag.pointwise in func.tags
        if doable and (name in _OVERWRITES or pointwise):
            self.write(t, lambda view: func(view, *args[1:], **kwargs),
                       pointwise=name not in _OVERWRITES)
        else:
            self.build.unreproduced[found[0]] = f"Tensor.{name}"

    def init(self, original: Callable) -> Callable:
        """torch.nn.init's ``original``, done for real on a parameter (module docstring)."""
        def init(*args, **kwargs):
            tensor = args[0] if args else kwargs.pop("tensor")
            if self.write(tensor, lambda view: original(view, *args[1:], **kwargs)):
                return tensor
            return original(tensor, *args[1:], **kwargs)
        return init


@contextlib.contextmanager
def parameters_on_meta(rank: int, world: int) -> Iterator[Build]:
    """While active, every parameter registered on a module is replaced by a meta-device
    one, and its values are kept as the module docstring says. Yields the :class:`Build`,
    filled as modules are built."""
    recorder = _Recorder(rank, world)

    def to_meta(module: nn.Module, name: str, param: nn.Parameter | None):
        if param is None or param.is_meta or isinstance(
                param, nn.parameter.UninitializedTensorMixin):
            return None
        return recorder.register(param)

    originals = {name: getattr(nn.init, name) for name in INIT_FUNCTIONS}
    handle = register_module_parameter_registration_hook(to_meta)
    try:
        for name, original in originals.items():
            setattr(nn.init, name, recorder.init(original))
        with recorder:
            yield recorder.build
    finally:
        for name, original in originals.items():
            setattr(nn.init, name, original)
        handle.remove()


def take_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's buffers by qualified name, each replaced on the model by a meta-device
    one (so the meta model runs on meta inputs alone)."""
    taken = {name: b for name, b in model.named_buffers(remove_duplicate=False)
             if not b.is_meta}
    for owner in model.modules():
        for name, buffer in owner._buffers.items():
            if buffer is not None and not buffer.is_meta:
                owner._buffers[name] = buffer.to("meta")
    return taken
