"""The input size an image (or signal) model's layers imply, read from shapes on the meta device
(no arithmetic): the size whose flattened features fit the first Linear after a flatten (28x28
for an MNIST net, 32x32 for LeNet), or ImageNet's 224 for a model that downsamples its input
as ImageNet models do before a global pool."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

IMAGENET_SIZE = 224
# A model whose layers shrink a 224x224 input at least this much before its head is built for
# ImageNet-sized inputs: ResNet, VGG, DenseNet, MobileNet and EfficientNet take 224 to 7 (a
# stride-2 stem, pooling or strided stages); their CIFAR versions take 32 to 8 or 4 (He et al.,
# arXiv:1512.03385, section 4.2: feature maps of 32, 16 and 8), so 224 to 28 or 56.
IMAGENET_DOWNSAMPLING = 32
MAX_SIZE = 2048  # the largest size solved for
_GLOBAL_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                 nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


class _Reached(Exception):  # noqa: N818 - a signal that stops the run, not an error
    """Raised by the hook on the first Linear the forward calls: stops the run there."""

    def __init__(self, layer: nn.Linear, shape: tuple[int, ...] | None):
        super().__init__()
        self.layer, self.shape = layer, shape


@dataclass(frozen=True)
class Seen:
    """What a run up to the first Linear saw: that layer and the shape of its input (None when
    the forward called no Linear), and the smallest spatial size a layer output (None if
    none did)."""
    linear: nn.Linear | None
    linear_input: tuple[int, ...] | None
    smallest: int | None

    @property
    def flat(self) -> int | None:
        """The features the first Linear receives, when its input is flat (batch, features)."""
        shape = self.linear_input
        return shape[1] if shape is not None and len(shape) == 2 else None


def seen_at(model: nn.Module, shape: tuple[int, ...]) -> Seen | None:
    """Run ``model`` on the meta device on an input of ``shape`` up to its first Linear; None
    when it cannot run there (e.g. a forward that makes tensors on the CPU, or reads values)
    or has lazy layers (their first run would set their shapes)."""
    if any(isinstance(t, nn.parameter.UninitializedTensorMixin)
           for t in (*model.parameters(), *model.buffers())):
        return None
    state = {name: torch.empty_like(t, device="meta")
             for name, t in (*model.named_parameters(), *model.named_buffers())}
    sizes: list[int] = []

    def record(module: nn.Module, args: tuple, out: object) -> None:
        x = args[0] if args else None
        if isinstance(out, torch.Tensor) and isinstance(x, torch.Tensor) \
                and out.dim() == x.dim() == len(shape) and min(x.shape[2:]) > 1 \
                and not isinstance(module, _GLOBAL_POOLS):
            sizes.append(min(out.shape[2:]))

    def reach(module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        raise _Reached(module, tuple(x.shape) if isinstance(x, torch.Tensor) else None)

    hooks = [m.register_forward_pre_hook(reach) if isinstance(m, nn.Linear)
             else m.register_forward_hook(record) for m in model.modules()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            functional_call(model, state, (torch.empty(shape, device="meta"),))
        linear, reached = None, None
    except _Reached as stop:
        linear, reached = stop.layer, stop.shape
    except Exception:  # noqa: BLE001 - the model does not run on the meta device
        return None
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return Seen(linear, reached, min(sizes) if sizes else None)


@dataclass(frozen=True)
class Solved:
    size: int
    linear: nn.Linear


def solve_flatten(model: nn.Module, shape_at: Callable[[int], tuple[int, ...]]) -> Solved | None:
    """The smallest size whose flattened features the first Linear after a flatten takes
    (``in_features``), when the features depend on the size (no global pool before it); None
    otherwise. The features grow with the size, so a bisection finds it."""
    a, b = seen_at(model, shape_at(64)), seen_at(model, shape_at(128))
    if a is None or b is None or a.flat is None or b.flat is None or a.flat == b.flat \
            or a.linear is not b.linear:
        return None
    target = a.linear.in_features

    def flat(size: int) -> int | None:
        seen = seen_at(model, shape_at(size))
        return seen.flat if seen is not None and seen.linear is a.linear else None

    low, high = 1, MAX_SIZE  # the smallest size with flat(size) >= target lies in [low, high]
    if (flat(high) or 0) < target:
        return None
    while low < high:
        mid = (low + high) // 2
        if (flat(mid) or 0) >= target:  # a size too small to run counts as too few features
            high = mid
        else:
            low = mid + 1
    # a size the layers reject (an odd size before a stride) may sit just below an exact fit
    size = next((s for s in range(low, low + 4) if flat(s) == target), None)
    return Solved(size, a.linear) if size is not None else None


def downsampling(model: nn.Module, shape_at: Callable[[int], tuple[int, ...]]) -> int | None:
    """How many times the layers before the head shrink an ImageNet-sized input (224 over the
    smallest spatial size a layer outputs, global pools aside); None when unknown."""
    seen = seen_at(model, shape_at(IMAGENET_SIZE))
    if seen is None or not seen.smallest:
        return None
    return IMAGENET_SIZE // seen.smallest
