"""LALC-style clipping (our reading of arXiv:2304.11692) and the LARS baseline."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from bnlint.optim import LALC, LARS


@pytest.fixture(autouse=True)
def one_thread():
    # These nets are tiny; extra intra-op threads only spin when the cores are busy.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def bn_mlp(depth, width=32, din=16, dout=4):
    layers, d = [], din
    for _ in range(depth):
        layers += [nn.Linear(d, width, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, dout))


def data(n=64, din=16, dout=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, din, generator=g), torch.randn(n, dout, generator=g)


def mse_step(model, opt, x, y):
    loss = nn.functional.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def test_relative_update_never_exceeds_bound_even_at_huge_lr():
    torch.manual_seed(0)
    model, (x, y) = bn_mlp(6), data()
    bound = 0.01
    opt = LALC(model.parameters(), lr=1e4, momentum=0.9, weight_decay=1e-4, bound=bound)
    for _ in range(5):
        before = [p.detach().clone() for p in model.parameters()]
        mse_step(model, opt, x, y)
        for p, b in zip(model.parameters(), before):
            if b.norm() > 0:
                assert (p.detach() - b).norm() <= bound * b.norm() * (1 + 1e-5)
        assert opt.last_clip_fraction > 0.5
    assert 0 < opt.clipped_total <= opt.layer_steps_total == 5 * len(before)


def test_zero_norm_tensor_takes_the_plain_sgd_step():
    w = nn.Parameter(torch.zeros(3))
    opt = LALC([w], lr=10.0, momentum=0.0, bound=0.01)
    w.grad = torch.tensor([1.0, -2.0, 0.5])
    opt.step()
    assert torch.equal(w.detach(), torch.tensor([-10.0, 20.0, -5.0]))
    assert opt.last_clip_fraction == 0.0


def test_tiny_lr_matches_sgd_with_momentum():
    # No zero-initialised tensors here: those are clipped once they have left zero.
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4))
    x, y = data()
    b = copy.deepcopy(a)
    lalc = LALC(a.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-3)
    sgd = torch.optim.SGD(b.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-3)
    for _ in range(8):
        mse_step(a, lalc, x, y)
        mse_step(b, sgd, x, y)
    assert lalc.clipped_total == 0
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_bound_none_disables_clipping():
    torch.manual_seed(0)
    a, (x, y) = bn_mlp(3), data()
    b = copy.deepcopy(a)
    lalc = LALC(a.parameters(), lr=5.0, bound=None)
    sgd = torch.optim.SGD(b.parameters(), lr=5.0, momentum=0.9)
    for _ in range(3):
        mse_step(a, lalc, x, y)
        mse_step(b, sgd, x, y)
    assert lalc.clipped_total == 0
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_never_steps_further_than_sgd_from_the_same_state():
    """Asymmetry: from identical weights and momentum, each tensor's LALC step is SGD's step
    scaled by a factor in (0, 1]. The lr is chosen so that some tensors are clipped (strictly
    shortened) and others are not: those must not be scaled up, as LARS would."""
    torch.manual_seed(0)
    model, (x, y) = bn_mlp(6), data()
    lr = 0.3
    opt = LALC(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4, bound=0.01)
    shortened = unchanged = 0
    for _ in range(6):
        twin = copy.deepcopy(model)
        sgd = torch.optim.SGD(twin.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
        for p, q in zip(model.parameters(), twin.parameters()):
            if p in opt.state:
                sgd.state[q]["momentum_buffer"] = opt.state[p]["momentum_buffer"].clone()
        before = [p.detach().clone() for p in model.parameters()]
        mse_step(model, opt, x, y)
        mse_step(twin, sgd, x, y)
        for p, q, b in zip(model.parameters(), twin.parameters(), before):
            ours, theirs = (p - b).detach().flatten(), (q - b).detach().flatten()
            assert ours.norm() <= theirs.norm() * (1 + 1e-5)
            if ours.norm() > 0:
                assert torch.dot(ours, theirs) / (ours.norm() * theirs.norm()) > 1 - 1e-4
            shortened += bool(ours.norm() < 0.99 * theirs.norm())
            unchanged += torch.allclose(ours, theirs)
    assert shortened > 0 and unchanged > 0


def test_deep_bn_relu_mlp_at_large_lr_sgd_stalls_lalc_trains():
    """Acceptance: plain SGD+momentum at lr 1 without warm-up stalls or diverges on a deep
    BN-ReLU MLP (the early gradient explosion of arXiv:2304.11692 blows the first layers'
    weights up), while LALC at the same lr trains."""
    depth, width, din, classes, n, batch, steps, lr = 20, 64, 32, 10, 1024, 64, 250, 1.0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, din, generator=g)
    y = (x @ torch.randn(din, classes, generator=g)).argmax(1)

    def train(make_opt):
        torch.manual_seed(0)
        model = bn_mlp(depth, width, din, classes)
        opt = make_opt(model.parameters())
        with torch.no_grad():
            initial = nn.functional.cross_entropy(model(x), y).item()
        batches = torch.Generator().manual_seed(1)
        for _ in range(steps):
            idx = torch.randint(0, n, (batch,), generator=batches)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return initial, nn.functional.cross_entropy(model(x), y).item()

    initial, sgd = train(lambda ps: torch.optim.SGD(ps, lr=lr, momentum=0.9))
    _, lalc = train(lambda ps: LALC(ps, lr=lr, momentum=0.9))
    assert math.isfinite(lalc) and lalc < 0.8 * initial
    assert not math.isfinite(sgd) or lalc < sgd - 0.3


def test_lars_relative_step_is_lr_times_eta():
    torch.manual_seed(0)
    model, (x, y) = bn_mlp(2), data()
    opt = LARS(model.parameters(), lr=2.0, momentum=0.0, eta=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    mse_step(model, opt, x, y)
    for p, b in zip(model.parameters(), before):
        if b.norm() > 0 and p.grad.norm() > 0:
            assert math.isclose((p.detach() - b).norm() / b.norm(), 2.0 * 0.01, rel_tol=1e-4)


# ---------------------------------------------------------------- every optimizer's lr bound

def test_the_config_table_matches_the_optimizers_signatures():
    """config.OPTIMIZER_ARGS (read by the torch-free CLI) lists each optimizer's arguments."""
    import inspect

    import bnlint.optim
    from bnlint.config import OPTIMIZER_ARGS
    switches = {"params", "lr", "foreach", "fused", "capturable", "differentiable"}
    for name, (class_name, args) in OPTIMIZER_ARGS.items():
        made_by = getattr(bnlint.optim, class_name, None) or getattr(torch.optim, class_name)
        assert set(args) == set(inspect.signature(made_by).parameters) - switches, name


def _quadratic_end(name: str, lr: float, kwargs: dict, lam: float, steps: int) -> float:
    """|theta| after ``steps`` steps of torch's optimizer on lam/2 theta^2 from theta = 1."""
    theta = nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = getattr(torch.optim, name)([theta], lr=lr, **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * lam * theta ** 2).sum().backward()
        opt.step()
    return abs(theta.item())


# A huge eps holds each adaptive preconditioner fixed (P = eps; a diverging run stops where its
# squared gradient overflows float64 and P becomes inf), so the quadratic's iteration is
# exactly the linear one bnlint/probing/stability.py derives its factors from.
@pytest.mark.parametrize("name, kwargs", [
    ("SGD", {}), ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("SGD", {"momentum": 0.5, "dampening": 0.5}),
    ("Adam", {"eps": 1e200}), ("AdamW", {"eps": 1e200, "weight_decay": 0.0}),
    ("Adamax", {"eps": 1e200}), ("NAdam", {"eps": 1e200, "momentum_decay": 0.0}),
    ("RMSprop", {"eps": 1e200}), ("RMSprop", {"eps": 1e200, "momentum": 0.5}),
    ("Adagrad", {"eps": 1e200}), ("Adadelta", {"eps": 1e200})])
def test_each_bound_is_where_torchs_optimizer_starts_to_diverge(name, kwargs):
    from bnlint.probing import stability
    lam = 3.0
    if name == "SGD":
        bound = stability.plain("sgd", kwargs.get("momentum", 0.0), kwargs).factor / lam
    else:  # the bound the probe reads off the optimizer's state after a step
        theta = nn.Parameter(torch.ones(1, dtype=torch.float64))
        opt = getattr(torch.optim, name)([theta], lr=1.0, **kwargs)
        (0.5 * lam * theta ** 2).sum().backward()
        opt.step()
        found = stability.adaptive(name.lower(), opt, [theta])
        bound = found.factor / (lam * float(found.scales[0]) ** 2)
    assert _quadratic_end(name, 0.9 * bound, kwargs, lam, 3000) < 1e-3
    assert not _quadratic_end(name, 1.1 * bound, kwargs, lam, 3000) < 1e3  # or overflowed


def test_nesterov_momentum_halves_the_heavy_ball_bound_and_more():
    """At m = 0.9 Nesterov's limit is 2(1.9)/2.8 = 1.36/lambda, not heavy ball's 3.8/lambda."""
    from bnlint.probing import stability
    assert stability.heavy_ball(0.9, nesterov=True) == pytest.approx(3.8 / 2.8)
    assert stability.moving_average(0.9) == pytest.approx(38.0)
