"""The training loss bnlint reads (config or the model's file) and the rules that judge the
output head, the inputs and the targets against it (issue 17)."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

import bnlint
from bnlint.config import Config, from_mapping
from bnlint.discover.loss import inferred, loss_for, unguarded_logs
from bnlint.errors import InputError


def _file(tmp_path, code: str):
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return str(path)


def test_the_loss_is_inferred_from_one_kind_of_torch_loss_call(tmp_path):
    path = _file(tmp_path, """
        import torch.nn.functional as F
        from torch import nn
        criterion = nn.CrossEntropyLoss()
        def step(model, x, y):
            return F.cross_entropy(model(x), y)
    """)
    loss = inferred(path)
    assert (loss.name, loss.inferred, loss.expects) == ("ce", True, "logits")
    assert loss.where == "nn.CrossEntropyLoss() at model.py:4"
    assert "inferred from nn.CrossEntropyLoss() at model.py:4" in loss.said
    assert loss_for("mse", path).name == "mse"  # the config wins
    assert not loss_for("mse", path).inferred


@pytest.mark.parametrize("code", [
    "import torch.nn.functional as F\na = F.mse_loss\nb = F.binary_cross_entropy(p, y)\n"
    "c = F.cross_entropy(s, y)\n",   # two kinds: which one trains the head is unknown
    "def broken(:\n",                # not Python: nothing is inferred, nothing raises
    "x = 1\n",                       # no loss at all
])
def test_no_loss_is_inferred_from_several_kinds_none_or_a_broken_file(tmp_path, code):
    assert inferred(_file(tmp_path, code)) is None
    assert unguarded_logs(_file(tmp_path, code)) == []


def test_a_config_loss_outside_the_known_ones_is_refused_with_the_choices():
    assert from_mapping({"loss": "ce"}, "pyproject.toml").loss == "ce"
    with pytest.raises(InputError) as exc:
        from_mapping({"loss": "focal"}, "pyproject.toml")
    assert "config key 'loss' must be one of mse, mae, huber, bce, bce_with_logits, ce, nll, " \
        "kl, got 'focal'" in exc.value.message


def test_logs_guarded_by_a_clamp_or_an_epsilon_are_left_alone(tmp_path):
    path = _file(tmp_path, """
        import torch
        def nll_loss_of(p, y):
            return -(y * torch.log(p.clamp(min=1e-7))).sum()
        cost = -(y * torch.log(p + 1e-8) + (1 - y) * torch.log(1 - p + eps)).mean()
        sigma = torch.log(p)   # not a loss
        entropy_floor = ce - math.log(classes) - np.log(k)   # numbers, not outputs
        loss = -(y * p.log()).sum()
    """)
    assert [(log.line, log.text) for log in unguarded_logs(path)] == [(8, "p.log()")]


class Pixels(nn.Module):
    def __init__(self, scale: bool):
        super().__init__()
        self.scale = scale
        self.conv, self.head = nn.Conv2d(3, 8, 3), nn.Linear(8, 10)

    def forward(self, x):
        x = x / 255 if self.scale else x
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def test_input_scale_reads_only_the_users_inputs_and_trusts_a_forward_that_rescales():
    torch.manual_seed(0)
    raw = (torch.randn(16, 3, 8, 8) * 60 + 116).clamp(0, 255).round()
    config = Config(probe=False, select=["BNL408"])
    found = bnlint.lint(Pixels(False), raw, config=config).findings
    assert [f.code for f in found] == ["BNL408"]
    assert "channel 0: mean" in found[0].message and "x = x / 255" in found[0].message
    assert bnlint.lint(Pixels(True), raw, config=config).findings == []
    assert bnlint.lint(Pixels(False), raw, config=config, synthetic_inputs=True).findings == []


def test_the_head_rules_need_the_loss_and_say_where_it_came_from():
    model = nn.Sequential(nn.Linear(16, 4), nn.Softmax(dim=1))
    x = torch.randn(8, 16)
    assert bnlint.lint(model, x, config=Config(probe=False, select=["BNL405"])).findings == []
    found = bnlint.lint(model, x, config=Config(probe=False, select=["BNL405"], loss="ce"))
    assert [f.code for f in found.findings] == ["BNL405"]
    assert "'ce' in the config" in found.findings[0].message


def _named(tmp_path, name: str, code: str):
    """A file of its own name (the parsed trees are cached by path)."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return str(path)


def test_a_summed_or_scaled_loss_is_inferred_with_its_reduction(tmp_path):
    torch_sum = inferred(_named(tmp_path, 'm1', "loss_fn = nn.MSELoss(reduction='sum')\n"))
    assert (torch_sum.name, torch_sum.reduction, torch_sum.scale) == ("mse", "sum", 1.0)
    written = inferred(_named(tmp_path, 'm2', "T = 100\n"
                                       "def step(model, x, y):\n"
                                       "    loss = ((y - model(x)) ** 2).sum() / (2 * T)\n"))
    assert (written.name, written.reduction, written.scale) == ("mse", "sum", 0.005)
    assert written.reduced == "summed over the batch times 0.005"
    assert "((y - model(x)) ** 2).sum() / (2 * T) at m2.py:3" in written.said
    mean = inferred(_named(tmp_path, 'm3', "def step(model, x, y):\n"
                                    "    loss = torch.mean((model(x) - y) ** 2)\n"))
    assert (mean.reduction, mean.scale, mean.reduced) == ("mean", 1.0, "")
    # a divisor the file does not state as a number, or two different squared errors: none
    assert inferred(_named(tmp_path, 'm4', "def step(model, x, y):\n"
                                    "    loss = ((y - model(x)) ** 2).sum() / len(x)\n")) is None
    assert inferred(_named(tmp_path, 'm5', "def step(model, x, y):\n"
                                    "    loss = ((y - model(x)) ** 2).sum()\n"
                                    "    cost = ((y - model(x)) ** 2).mean()\n")) is None


@pytest.mark.parametrize("code,as_given", [
    ("loss = ((y - model(x)) ** 2).mean()\n", True),
    ("loss = ((model(x[i]) - y[i]) ** 2).mean()\n", True),
    ("loss = ((y.unsqueeze(1) - model(x)) ** 2).mean()\n", False),
    ("loss = ((y[:, None] - model(x)) ** 2).mean()\n", False),
    ("loss = F.mse_loss(model(x), y[idx])\n", True),
    ("loss = F.mse_loss(model(x), y.view(-1, 1))\n", False),
    ("loss = nn.MSELoss()(model(x), y)\n", False),
])
def test_whether_the_loss_takes_the_targets_as_given(tmp_path, code, as_given):
    assert inferred(_file(tmp_path, code)).targets_as_given is as_given
