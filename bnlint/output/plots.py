"""``--plot FILE.png|svg``: the probe's per-layer measurements, one row of panels per model.

Left: weight-gradient norm of each affine layer by depth, measured at initialisation, and the
static prediction (relative to the output layer, scaled to the measured output layer).
Right: fraction of dead units of each ReLU layer, at initialisation and after the probe's
training steps. Needs matplotlib
(``pip install 'bnlint[plot]'``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..files import replace_atomic
from ..findings import Report

SUFFIXES = (".png", ".svg")


def check_available(path: str) -> None:
    """Fail early (before linting) when the plot cannot be drawn."""
    if Path(path).suffix.lower() not in SUFFIXES:
        raise InputError("--plot needs a .png or .svg file name.", path=path)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError("--plot needs matplotlib, which is not installed.",
                         hint="pip install 'bnlint[plot]'") from None


def draw(report: Report, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probed = [m for m in report.models if m.probe]
    if not probed:
        raise InputError("nothing to plot: no model was probed.", path=path,
                         hint="Run without --no-probe.")
    fig, axes = plt.subplots(len(probed), 2, figsize=(11, 3.2 * len(probed)), squeeze=False)
    for (grad_ax, dead_ax), model in zip(axes, probed):
        layers = model.probe.layers
        affine = [x for x in layers if "weight_grad" in x.init]
        depth = range(1, len(affine) + 1)
        grad_ax.semilogy(depth, [x.init["weight_grad"] for x in affine], "o-",
                         label="measured (init)")
        if any(x.predicted_grad is not None for x in affine):
            scale = affine[-1].init["weight_grad"]
            grad_ax.semilogy(depth, [(x.predicted_grad if x.predicted_grad is not None
                                      else float("nan")) * scale for x in affine], "s--",
                             label="predicted")
        grad_ax.set(title=f"{model.name}: weight-gradient norm",
                    xlabel="affine layer (input → output)", ylabel="||grad W||")
        grad_ax.legend()
        relu = [x for x in layers if "dead" in x.init]
        index = range(1, len(relu) + 1)
        dead_ax.plot(index, [x.init["dead"] for x in relu], "o-", label="init")
        dead_ax.plot(index, [x.final["dead"] for x in relu], "s--",
                     label=f"after {model.probe.steps} steps")
        dead_ax.set(title=f"{model.name}: dead ReLU units", xlabel="ReLU layer",
                    ylabel="fraction dead", ylim=(-0.02, 1.02))
        dead_ax.legend()
    fig.tight_layout()
    try:
        replace_atomic(path, fig.savefig, what="the plot")
    except OSError as exc:
        raise InputError(f"cannot write the plot: {exc.strerror}.", path=path) from None
    finally:
        plt.close(fig)
