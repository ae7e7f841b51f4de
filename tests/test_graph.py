"""ModelGraph: fx and hooks graphs, merges, shapes, stable keys and source sites."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import line_of

import bnlint
from bnlint.config import Config
from bnlint.discover.load import load_module
from bnlint.discover.models import find_models
from bnlint.model.build import build
from bnlint.predict.flow import predict

RESIDUAL = """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
            )

        def forward(self, x):
            return F.relu(self.body(x) + x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block(4)
            self.other = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.block(x)
            return torch.cat([y, self.other(y)], dim=1).flatten(1)
"""


def _graph(path, shape):
    module = load_module(path)
    model = find_models(module, path, []).models[0].model
    return model, build(model, (torch.randn(shape),))


def test_fx_graph_has_merges_shapes_keys_and_sites(write_model):
    path = write_model(RESIDUAL)
    _, g = _graph(path, (2, 4, 5, 5))
    assert g.method == "fx" and g.coverage == 1.0
    add = g.layers("Add")[0]
    cat = g.layers("Cat")[0]
    assert add.tensor_inputs == 2 and cat.tensor_inputs == 2
    assert add.is_("@merge") and cat.shape == (2, 8, 5, 5)
    relu = g.layers("ReLU")[0]
    assert relu.key == "block:relu" and relu.spelling == "F.relu"
    assert relu.site.line == line_of(path, "return F.relu(")
    conv = g.layers("Conv2d")[0]
    assert conv.module == "block.body.0"
    assert conv.site.line == line_of(path, "nn.Conv2d(c, c, 3")
    assert conv.call_site.line == line_of(path, "return F.relu(")
    # next/prev look through transparent ops; the head is the flatten's input
    assert [x.kind for x in g.next(g.layers("BatchNorm2d")[0])] == ["Add"]
    assert [x.kind for x in g.heads()] == ["Cat"]


def test_hooks_fallback_reports_coverage_of_the_branch_taken(write_model):
    path = write_model("""
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.small = nn.Linear(4, 4)
                self.big = nn.Linear(4, 12)

            def forward(self, x):
                if x.sum() > 1e9:
                    return self.big(x)
                return self.small(x).relu()
    """)
    _, g = _graph(path, (3, 4))
    assert g.method == "hooks" and "control flow" in g.reason
    assert g.reason_site.line == line_of(path, "if x.sum()")
    assert abs(g.coverage - 20 / (20 + 60)) < 1e-9
    assert [x.kind for x in g.heads()] == ["ReLU"]
    relu = g.heads()[0]
    assert relu.spelling == ".relu()" and relu.site.line == line_of(path, ".relu()")
    assert [x.module for x in g.prev(relu)] == ["small"]


def test_lint_leaves_the_model_as_it_found_it():
    from bnlint import lint

    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU()).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lint(model, torch.randn(8, 4) * 5 + 3)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_shared_module_is_one_node_per_call():
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    g = build(model, (torch.randn(2, 4),))
    calls = [x for x in g.order if x.obj is shared]
    assert len(calls) == 2 and {x.module for x in calls} == {"0"}


class FunctionalBatchNorm(nn.Module):
    """F.batch_norm with or without running statistics and affine tensors."""

    def __init__(self, stats: bool, affine: bool):
        super().__init__()
        self.fc = nn.Linear(8, 8, bias=False)
        self.rm = torch.zeros(8) if stats else None
        self.rv = torch.ones(8) if stats else None
        self.gamma = nn.Parameter(torch.ones(8)) if affine else None
        self.beta = nn.Parameter(torch.zeros(8)) if affine else None

    def forward(self, x):
        return torch.relu(torch.nn.functional.batch_norm(
            self.fc(x), self.rm, self.rv, self.gamma, self.beta, training=True))


def test_functional_batchnorm_reads_its_flags_from_its_tensors():
    """BNL106/BNL107 read track_running_stats/affine: a missing functional option read False."""
    for stats, affine in [(True, True), (False, True), (True, False), (False, False)]:
        graph = build(FunctionalBatchNorm(stats, affine), (torch.randn(16, 8),))
        bn = graph.layers("BatchNorm")[0]
        assert (bn.attr("track_running_stats"), bn.attr("affine")) == (stats, affine)
        assert bn.attr("no_such_option") is None
        report = bnlint.lint(FunctionalBatchNorm(stats, affine), torch.randn(16, 8),
                             config=Config(probe=False, select=["BNL106", "BNL107"]))
        assert {f.code for f in report.findings} == \
            {c for c, bad in [("BNL106", not stats), ("BNL107", not affine)] if bad}


class DeepWithRuntimeCheck(nn.Module):
    """20 Linear-ReLU layers at default init, with a data-dependent check after each."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(64, 64) for _ in range(20)])
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
            if x.abs().max() > 1e4:
                x = x / 2
        return self.head(x)


def test_hooks_graph_drops_what_only_feeds_control_flow():
    """The checks' ops read every layer's output; kept, they forked every chain and hid the
    stack from the chain rules (BNL302 found it only when fx could trace)."""
    torch.manual_seed(0)
    graph = build(DeepWithRuntimeCheck(), (torch.randn(32, 64),))
    assert graph.method == "hooks"
    assert {x.kind for x in graph.layers()} == {"Input", "Linear", "ReLU", "Output"}
    assert len(graph.layers("ReLU")) == 20
    report = bnlint.lint(DeepWithRuntimeCheck(), torch.randn(32, 64),
                         config=Config(probe=False, select=["BNL302"]))
    assert [f.code for f in report.findings] == ["BNL302"]


class BatchNormAct(nn.BatchNorm2d):
    """timm's BatchNormAct2d: a BatchNorm subclass with its own forward (so fx traces into it)
    that calls F.batch_norm with its parameters, then an activation."""

    def forward(self, x):
        return torch.relu(F.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                       self.bias, self.training, self.momentum, self.eps))


def test_functional_batchnorm_is_predicted_with_its_parameters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), BatchNormAct(8))
    nn.init.constant_(model[1].weight, 3.0)
    graph = build(model, (10 * torch.randn(4, 3, 8, 8),))
    (bn,) = graph.layers("BatchNorm")
    assert bn.params == {"weight": "1.weight", "bias": "1.bias", "running_mean": "1.running_mean",
                         "running_var": "1.running_var"}
    pred = predict(graph, 4, (10 * torch.randn(4, 3, 8, 8),))
    assert pred.signal[bn.name] == pytest.approx(3.0, rel=1e-3)  # normalised, times gamma


def test_reshape_as_takes_only_a_shape_from_its_argument():
    class LinearNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.bn = nn.Linear(8, 8), nn.BatchNorm1d(8)

        def forward(self, x):
            y = self.fc(x)
            return self.bn(y.flatten(0, 1)).reshape_as(y)

    graph = build(LinearNorm(), (torch.randn(4, 5, 8),))
    fc, bn = graph.find("fc"), graph.find("bn")
    assert [x.name for x in graph.next(fc)] == [bn.name]  # not also the reshape


def test_a_norm_of_a_parameter_is_weight_standardisation():
    class StdConv(nn.Conv2d):
        def forward(self, x):
            w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None,
                             training=True, eps=1e-6).reshape_as(self.weight)
            return F.conv2d(x, w, self.bias)

    graph = build(StdConv(3, 4, 3), (torch.randn(2, 3, 8, 8),))
    assert not graph.layers("@norm") and len(graph.layers("WeightStandardization")) == 1
