"""BnlintCallback in a real Lightning Trainer.fit on CPU: a deep plain BatchNorm-ReLU MLP that
explodes stops before its first step; a small one trains, probed with its own optimizer."""

from __future__ import annotations

import csv
import logging

import pytest
import torch
from conftest import readme_snippet
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")

from bnlint.integrations.lightning import (  # noqa: E402 - after the skip when Lightning is absent
    BnlintCallback,
    BnlintFailedError,
    probe_optimizer,
)
from bnlint.optim import LALC  # noqa: E402


class Classifier(pl.LightningModule):
    """An MLP of ``depth`` Linear-BatchNorm-ReLU blocks; counts the training steps it ran."""

    def __init__(self, depth: int, optimizer: str = "sgd", lr: float = 0.01):
        super().__init__()
        blocks = []
        for _ in range(depth):
            blocks += [nn.Linear(32, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU()]
        self.net = nn.Sequential(*blocks, nn.Linear(32, 4))
        self.optimizer, self.lr, self.steps_run = optimizer, lr, 0

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        self.steps_run += 1
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        if self.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.lr)
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def _loader(n: int = 128) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 32, generator=g)
    return DataLoader(TensorDataset(x, torch.randint(0, 4, (n,), generator=g)), batch_size=64)


def _trainer(tmp_path, callback, **kwargs) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, callbacks=[callback], enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False,
                      logger=pl.loggers.CSVLogger(tmp_path), **kwargs)


def _metrics(trainer) -> dict[str, str]:
    with open(f"{trainer.logger.log_dir}/metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    return {k: v for row in rows for k, v in row.items() if k.startswith("bnlint/") and v}


def test_exploding_model_stops_the_fit_before_its_first_step(tmp_path, caplog):
    model = Classifier(depth=30)
    callback = BnlintCallback(fail_on="warning", probe_steps=3)
    trainer = _trainer(tmp_path, callback, max_steps=5)
    with pytest.raises(BnlintFailedError, match="before its first step") as raised:
        trainer.fit(model, _loader())
    assert model.steps_run == 0 and trainer.global_step == 0
    assert trainer.state.status == "interrupted"
    assert "BNL201 warning: 30 plain Linear -> BatchNorm -> ReLU blocks" in str(raised.value)
    probe = callback.report.probe
    assert (probe.optimizer["name"], probe.optimizer["lr"], probe.optimizer["momentum"]) == \
        ("sgd", 0.01, 0.9)  # what configure_optimizers made
    # the module's F.cross_entropy, inferred from its file, on the batch's labels
    assert probe.batch == 64 and probe.loss == \
        "the model's loss (cross-entropy on logits (CrossEntropyLoss)) on the given targets"
    assert float(_metrics(trainer)["bnlint/warning"]) >= 1


def test_trainable_model_trains_probed_with_its_own_optimizer(tmp_path, caplog):
    model = Classifier(depth=2, optimizer="adam", lr=1e-3)
    callback = BnlintCallback(fail_on="warning", probe_steps=3)
    trainer = _trainer(tmp_path, callback, max_steps=2)
    with caplog.at_level(logging.INFO, logger="bnlint"):
        trainer.fit(model, _loader())
    assert model.steps_run == 2 and trainer.global_step == 2
    probed = callback.report.probe.optimizer
    assert (probed["name"], probed["lr"], probed["momentum"]) == ("adam", 1e-3, None)
    assert probed["args"]["betas"] == [0.9, 0.999]
    assert [f.code for f in callback.report.findings if f.severity != "info"] == []
    assert "bnlint at the first training batch" in caplog.text
    metrics = _metrics(trainer)
    assert float(metrics["bnlint/warning"]) == 0 and "bnlint/grad_ratio" in metrics


def test_the_callback_leaves_training_as_it_would_be(tmp_path):
    """Same seed, with and without the callback: the same weights and BatchNorm statistics
    after two epochs (the probe trains a copy, and the random state that shuffles the second
    epoch's batches is restored)."""
    def fit(callbacks):
        torch.manual_seed(0)
        model = Classifier(depth=2)
        loader = DataLoader(_loader().dataset, batch_size=32, shuffle=True)
        pl.Trainer(accelerator="cpu", devices=1, callbacks=callbacks, max_steps=8, logger=False,
                   enable_progress_bar=False, enable_model_summary=False,
                   enable_checkpointing=False).fit(model, loader)
        return model.state_dict()

    plain, linted = fit([]), fit([BnlintCallback(fail_on="never", probe_steps=2)])
    assert plain.keys() == linted.keys()
    assert all(torch.equal(plain[k], linted[k]) for k in plain)


def test_optimizers_map_to_what_the_probe_runs():
    params = [nn.Parameter(torch.zeros(2))]
    sgd = probe_optimizer(torch.optim.SGD(params, lr=0.1, momentum=0.5, nesterov=True))
    assert sgd == ({"name": "sgd", "lr": 0.1, "momentum": 0.5, "dampening": 0,
                    "weight_decay": 0, "nesterov": True, "maximize": False}, [])
    assert probe_optimizer(torch.optim.AdamW(params, lr=3e-4))[0]["name"] == "adamw"
    assert probe_optimizer(LALC(params, lr=0.1))[0]["name"] == "lalc"
    adam = probe_optimizer(torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.9)))[0]
    assert adam["betas"] == [0.5, 0.9]
    rmsprop, notes = probe_optimizer(torch.optim.RMSprop(params, lr=1e-3, alpha=0.9))
    assert (rmsprop["name"], rmsprop["alpha"], notes) == ("rmsprop", 0.9, [])
    config, notes = probe_optimizer(torch.optim.LBFGS(params, lr=1e-3))
    assert config is None and "LBFGS is not an optimizer bnlint's probe runs" in notes[0]


def test_readme_lightning_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the Trainer writes its logs here
    namespace = {"model": Classifier(depth=2), "train_loader": _loader()}
    exec(readme_snippet("PyTorch Lightning", "python"), namespace)
    assert namespace["trainer"].global_step > 0
