"""The input size an image (or signal) model's layers imply, read from the shapes of a forward
pass (no arithmetic) up to the head, the first Linear on (batch, features): the size whose
flattened features fit it after a flatten (28x28 for an MNIST net, 32x32 for LeNet), or
ImageNet's 224 for a model that downsamples its input as ImageNet models do before a global
pool. A Linear on a tensor of 3 or more dimensions is a token- or pixel-wise layer inside the
body (ConvNeXt's pointwise MLPs on (B, H, W, C) maps, a transformer's on (B, N, D) tokens), not
the head: the run goes on through it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode

from ..model.sandbox import Swapped, has_lazy, meta_state, model_device

IMAGENET_SIZE = 224
# Inception v3's crop (Szegedy et al., arXiv:1512.00567), also Xception's and Inception-ResNet's:
# tried after 224 for an ImageNet-style model, whose layers may need more (Inception v3's
# auxiliary head, which runs in training mode, pools its 17x17 maps 5x5 with stride 3 and
# then convolves 5x5: the 12x12 maps of a 224 input leave 3x3).
INCEPTION_SIZE = 299
# A model whose layers shrink a 224x224 input at least this much before its head is built for
# ImageNet-sized inputs: ResNet, VGG, DenseNet, MobileNet and EfficientNet take 224 to 7 (a
# stride-2 stem, pooling or strided stages); their CIFAR versions take 32 to 8 or 4 (He et al.,
# arXiv:1512.03385, section 4.2: feature maps of 32, 16 and 8), so 224 to 28 or 56.
IMAGENET_DOWNSAMPLING = 32
CIFAR_SIZE = 32
# CIFAR-10's and CIFAR-100's class counts (Krizhevsky, 2009). A model whose head has one of them
# and whose first conv is CIFAR's 3x3 at stride 1 (ImageNet models' stems stride 2) is built for
# CIFAR even when its layers downsample 32x like ImageNet's, as a CIFAR VGG's five max pools take
# 32x32 to 1x1 (huyvnphan/PyTorch_CIFAR10's VGGs, whose global pool also takes 224's 7x7 maps).
CIFAR_CLASSES = (10, 100)
MAX_SIZE = 2048  # the largest size solved for
# Sizes of common datasets, preferred among sizes that fit equally: MNIST/Fashion-MNIST, CIFAR
# and SVHN, STL-10, ImageNet crops, Inception's.
USUAL_SIZES = (28, 32, 64, 96, 128, 224, 256, 299)
# The search's first runs: 64, then CIFAR's 32, whose features tell a flatten from a global pool
# and predict the size a flatten needs; 128 only when 32 does not run or does not tell (maps
# that 32 px already shrank to nothing). Runs cost in proportion to the input's area on the
# model's weights (kuangliu's CIFAR ResNet-50, one CPU thread, batch 2: 0.13 s at 32 px, 0.34 s
# at 64, 1.4 s at 128; batch 1 about half), so a flatten's search first tries the usual sizes
# the features at 32/64 (or 64/128) allow, in the order they are preferred, and the size above
# the one that fits (or below): kuangliu's ResNet runs at 64, 32 and 33, an MNIST net at 64,
# 32, 28 and 29; only when no usual size fits do bisections find the range.
# Runs up to 128 px and at the usual sizes are on the model's own weights (at a batch of 1,
# else 2: see seen_at); the bisections' other sizes, which may reach MAX_SIZE, and models
# without weights run on the meta device, which does no arithmetic but whose first use imports
# sympy and torch._dynamo: 1.1-1.3 CPU-s, about 800 modules (then ResNet-50 takes 0.09 s at
# any size, its cost at 32 px on the weights; 2-core machine under load, 2026-11-30). A process
# that has paid that import already (warm_meta: the fork server's children after the first,
# in a run of several files) runs every size on the meta device first, and on the
# weights only where the meta device cannot run the forward.
ON_WEIGHTS_UP_TO = 128
TRIAL_BATCH = 2  # the batch of the forward passes that try inferred shapes: cheap
_GLOBAL_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                 nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


class _Reached(Exception):  # noqa: N818 - a signal that stops the run, not an error
    """Raised by the hook on the head (:func:`_is_head`) the forward calls: stops the run."""

    def __init__(self, layer: nn.Linear, shape: tuple[int, ...] | None):
        super().__init__()
        self.layer, self.shape = layer, shape


@dataclass(frozen=True)
class Seen:
    """What a run up to the head saw: that Linear and the shape of its input (None when the
    forward called no Linear on a (batch, features) or 1-D input), and the smallest spatial
    size a layer output (:func:`_map_size`; None if none did)."""
    linear: nn.Linear | None
    linear_input: tuple[int, ...] | None
    smallest: int | None

    @property
    def flat(self) -> int | None:
        """The features the head receives, when its input is (batch, features)."""
        shape = self.linear_input
        return shape[1] if shape is not None and len(shape) == 2 else None


def seen_at(model: nn.Module, shape: tuple[int, ...], on_weights: bool = False,
            meta: Swapped | None = None) -> Seen | None:
    """Run ``model`` on an input of ``shape`` up to its head, in eval mode, on the meta device
    or ``on_weights`` on its own weights, at a batch of 1 (half the cost of 2 on the weights),
    again at the trial batch of 2 when that fails or squeezes the batch away (``x.squeeze()``
    before the head: a 1-D Linear input, not (batch, features)); None when it cannot run (on
    the meta device, e.g., a forward that makes tensors on the CPU or reads values) or has lazy
    layers (their first run would set their shapes). ``meta``: the model's forward on its
    tensors' meta twins (:func:`meta_state`), when the caller keeps it for several runs (a
    model with lazy layers has none, so it is not walked again for them)."""
    if meta is None and has_lazy(model):
        return None
    state = None if on_weights else meta if meta is not None \
        else Swapped(model, meta_state(model))
    seen = _seen_at(model, shape, 1, state)
    if seen is None or (seen.linear is not None and seen.flat is None):
        return _seen_at(model, shape, TRIAL_BATCH, state)
    return seen


class _ShapesOnly(TorchFunctionMode):
    """On the meta device, eval-mode batch norm and ReLU answered with a tensor of their
    input's shape, which is their output's, instead of torch's meta decompositions into
    elementwise primitives, which run in Python: akamaster's CIFAR resnet1202 reached its head
    at 64 px in 1.40 CPU-s, 0.31 s so (0.28 s at 32 px on its weights), kuangliu's CIFAR
    ResNet-50 in 0.062 s, 0.013 s so (0.052 s at 32 px on its weights; one CPU thread,
    2026-11-30). A batch norm whose statistics or affine parameters do not match the input's
    channels, or in training mode, runs torch's own, which raises or checks what it does."""

    _RELU = frozenset((F.relu, torch.relu, torch.Tensor.relu))
    _RELU_INPLACE = frozenset((torch.relu_, torch.Tensor.relu_))
    _ANSWERED = _RELU | _RELU_INPLACE | {F.batch_norm}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in self._ANSWERED:  # every other call, the hooks' own among them
            return func(*args, **kwargs)
        x = args[0] if args else kwargs.get("input")
        if isinstance(x, torch.Tensor) and x.is_meta:
            if func in self._RELU_INPLACE or (func is F.relu and kwargs.get("inplace")):
                return x
            if func in self._RELU:
                return torch.empty_like(x)
            if func is F.batch_norm and _plain_batch_norm(x, *args[1:], **kwargs):
                return torch.empty_like(x)
        return func(*args, **kwargs)


def _plain_batch_norm(x: torch.Tensor, running_mean=None, running_var=None, weight=None,
                      bias=None, training=False, *_, **kwargs) -> bool:
    """Whether ``F.batch_norm(x, ...)`` is in eval mode with a tensor per channel of ``x``."""
    tensors = (running_mean, running_var, weight, bias)
    return not kwargs.get("training", training) and x.dim() >= 2 and all(
        t is None or (isinstance(t, torch.Tensor) and t.dim() == 1 and t.shape[0] == x.shape[1])
        for t in (kwargs.get(n, t) for n, t in zip(
            ("running_mean", "running_var", "weight", "bias"), tensors, strict=True)))


_warm = False  # whether this process has run the meta device once (see warm_meta)


def warm_meta() -> None:
    """Run a small network on the meta device, which imports what it needs (sympy,
    torch._dynamo: 1.1-1.3 CPU-s), so that this process and its forks run the size search's
    trials there (:class:`Probes`): for the fork server, between its first fork and the next."""
    global _warm  # once per process, inherited by its forks
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(18, 1)).to("meta")
    net(torch.empty(2, 1, 8, 8, device="meta")).sum().backward()
    _warm = True


def _seen_at(model: nn.Module, shape: tuple[int, ...], batch: int,
             meta: Swapped | None) -> Seen | None:
    """:func:`seen_at` at ``batch``, on the ``meta`` twins, else on the model's own tensors."""
    shape = (batch, *shape[1:])
    if meta is None:
        x = torch.zeros(shape, device=model_device(model))
    else:
        x = torch.empty(shape, device="meta")
    sizes: list[int] = []

    def record(module: nn.Module, args: tuple, out: object) -> None:
        x = args[0] if args else None
        if isinstance(out, torch.Tensor) and isinstance(x, torch.Tensor) \
                and out.dim() == x.dim() == len(shape) and (_map_size(x) or 0) > 1 \
                and not isinstance(module, _GLOBAL_POOLS):
            size = _map_size(out)
            if size is not None:
                sizes.append(size)

    def reach(module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or _is_head(x):
            raise _Reached(module, tuple(x.shape) if isinstance(x, torch.Tensor) else None)

    # torch's global hooks run at every module call, before the module's own hooks: they serve
    # the modules without hooks of their own (one registration a run, not one per module: a
    # thousand on resnet1202); a module with its own (a pre-hook that flattens the head's
    # input, a hook that crops an output) gets bnlint's after them. torch refuses hooks on
    # TorchScript modules (a ResNet's blocks as torch.jit.ScriptModule): their outputs go
    # unseen, as the forward runs them whole
    linears, recorded, hooks = set(), set(), []
    for m in model.modules():
        if isinstance(m, torch.jit.ScriptModule):
            continue
        if m._forward_pre_hooks or m._forward_hooks:
            hooks.append(m.register_forward_pre_hook(reach) if isinstance(m, nn.Linear)
                         else m.register_forward_hook(record))
        else:
            (linears if isinstance(m, nn.Linear) else recorded).add(id(m))
    hooks += [
        register_module_forward_pre_hook(
            lambda m, args: reach(m, args) if id(m) in linears else None),
        register_module_forward_hook(
            lambda m, args, out: record(m, args, out) if id(m) in recorded else None)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if meta is None:
                model(x)
            else:
                with _ShapesOnly():
                    meta(x)
        linear, reached = None, None
    except _Reached as stop:
        linear, reached = stop.layer, stop.shape
    except Exception:  # noqa: BLE001 - the model does not run (there)
        return None
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return Seen(linear, reached, min(sizes) if sizes else None)


def _is_head(x: torch.Tensor) -> bool:
    """Whether a Linear whose input is ``x`` is the head the search stops at: its input is
    (batch, features), or 1-D (a forward that squeezed a batch of 1 away); on 3 or more
    dimensions it is a layer of the body, applied to each token or pixel."""
    return x.dim() <= 2


def _map_size(x: torch.Tensor) -> int | None:
    """The smallest spatial size of a layer's output ``x`` in a run on a square input: of its
    dimensions after the batch and channels; of a 4-D one, the size of its square map, (B, C,
    H, H) or channels-last (B, H, H, C) as ConvNeXt's and Swin's blocks keep it (the input and
    the kernels are square, so the maps are); None for another 4-D tensor, which is no map:
    MaxViT's windows of tokens (B, windows, tokens, C)."""
    if x.dim() != 4:
        return min(x.shape[2:])
    return x.shape[2] if x.shape[2] == x.shape[3] else x.shape[1] if x.shape[1] == x.shape[2] \
        else None


class Probes:
    """A model's runs up to its head (:func:`seen_at`), each size run once: on its own weights
    when it has them and the size is at most ON_WEIGHTS_UP_TO or a usual one, else on the meta
    device; in a process that ran warm_meta, on the meta device first and on the weights
    (where those sizes allow) only when the meta device cannot run it. Both give the same
    shapes."""

    def __init__(self, model: nn.Module, shape_at: Callable[[int], tuple[int, ...]]):
        self.model, self.shape_at = model, shape_at
        self.on_weights = not any(t.is_meta for t in (*model.parameters(), *model.buffers()))
        self.seen: dict[int, Seen | None] = {}
        self.lazy = has_lazy(model)  # then it is not run (see seen_at)

    def __call__(self, size: int) -> Seen | None:
        if self.lazy:
            return None
        if size not in self.seen:
            weights = self.on_weights and (size <= ON_WEIGHTS_UP_TO or size in USUAL_SIZES)
            shape = self.shape_at(size)
            seen = None
            if _warm or not weights:
                seen = seen_at(self.model, shape, meta=self._meta)
            self.seen[size] = seen if seen is not None or not weights \
                else seen_at(self.model, shape, on_weights=True)
        return self.seen[size]

    @functools.cached_property
    def _meta(self) -> Swapped:
        """The model's forward on its tensors' meta twins, made at its first run there."""
        return Swapped(self.model, meta_state(self.model))


@dataclass(frozen=True)
class Solved:
    size: int
    linear: nn.Linear
    sizes: tuple[int, int]  # sizes known to fit, from..to, ``size`` among them
    every: bool  # whether those are all the sizes that fit (else ``size`` and a neighbour)


def _preferred(size: int) -> tuple[bool, int, int]:
    """The order sizes that fit are picked in: a dataset's usual size, then the size divisible
    by the largest power of 2, then the smallest."""
    return size in USUAL_SIZES, size & -size, -size


def _pick(low: int, high: int) -> int:
    """The size to use of those in [low, high] that fit (:func:`_preferred`). Pooling and
    strides floor, so several sizes fit: 28 and 29 for an MNIST net, 25 to 32 for a CIFAR net
    whose head sees 3x3 maps (32 is picked, not MNIST's 28)."""
    return max(range(low, high + 1), key=_preferred)


def _pair(probes: Probes) -> tuple[int, int] | None:
    """Two sizes whose runs reach the same head after a flatten with different features:
    32 and 64, else 64 and 128; None when there are none (no flatten before the head,
    or a global pool: equal features at 32 and 64, whose maps cannot floor to one size)."""
    b = probes(64)
    if b is None or not b.flat:
        return None
    a = probes(32)
    if a is not None and a.flat and a.linear is b.linear:
        return (32, 64) if a.flat != b.flat else None
    c = probes(128)
    if c is None or not c.flat or c.linear is not b.linear or c.flat == b.flat:
        return None
    return 64, 128


def solve_flatten(probes: Probes) -> Solved | None:
    """A size whose flattened features the head after a flatten takes (its
    ``in_features``), when they depend on the size (no global pool before it); None otherwise.
    The features grow with the size, so the sizes that fit are a range, which the features at
    two sizes predict: the usual sizes in the predicted range are tried first, in the order
    they are preferred; when none fits, bisections find the range."""
    pair = _pair(probes)
    if pair is None:
        return None
    p, q = pair
    linear = probes(q).linear
    target = linear.in_features

    def flat(size: int) -> int:
        """The features at ``size``; 0 for a size too small to run (or another head)."""
        seen = probes(size)
        return seen.flat or 0 if seen is not None and seen.linear is linear else 0

    def possible(size: int) -> bool:
        """Whether ``size`` may fit, as the features grow with the size."""
        return not any((s < size and flat(s) > target) or (s > size and 0 < flat(s) < target)
                       for s in list(probes.seen))

    # the features are channels x (spatial size)^k, and a spatial size is about affine in the
    # input's: so the k-th root of the features is too; its line through p and q predicts
    k = len(probes.shape_at(1)) - 2 if len(probes.shape_at(1)) < 5 else 2  # 3-D: 16 frames
    rp, rq = flat(p) ** (1 / k), flat(q) ** (1 / k)
    guess = p + (target ** (1 / k) - rp) * (q - p) / (rq - rp)
    margin = max(8, int(guess / 4))
    low, high = max(1, int(guess) - margin), min(MAX_SIZE + 1, int(guess) + margin)
    for size in sorted(USUAL_SIZES, key=_preferred, reverse=True):
        if low <= size <= high and possible(size) and flat(size) == target:
            # neither neighbour fits: the only size that does, as the features grow
            alike = next((n for n in (size + 1, size - 1) if flat(n) == target), size)
            return Solved(size, linear, (min(size, alike), max(size, alike)), alike == size)

    def first(above: int, low: int, high: int) -> int:
        """The smallest size in [low, high] with more than ``above`` features (high if none)."""
        while low < high:
            mid = (low + high) // 2
            if flat(mid) > above:
                high = mid
            else:
                low = mid + 1
        return low

    while low > 1 and flat(low) >= target:  # not below the range yet: widen, halving
        low //= 2
    while high <= MAX_SIZE and flat(high) <= target:  # not above it yet: widen, doubling
        high = min(MAX_SIZE + 1, high * 2)
    smallest = first(target - 1, low, high)
    largest = first(target, smallest, high) - 1
    # a size the layers reject (an odd size before a stride) may sit inside the range
    fits = [s for s in range(smallest, min(largest, smallest + 3) + 1) if flat(s) == target]
    if not fits:
        return None
    size = _pick(fits[0], largest)
    return Solved(size if flat(size) == target else fits[0], linear, (fits[0], largest), True)


def cifar_downsampling(probes: Probes, stem: nn.Conv2d, classes: int | None) -> int | None:
    """How many times the layers before the head shrink CIFAR's 32x32 input, for a model built
    for CIFAR (a head of CIFAR_CLASSES classes after a 3x3 stride-1 first conv) whose layers
    shrink it at least IMAGENET_DOWNSAMPLING times (to 1x1), as ImageNet models shrink 224 to
    7; None otherwise (such a model with larger maps at 32 px is run at 32 anyway, the first
    usual size, as :func:`imagenet_downsampling` finds it no ImageNet model)."""
    if classes not in CIFAR_CLASSES or tuple(stem.kernel_size) != (3, 3) \
            or set(stem.stride) != {1}:
        return None
    return _downsampling(probes, CIFAR_SIZE)


def imagenet_downsampling(probes: Probes) -> int | None:
    """How many times the layers before the head shrink an ImageNet-sized input (224 over the
    smallest spatial size a layer outputs, global pools aside), when it is at least
    IMAGENET_DOWNSAMPLING; None otherwise or when unknown. Maps do not shrink as the input
    grows, so a model whose maps at a smaller size all stay larger than 224 allows is not run
    at 224 (a CIFAR network there would cost 50 times its size): at a size already run (the
    flatten search's), else at 128 (a quarter of 224's cost on an ImageNet network)."""
    def larger(seen: Seen | None) -> bool:
        return seen is not None and bool(seen.smallest) \
            and IMAGENET_SIZE // seen.smallest < IMAGENET_DOWNSAMPLING

    if any(larger(seen) for size, seen in probes.seen.items() if size < IMAGENET_SIZE) \
            or larger(probes(128)):
        return None
    return _downsampling(probes, IMAGENET_SIZE)


def _downsampling(probes: Probes, size: int) -> int | None:
    """How many times the layers before the head shrink a ``size`` input (over the smallest
    spatial size a layer outputs), when it is at least IMAGENET_DOWNSAMPLING, else None."""
    seen = probes(size)
    if seen is None or not seen.smallest:
        return None
    factor = size // seen.smallest
    return factor if factor >= IMAGENET_DOWNSAMPLING else None
