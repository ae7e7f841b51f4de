"""bnlint.flow: the predicted first/last weight-gradient ratio against a measured backward pass
(the acceptance cases of the gradient-flow issue), and the graph structure it reports."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnlint.model.build import build
from bnlint.predict.flow import predict, residual_branches

WIDTH, BATCH = 256, 256


def measured_ratio(model: nn.Module, x: torch.Tensor) -> float:
    """||grad W_first|| / ||grad W_last|| of the first and last affine layers after one
    backward of cross-entropy on random labels (the probe's loss), in training mode."""
    torch.manual_seed(1)
    model.train()
    out = model(x)
    F.cross_entropy(out, torch.randint(0, out.shape[1], (x.shape[0],))).backward()
    grads = [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Linear)]
    return grads[0] / grads[-1]


class PreAct(nn.Module):
    """Pre-activation residual block: x + W2 relu(BN(W1 relu(BN(x))))."""

    def __init__(self):
        super().__init__()
        self.bn1, self.fc1 = nn.BatchNorm1d(WIDTH), nn.Linear(WIDTH, WIDTH)
        self.bn2, self.fc2 = nn.BatchNorm1d(WIDTH), nn.Linear(WIDTH, WIDTH)

    def forward(self, x):
        return x + self.fc2(F.relu(self.bn2(self.fc1(F.relu(self.bn1(x))))))


def orthogonal(layer: nn.Linear) -> nn.Linear:
    nn.init.orthogonal_(layer.weight)
    return layer


MODELS = {
    "bn-relu": lambda d: nn.Sequential(*[m for _ in range(d) for m in (
        nn.Linear(WIDTH, WIDTH), nn.BatchNorm1d(WIDTH), nn.ReLU())], nn.Linear(WIDTH, 10)),
    "relu, no BN": lambda d: nn.Sequential(*[m for _ in range(d) for m in (
        nn.Linear(WIDTH, WIDTH), nn.ReLU())], nn.Linear(WIDTH, 10)),
    "pre-act residual": lambda d: nn.Sequential(
        nn.Linear(WIDTH, WIDTH), *[PreAct() for _ in range(d)], nn.BatchNorm1d(WIDTH),
        nn.ReLU(), nn.Linear(WIDTH, 10)),
    "bn-linear orthogonal": lambda d: nn.Sequential(*[m for _ in range(d) for m in (
        orthogonal(nn.Linear(WIDTH, WIDTH, bias=False)), nn.BatchNorm1d(WIDTH))],
        nn.Linear(WIDTH, 10)),
}
CASES = [("bn-relu", d) for d in (5, 10, 20, 30)] + \
    [("relu, no BN", d) for d in (5, 10, 20, 30)] + \
    [("pre-act residual", d) for d in (10, 30, 50)] + \
    [("bn-linear orthogonal", d) for d in (5, 20, 50)]


@pytest.mark.parametrize("family,depth", CASES, ids=[f"{f}-{d}" for f, d in CASES])
def test_prediction_agrees_with_measurement_within_2x(family, depth):
    torch.set_num_threads(1)
    torch.manual_seed(depth)
    model, x = MODELS[family](depth), torch.randn(BATCH, WIDTH)
    predicted = predict(build(model, (x,)), BATCH, (x,)).grad_ratio
    measured = measured_ratio(model, x)
    print(f"{family} depth {depth}: predicted {predicted:.4g}, measured {measured:.4g}")
    assert 0.5 <= predicted / measured <= 2.0


def test_plain_bn_relu_grows_exponentially_and_residual_does_not():
    x = torch.randn(64, 32)
    plain, residual = {}, {}
    for depth in (10, 20):
        torch.manual_seed(0)
        model = nn.Sequential(*[m for _ in range(depth) for m in (
            nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU())], nn.Linear(32, 4))
        chain = predict(build(model, (x,)), 64, (x,)).chain
        assert chain.blocks == depth and chain.kind == "batchnorm"
        assert (chain.first_module, chain.last_module) == ("0", str(3 * (depth - 1)))
        assert chain.gain == pytest.approx(1.22, abs=0.02)  # the rate measured at batch 64
        plain[depth] = chain.grad_ratio
        model = nn.Sequential(nn.Linear(32, WIDTH), *[PreAct() for _ in range(depth)],
                              nn.Linear(WIDTH, 4))
        pred = predict(build(model, (x,)), 64, (x,))
        assert pred.chain is None  # the skips break every chain
        residual[depth] = pred.grad_ratio
    assert plain[20] / plain[10] == pytest.approx(1.22 ** 10, rel=0.1)
    assert residual[20] / residual[10] < 2.0


def test_layers_are_relative_to_the_output_layer_and_overrides_change_them():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 3))
    x = torch.randn(32, 16)
    pred = predict(build(model, (x,)), 32, (x,))
    assert list(pred.layers) == ["0", "2", "4"] and pred.layers["4"] == 1.0
    assert (pred.first_module, pred.last_module) == ("0", "4")
    assert pred.grad_ratio == pred.layers["0"]
    scaled = predict(build(model, (x,)), 32, (x,), overrides={"2": {"weight2": 0.0}})
    assert scaled.layers["0"] == 0.0  # no gradient gets past a zero layer


def test_meta_model_is_predicted_at_default_init():
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).to("meta")
    x = torch.randn(8, 16, device="meta")
    pred = predict(build(model, (x,)), 8, (x,))
    assert set(pred.assumed) >= {"0", "2"} and math.isfinite(pred.grad_ratio)


def test_residual_branches_find_the_last_batchnorm_of_each_branch():
    class Block(nn.Module):
        def __init__(self, project):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.skip = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)) if project \
                else nn.Identity()

        def forward(self, x):
            return F.relu(self.skip(x) + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))

    model = nn.Sequential(Block(False), Block(True))
    graph = build(model, (torch.randn(2, 4, 8, 8),))
    branches = residual_branches(graph)
    assert [b.end.module for b in branches] == ["0.bn2", "1.bn2"]
    assert branches[1].skip.module == "1.skip.1"  # the projection shortcut is not the branch


class SEBranch(nn.Module):
    """conv -> BN -> squeeze-excitation gate, then a reshape, added to a projected stream:
    the BN ends the branch though a gate and a reshape sit between it and the add."""

    def __init__(self, width=8):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width)
        self.fc1, self.fc2 = nn.Conv2d(width, 2, 1), nn.Conv2d(2, width, 1)
        self.down, self.down_bn = nn.Conv2d(width, width, 1), nn.BatchNorm2d(width)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        y = (y * gate).flatten(2).reshape(y.shape)
        return F.relu(self.down_bn(self.down(x)) + y)


def test_residual_branch_ends_through_a_gate_and_a_reshape():
    graph = build(SEBranch(), (torch.randn(4, 8, 6, 6),))
    (branch,) = residual_branches(graph)
    assert branch.end.module == "bn2" and branch.skip.module == "down_bn"
    assert {"conv1", "fc1", "fc2"} <= {graph.layer(n).module for n in branch.members}
    assert "down" not in {graph.layer(n).module for n in branch.members}


def test_a_branch_with_two_paths_to_the_add_has_no_end():
    class TwoPaths(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.bn_a = nn.Linear(8, 8), nn.BatchNorm1d(8)
            self.b, self.bn_b = nn.Linear(8, 8), nn.BatchNorm1d(8)

        def forward(self, x):
            return x + (self.bn_a(self.a(x)) + self.bn_b(self.b(x)))

    branches = residual_branches(build(TwoPaths(), (torch.randn(4, 8),)))
    assert [b.end for b in branches] == [None]
