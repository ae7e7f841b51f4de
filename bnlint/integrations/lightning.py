"""PyTorch Lightning (``pip install 'bnlint[lightning]'``): :class:`BnlintCallback` lints the
LightningModule as training starts, probing the real first batch with the real optimizer from
``configure_optimizers``, reports through the trainer's loggers and, at ``fail_on``, stops the
fit before the first optimizer step."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

try:
    import lightning.pytorch as pl
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("bnlint.integrations.lightning needs Lightning: "
                      "pip install 'bnlint[lightning]'") from exc

from .. import config as config_mod
from ..api import lint
from ..config import Config
from ..findings import SEVERITY_RANK, ModelReport, Report
from ..output import text
from ..testing import configured

log = logging.getLogger("bnlint")

def _optimizer_classes() -> dict[type, str]:
    """The optimizers bnlint's probe runs (config.OPTIMIZER_ARGS), by class."""
    from .. import optim as bnlint_optim
    return {(getattr(bnlint_optim, cls, None) or getattr(torch.optim, cls)): name
            for name, (cls, _) in config_mod.OPTIMIZER_ARGS.items()}


def probe_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any] | None, list[str]]:
    """The ``optimizer`` config that makes the probe run as ``optimizer`` will (name, lr and the
    other arguments of its first parameter group), or None; with notes on what the probe cannot
    copy. A subclass maps to the nearest class in its MRO (AdamW before Adam)."""
    classes = _optimizer_classes()
    name = next((classes[c] for c in type(optimizer).__mro__ if c in classes), None)
    if name is None:
        return None, [f"{type(optimizer).__name__} is not an optimizer bnlint's probe runs "
                      f"({', '.join(config_mod.OPTIMIZERS)}): it measured with SGD (lr "
                      f"{config_mod.PROBE_LR:g}, momentum {config_mod.PROBE_MOMENTUM:g}), and "
                      "the learning-rate rule BNL905 did not run"]
    group = optimizer.param_groups[0]
    notes = []
    if len({float(g["lr"]) for g in optimizer.param_groups}) > 1:
        notes.append("the parameter groups have different learning rates; the probe used the "
                     "first group's for all")
    known = config_mod.OPTIMIZER_ARGS[name][1]
    args = {k: list(v) if isinstance(v, tuple) else v
            for k, v in group.items() if k in known and k != "momentum"}
    return {"name": name, "lr": float(group["lr"]), "momentum": float(group.get("momentum", 0.0)),
            **args}, notes


def split_batch(batch: Any) -> tuple[Any, torch.Tensor | None]:
    """Model inputs and targets of a batch: a tensor is the inputs; ``(x, y)`` is inputs and
    targets. Other batches need the callback's ``split_batch``."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, Sequence) and len(batch) == 2 \
            and all(isinstance(t, torch.Tensor) for t in batch):
        return batch[0], batch[1]
    raise TypeError(f"BnlintCallback cannot tell the inputs from the targets in a batch of "
                    f"type {type(batch).__name__}; pass split_batch=lambda batch: "
                    "(inputs, targets) to BnlintCallback.")


class BnlintFailedError(RuntimeError):
    """Raised at the first training batch when bnlint finds problems at or above ``fail_on``:
    Lightning stops the fit (callbacks' ``on_exception``, loggers finalised as failed) and
    ``trainer.fit`` raises it."""


class BnlintCallback(pl.Callback):
    """Lint the model at the first training batch, before the first optimizer step.

    ``fail_on``: the lowest severity that stops the fit (``"never"`` only reports).
    ``select``: rule codes or prefixes. ``config``: settings to start from (default: the
    defaults; ``bnlint.config.load(None, pathlib.Path.cwd())`` reads the project's).
    ``split_batch``: batch -> (inputs, targets), for batches that are not a tensor or (x, y).
    ``model``: LightningModule -> the nn.Module to lint, when its own forward is not the model.
    ``settings``: config keys in snake_case (``probe_steps=5``, ``ignore=["BNL102"]``).

    The probe trains a copy on the real first batch with the optimizer ``configure_optimizers``
    made (its type, learning rate and momentum), on the module's device; the global random
    state is left as it was. The report is kept as ``callback.report``, logged as text and
    as metrics (``bnlint/error``, ``bnlint/warning``, ``bnlint/info``, and the probe's
    ``bnlint/grad_ratio``, ``bnlint/dead_fraction``, ``bnlint/lr_ceiling``) to every logger.
    """

    def __init__(self, fail_on: str = config_mod.FAIL_ON_DEFAULT, *,
                 select: str | list[str] | None = None, config: Config | None = None,
                 split_batch: Callable[[Any], tuple[Any, Any]] = split_batch,
                 model: Callable[[pl.LightningModule], nn.Module] | None = None,
                 **settings: Any):
        self.config = configured(config, fail_on=fail_on,
                                 **({"select": select} if select else {}), **settings)
        self.split_batch = split_batch
        self.model = model
        self.report: ModelReport | None = None
        self.notes: list[str] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if self.report is not None or trainer.global_step != 0 or batch_idx != 0:
            return
        failed = self._lint(trainer, pl_module, batch) if trainer.is_global_zero else None
        failed = trainer.strategy.broadcast(failed, src=0)
        if failed:
            raise BnlintFailedError(failed)

    def _lint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
              batch: Any) -> str | None:
        """Lint, log, and return the report's text when it is at or above ``fail_on``."""
        inputs, targets = self.split_batch(batch)
        optimizer, self.notes = (probe_optimizer(trainer.optimizers[0]) if trainer.optimizers
                                 else (None, ["no optimizer: the probe measured with SGD"]))
        cfg = configured(self.config, device=pl_module.device.type,
                         **({"optimizer": optimizer} if optimizer else {}))
        model = self.model(pl_module) if self.model else pl_module
        with torch.random.fork_rng(devices=[pl_module.device] if pl_module.device.type == "cuda"
                                   else []):
            self.report = lint(model, inputs, targets, cfg, name=type(pl_module).__name__)
        whole = Report(models=[self.report], files=int(self.report.path is not None))
        rendered = text.text(whole, colour=False).rstrip()
        log.info("bnlint at the first training batch:\n%s%s", rendered,
                 "".join(f"\n  note: {n}" for n in self.notes))
        self._log_metrics(trainer, whole)
        if whole.exit_code(cfg.fail_on):
            return (f"bnlint stopped the fit before its first step (fail_on="
                    f"{cfg.fail_on!r}):\n{rendered}")
        return None

    def _log_metrics(self, trainer: pl.Trainer, whole: Report) -> None:
        summary = whole.summary()
        metrics = {f"bnlint/{s}": float(summary[s]) for s in SEVERITY_RANK}
        probe = self.report.probe
        if probe is not None:
            values = {"grad_ratio": probe.grad_ratio, "dead_fraction": probe.dead_fraction,
                      "lr_ceiling": probe.lr_ceiling.bound if probe.lr_ceiling else None}
            metrics.update({f"bnlint/{k}": float(v) for k, v in values.items()
                            if v is not None and math.isfinite(v)})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
