"""The probe: measured gradient ratios, dead ReLUs, NaN localisation, the lr ceiling against
the full Hessian, determinism, and its place in the CLI report (its plan and budget:
tests/test_probe_plan.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import run_cli
from models import NormFree, PreActResidual, bn_mlp
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from bnlint.api import probe
from bnlint.config import PROBE_HVPS, Optimizer
from bnlint.discover.loss import Loss
from bnlint.probing import hessian
from bnlint.probing import run as probe_mod


def test_plain_bn_relu_mlp_explodes_at_the_documented_rate():
    torch.manual_seed(0)
    result = probe(bn_mlp(30, 256), torch.randn(64, 256), steps=2)
    expected = 1.211 ** 30  # docs/SCIENCE.md §1: sqrt(pi/(pi-1)) per block
    print(f"measured {result.grad_ratio:.1f} vs 1.211^30 = {expected:.1f}")
    assert expected / 2 < result.grad_ratio < expected * 2
    assert result.first_module == "0" and result.last_module == "87"


def test_plain_bn_relu_mlp_gets_a_measured_finding():
    from bnlint import lint
    from bnlint.config import Config
    torch.manual_seed(0)
    report = lint(bn_mlp(30, 64), torch.randn(64, 64), config=Config(probe_steps=2))
    # Its first layer is BatchNorm-fed, so BNL901 judges the ratio after the probe's steps,
    # where it has fallen below 70 (about 300 -> 40 at the probe's lr 0.01)
    assert report.probe.grad_ratio > 70 and report.probe.history[-1].grad_ratio < 70
    assert "BNL901" not in {f.code for f in report.findings}
    # the static prediction of the explosion carries the measurement and says so
    static = next(f for f in report.findings if f.code == "BNL201")
    measured = static.evidence.measured["grad_ratio"]
    assert static.evidence.verdict.confirmed and measured > 70
    facts = static.evidence.facts
    assert f"ratio over {facts['first_module']}..{facts['last_module']} at initialisation: " \
           f"{static.evidence.predicted['grad_ratio']:.3g}x predicted, {measured:.3g}x " \
           "measured on cpu" in static.text()


def test_zero_init_residual_passes_gradients_unchanged():
    torch.manual_seed(0)
    result = probe(PreActResidual(10, zero_init=True), torch.randn(64, 64), steps=1)
    print(f"act-gradient ratio {result.act_grad_ratio}")
    assert result.act_grad_ratio == pytest.approx(1.0, rel=1e-4)
    plain = probe(bn_mlp(10, 64), torch.randn(64, 64), steps=1)
    assert plain.act_grad_ratio > 3  # the same depth without skips amplifies


def _regression(std: float):
    torch.manual_seed(0)
    x = torch.linspace(-math.pi, math.pi, 256).unsqueeze(1)
    y = std * torch.sin(2 * x)
    model = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 1))
    result = probe(model, x, y, steps=20, optimizer=Optimizer("sgd", 0.05, 0.9))
    relative = result.history[-1].loss / float(y.var())
    return result.history[-1].dead_fraction, relative


def test_tiny_targets_with_momentum_die_more_or_fit_worse():
    dead_small, rel_small = _regression(1e-3)
    dead_unit, rel_unit = _regression(1.0)
    print(f"std 1e-3: dead {dead_small:.2f}, relative loss {rel_small:.3g}; "
          f"std 1: dead {dead_unit:.2f}, relative loss {rel_unit:.3g}")
    assert dead_small > dead_unit or rel_small > rel_unit


def test_nan_weights_name_the_first_offending_module():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                          nn.Linear(8, 2))
    with torch.no_grad():
        model[2].weight[1, 3] = float("nan")
    result = probe(model, torch.randn(16, 8), steps=3)
    assert result.nan and result.first_nonfinite.module == "2"
    assert result.first_nonfinite.step == 0


def _full_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The Hessian of the cross-entropy over every parameter of ``model``, flattened in
    ``model.parameters()`` order."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def loss(theta):
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = theta[i:i + shape.numel()].reshape(shape)
            i += shape.numel()
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return torch.autograd.functional.hessian(loss, flat)


def _small_classifier() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 12), nn.BatchNorm1d(12),
                         nn.ReLU(), nn.Linear(12, 3))


def test_lr_ceiling_matches_the_full_hessian():
    torch.manual_seed(0)
    model = _small_classifier()
    x, y = torch.randn(48, 6), torch.randint(0, 3, (48,))
    result = probe(model, x, y, steps=0)
    top = torch.linalg.eigvalsh(_full_hessian(model, x, y))[-1].item()
    print(f"probe lambda_max {result.lr_ceiling.lambda_max:.4f}, full Hessian {top:.4f}")
    assert result.lr_ceiling.lambda_max == pytest.approx(top, rel=0.10)
    # the probe's default SGD has heavy-ball momentum 0.9
    assert result.lr_ceiling.bound == pytest.approx(2 * 1.9 / top, rel=0.10)


class _Attention(nn.Module):
    """One head of F.scaled_dot_product_attention, whose fused CPU kernel has no double
    backward, then a classifier."""

    def __init__(self):
        super().__init__()
        self.qkv, self.head = nn.Linear(6, 18), nn.Linear(6, 3)

    def forward(self, x):
        q, k, v = self.qkv(x).unsqueeze(1).chunk(3, dim=-1)
        return self.head(F.scaled_dot_product_attention(q, k, v).squeeze(1).mean(1))


def test_lr_ceiling_through_fused_attention_matches_the_full_hessian():
    torch.manual_seed(0)
    model = _Attention()
    x, y = torch.randn(48, 5, 6), torch.randint(0, 3, (48,))
    result = probe(model, x, y, steps=0)
    assert result.lr_ceiling is not None, result.notes
    with sdpa_kernel(SDPBackend.MATH):  # the reference needs double backward too
        top = torch.linalg.eigvalsh(_full_hessian(model, x, y))[-1].item()
    assert result.lr_ceiling.lambda_max == pytest.approx(top, rel=0.10)


def test_preconditioned_sharpness_matches_the_full_hessian():
    """top_eigenvalue with scale s is the top eigenvalue of S H S, i.e. of P^-1 H for
    P = diag(s)^-2 (Adam's preconditioner in the probe)."""
    torch.manual_seed(0)
    model = _small_classifier()
    x, y = torch.randn(48, 6), torch.randint(0, 3, (48,))
    scales = [torch.rand(p.shape) + 0.1 for p in model.parameters()]
    scales[-1] = torch.zeros_like(scales[-1])  # a coordinate the preconditioner leaves out
    s = torch.cat([t.reshape(-1) for t in scales])
    expected = torch.linalg.eigvalsh(s[:, None] * _full_hessian(model, x, y) * s[None])[-1]
    found = hessian.top_eigenvalue(lambda: F.cross_entropy(model(x), y),
                                   list(model.parameters()), iterations=60, scale=scales)
    print(f"preconditioned: Lanczos {found.value:.4f}, full {expected.item():.4f}")
    assert found.converged and found.value == pytest.approx(expected.item(), rel=0.05)


@pytest.mark.parametrize("name, args", [("adam", {}), ("rmsprop", {"alpha": 0.9}),
                                        ("nadam", {"betas": [0.8, 0.99]})])
def test_adaptive_optimizers_get_a_preconditioned_bound_after_the_steps(name, args):
    torch.manual_seed(0)
    result = probe(_small_classifier(), torch.randn(48, 6), torch.randint(0, 3, (48,)),
                   steps=4, optimizer=Optimizer(name, 1e-3, 0.0, args))
    ceiling = result.lr_ceiling
    assert ceiling.preconditioned and ceiling.step == 4 and ceiling.lambda_max > 0
    assert result.optimizer["args"] == args and "lambda_P" in ceiling.eigenvalue


def test_probe_does_not_touch_the_users_model():
    model = bn_mlp(3, 16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe(model, torch.randn(32, 16), steps=5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_cli_reports_the_probe(write_model):
    path = write_model("""
        import torch.nn as nn

        def deep():  # no norm reads the first layer: BNL901 judges it at initialisation
            return nn.Sequential(nn.Linear(32, 32), nn.ReLU(),
                                 *[m for _ in range(30)
                                   for m in (nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU())])
    """)
    proc = run_cli(path, "--format", "json", "--probe-steps", "2", "--select", "BNL9")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    probe_json = report["models"][0]["probe"]
    assert {"device", "steps", "grad_ratio", "layers", "dead_fraction", "nan",
            "seconds"} <= set(probe_json)
    assert probe_json["device"] == "cpu" and probe_json["steps"] == 2
    assert probe_json["plan"]["steps"] == 2 and probe_json["plan"]["batch"] == 64
    assert probe_json["plan"]["flops"] > 0 and probe_json["cut"] is None
    assert probe_json["plan"]["hvps"] == PROBE_HVPS
    # BNL905 at the probe's default lr, which the user may not train with: info at most.
    assert [(f["code"], f["severity"]) for f in report["models"][0]["findings"]] == [
        ("BNL901", "warning"), ("BNL905", "info")]
    text = run_cli(path, "--probe-steps", "2", "--select", "BNL9").stdout
    assert "::deep  probe (batch 64, 2 steps, " in text
    assert "gradient ratio first/last layer (0/89) " in text
    at_init = run_cli(path, "--probe-steps", "0", "--select", "BNL9").stdout
    assert "::deep  probe (batch 64, no training step, " in at_init
    assert "after 0" not in at_init and " -> " not in at_init.split("::deep")[1]
    assert run_cli(path, "--no-probe", "--format", "json").stdout.count('"probe": null') == 1


def test_unavailable_device_is_a_usage_error(write_model):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = write_model("import torch.nn as nn\nmodel = nn.Linear(4, 2)\n")
    proc = run_cli(path, "--device", "cuda")
    assert proc.returncode == 2 and "no CUDA device is available" in proc.stderr


def test_exploding_model_gets_runnable_lr_suggestions():
    from bnlint import lint
    from bnlint.config import Config, Optimizer
    torch.manual_seed(0)
    model = bn_mlp(30, 32)
    report = lint(model, torch.randn(64, 32),
                  config=Config(probe_steps=5, optimizer=Optimizer("sgd", 0.1, 0.9)))
    advice = report.suggestions
    assert {"lr_ceiling", "optimizer"} <= set(advice)
    assert advice["lr_ceiling"]["value"] == pytest.approx(
        2 * 1.9 / report.probe.lr_ceiling.lambda_max)
    scope = {"model": model, "torch": torch}
    exec(advice["optimizer"]["snippet"], scope)  # ready to paste: it runs
    assert type(scope["optimizer"]).__name__ == "LALC" and scope["optimizer"].defaults["lr"] == 0.1


def test_plot_draws_a_png_of_the_probe(write_model, tmp_path):
    path = write_model("""
        import torch.nn as nn
        model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    """)
    out = tmp_path / "probe.png"
    proc = run_cli(path, "--probe-steps", "2", "--plot", out)
    assert proc.returncode in (0, 1), proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch):
    import sys

    from bnlint.errors import InputError
    from bnlint.output import plots
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.raises(InputError) as info:
        plots.check_available("out.png")
    assert "pip install 'bnlint[plot]'" in info.value.render()
    with pytest.raises(InputError, match=r"png or \.svg"):
        plots.check_available("out.pdf")


@pytest.mark.parametrize("spectrum", [(5.0, 1.0, -0.5), (3.0, 1.0, -10.0), (0.9, 0.8, 0.1)])
def test_top_eigenvalue_is_the_largest_not_the_largest_magnitude(spectrum):
    from bnlint.probing.hessian import top_eigenvalue
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(40, 40, dtype=torch.float64))
    values = torch.tensor([*spectrum, *([0.01] * 37)], dtype=torch.float64)
    a = q @ torch.diag(values) @ q.T
    x = torch.zeros(40, dtype=torch.float64, requires_grad=True)
    eig = top_eigenvalue(lambda: 0.5 * x @ a @ x + x.sum(), [x], iterations=500, tol=1e-4,
                         generator=torch.Generator().manual_seed(1))
    assert eig.converged and eig.value == pytest.approx(max(spectrum), rel=1e-3)


def test_out_of_memory_halves_the_batch_and_says_so(monkeypatch):
    real = probe_mod._measure

    def tight(graph, inputs, targets, opts, device, plan, notes):
        if plan.batch > 16:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(graph, inputs, targets, opts, device, plan, notes)

    monkeypatch.setattr(probe_mod, "_measure", tight)
    result = probe(bn_mlp(3, 16), torch.randn(64, 16), steps=1, synthetic_inputs=True)
    assert result.batch == 16
    assert list(result.notes[:2]) == ["out of memory on cpu: batch reduced to 32",
                                      "out of memory on cpu: batch reduced to 16"]


def test_explosion_threshold_comes_from_bnl901_with_the_config_override():
    """The probe's explosion verdict and BNL901 use one threshold: the rule's, as configured."""
    from bnlint import lint
    from bnlint.config import Config
    torch.manual_seed(0)
    model, x = bn_mlp(10, 64), torch.randn(64, 64)
    default = lint(model, x, config=Config(probe_steps=2))
    assert default.explosion == "none" and default.probe.grad_ratio < 70
    low = default.probe.grad_ratio / 2
    config = Config(probe_steps=2, thresholds={"BNL901": {"ratio_warning": low}})
    report = lint(model, x, config=config)
    assert report.explosion != "none"
    assert "BNL901" in {f.code for f in report.findings}


def test_a_batchnorm_fed_weight_gets_a_gradient_orthogonal_to_it_that_scales_as_its_inverse():
    """The premise of BNL901's rule for norm-fed first layers (arXiv:1706.05350): scaling the
    weight of a conv -> BatchNorm layer by c leaves the loss as it was and divides the
    weight's gradient by c, and that gradient is orthogonal to the weight."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                        nn.LazyLinear(2))
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 2, (16,))
    net(x)

    def loss_and_grad(scale: float) -> tuple[float, torch.Tensor, torch.Tensor]:
        w = (net[0].weight.detach() * scale).requires_grad_()
        params = {**dict(net.named_parameters()), "0.weight": w}
        loss = F.cross_entropy(functional_call(net, params, (x,)), y)
        return loss.item(), torch.autograd.grad(loss, w)[0], w.detach()

    loss1, g1, w1 = loss_and_grad(1.0)
    loss10, g10, _ = loss_and_grad(10.0)
    assert loss10 == pytest.approx(loss1, rel=1e-5)
    assert g10.norm().item() == pytest.approx(g1.norm().item() / 10, rel=1e-3)
    assert abs((g1 * w1).sum().item()) < 1e-4 * g1.norm().item() * w1.norm().item()


@pytest.mark.parametrize("first,normalised", [
    (lambda: [nn.Linear(16, 16), nn.BatchNorm1d(16)], True),  # BatchNorm removes the bias
    (lambda: [nn.Linear(16, 16, bias=False), nn.LayerNorm(16)], True),
    (lambda: [nn.Linear(16, 16), nn.LayerNorm(16)], False),  # the bias mixes into the mean
    (lambda: [nn.Linear(16, 16), nn.ReLU(), nn.BatchNorm1d(16)], False),
], ids=["linear-batchnorm", "bias-free-linear-layernorm", "linear-layernorm",
        "linear-relu-batchnorm"])
def test_bnl901_judges_a_norm_fed_first_layer_after_the_steps_only(first, normalised):
    """At initialisation BNL901 (its threshold lowered so that every model here is above it)
    reports the ratio unless the first layer's output goes only to a norm that makes the loss
    independent of its weight's scale; then, with no training step measured, a note says it
    was not judged, and after steps the last step's ratio decides."""
    from bnlint import lint
    from bnlint.config import Config
    torch.manual_seed(0)
    model = nn.Sequential(*first(), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(64, 16)
    at_init = lint(model, x, config=Config(probe_steps=0,
                                           thresholds={"BNL901": {"ratio_warning": 1e-6}}))
    fired = [f for f in at_init.findings if f.code == "BNL901"]
    notes = [n for n in at_init.notes if n.startswith("BNL901 not judged")]
    assert (not fired, bool(notes)) == (normalised, normalised), (fired, notes)
    if fired:
        assert fired[0].evidence.measured["grad_ratio"] == at_init.probe.grad_ratio
    if normalised:
        assert "0's output is normalised by 1 (" in notes[0]
        stepped = lint(model, x, config=Config(probe_steps=2,
                                               thresholds={"BNL901": {"ratio_warning": 1e-6}}))
        found = next(f for f in stepped.findings if f.code == "BNL901")
        assert found.evidence.measured["peak_step"] > 0
        assert "after 2 training steps" in found.message or "at training step" in found.message


def test_the_probe_trains_with_the_models_own_loss_and_reduction():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x = torch.randn(16, 3)
    y = torch.randn(16, 1)
    mean = probe(model, x, y, steps=0)
    summed = probe(model, x, y, steps=0, loss=Loss("mse", True, "test", "sum", 0.5))
    assert mean.loss == "mean-squared error on the given targets"
    assert summed.loss == ("the model's loss (mean squared error, summed over the batch times "
                           "0.5) on the given targets")
    # the summed loss over 16 samples, halved: 8x the mean's curvature
    assert summed.lr_ceiling.lambda_max == pytest.approx(8 * mean.lr_ceiling.lambda_max,
                                                         rel=1e-3)
    # one-hot targets with the model's cross-entropy: trained as class probabilities, not MSE
    logits = nn.Linear(3, 2)
    onehot = F.one_hot(torch.randint(0, 2, (16,)), 2).float()
    ce = probe(logits, x, onehot, steps=0, loss=Loss("ce", True, "test"))
    assert ce.loss == "the model's loss (cross-entropy on logits (CrossEntropyLoss)) on the " \
                      "given targets"
    assert probe(logits, x, onehot, steps=0).loss == "mean-squared error on the given targets"


class _TinyLM(nn.Module):
    """Token embeddings, a mixing layer and a Linear head over a vocabulary of 11: logits of
    shape (batch, sequence, 11)."""

    def __init__(self):
        super().__init__()
        self.embed, self.mix, self.head = nn.Embedding(11, 8), nn.Linear(8, 8), nn.Linear(8, 11)

    def forward(self, idx):
        return self.head(torch.relu(self.mix(self.embed(idx))))


def test_a_sequence_model_with_its_own_cross_entropy_gets_class_labels_over_its_vocabulary():
    """nanoGPT's logits (B, T, vocab) with F.cross_entropy in its file: the probe trains the
    cross-entropy over the head's units, not a mean-squared error on made-up values."""
    torch.manual_seed(0)
    idx = torch.randint(0, 11, (16, 5))
    ce = probe(_TinyLM(), idx, steps=1, loss=Loss("ce", True, "F.cross_entropy() at lm.py:9"))
    assert ce.loss == ("synthetic targets: random class labels over the output's dimension 2 "
                       "(11 classes), cross-entropy on logits (CrossEntropyLoss), inferred "
                       "from F.cross_entropy() at lm.py:9")
    assert ce.history[0].loss == pytest.approx(math.log(11), rel=0.2)  # chance: ln(classes)
    # no loss in the file: the output is not known to be classes
    assert probe(_TinyLM(), idx, steps=1).loss.endswith("mean-squared error")
    # a conv head writes its classes to dimension 1 (segmentation)
    seg = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 1))
    assert "dimension 1 (5 classes)" in probe(seg, torch.randn(8, 3, 6, 6), steps=1,
                                               loss=Loss("ce", True, "test")).loss


def test_the_probe_takes_bce_only_for_a_model_that_outputs_probabilities():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16, 1)).float()
    bce = Loss("bce", True, "test")
    sigmoid = probe(nn.Sequential(nn.Linear(3, 1), nn.Sigmoid()), x, y, steps=1, loss=bce)
    assert sigmoid.loss.startswith("the model's loss (binary cross-entropy on probabilities")
    # raw scores: the file must apply something before its BCELoss, which the probe cannot see
    raw = probe(nn.Linear(3, 1), x, y, steps=1, loss=bce)
    assert raw.loss == "mean-squared error on the given targets"


def test_zero_initialised_head_measured_at_initialisation_only_is_not_vanishing():
    """torchvision's ViT zero-initialises heads.head: at step 0 every earlier gradient is
    exactly 0 (W^T g = 0). A probe that ran no training step (probe_steps 0, or a budget cut
    before the first) cannot tell that from vanishing: BNL902 is not judged, and a note says
    why; the same layers with a non-zero head get no note."""
    from bnlint import lint
    from bnlint.config import Config

    def model(zero_head: bool) -> nn.Module:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(),
                            nn.Linear(32, 4))
        if zero_head:
            nn.init.zeros_(net[4].weight)
            nn.init.zeros_(net[4].bias)
        return net

    x = torch.randn(32, 16)
    zero = lint(model(True), x, config=Config(probe_steps=0))
    assert "BNL902" not in {f.code for f in zero.findings}
    assert any(n.startswith("BNL902 not judged: the output layer 4 is initialised to zero")
               for n in zero.notes), zero.notes
    plain = lint(model(False), x, config=Config(probe_steps=0))
    assert not any(n.startswith("BNL902") for n in plain.notes)


def test_weight_standardised_convs_are_the_probes_affine_layers():
    """An NF-Net's convs standardise their weight in their own forward and call F.conv2d
    (timm's ScaledStdConv2d): they are the model's affine layers, so the first one is the
    stem, not the first plain nn.Conv2d (an SE gate's fc1, which gets almost no gradient
    behind the branch's zero-gain last conv). BNL902 then has nothing to report."""
    from bnlint import lint
    from bnlint.config import Config
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    result = probe(NormFree(), x, steps=2)
    assert result.first_module == "stem:conv2d" and result.last_module == "head"
    stem = next(x for x in result.layers if x.key == "stem:conv2d")
    assert stem.init["weight_grad"] > 0
    report = lint(NormFree(), x, config=Config(probe_steps=2))
    assert "BNL902" not in {f.code for f in report.findings}


def test_relus_fed_by_a_zero_initialised_branch_end_are_not_dead_at_initialisation():
    """NFNet's SE gate after the branch's zero-gain conv sees exactly 0 at initialisation: its
    ReLU outputs 0 for every sample, yet the conv trains (through the gate's product and the
    add) and the input moves after a step. BNL903 does not judge those units at
    initialisation and says so in a note."""
    from bnlint import lint
    from bnlint.config import Config
    torch.manual_seed(0)
    report = lint(NormFree(gate_last=True), torch.randn(8, 3, 32, 32),
                  config=Config(probe_steps=0))
    dead = {x.key: x.init["dead"] for x in report.probe.layers if "dead" in x.init}
    assert dead["blocks.0.attn.act"] == 1.0  # measured dead at initialisation
    assert "BNL903" not in {f.code for f in report.findings}
    assert any(n.startswith("BNL903 not judged at initialisation on 2 ReLU layer(s), "
                            "blocks.0.attn.act (fed by "
                            "blocks.0.conv2:conv2d)") for n in report.notes), report.notes


class _Gate(nn.Module):
    """A squeeze-excitation gate whose ReLU layer has ``width`` units fed one pooled,
    non-negative vector per example."""

    def __init__(self, width: int, bias: float):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)
        self.squeeze = nn.Conv2d(32, width, 1)
        nn.init.constant_(self.squeeze.bias, bias)
        self.act = nn.ReLU()
        self.excite = nn.Conv2d(width, 32, 1)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        gate = torch.sigmoid(self.excite(self.act(self.squeeze(x.mean((2, 3), keepdim=True)))))
        return self.head((x * gate).mean((2, 3)))


def test_a_narrow_layer_is_judged_against_the_dead_count_chance_gives_it():
    """The probe records each layer's units; BNL903 leaves a layer of 8 units 6 dead (chance
    P(X >= 6), X ~ Binomial(8, 1/2), 37/256) unjudged with a note, and still flags a wide
    layer a negative bias kills."""
    from bnlint import lint
    from bnlint.config import Config
    from bnlint.rules.measured import chance_of_dead
    assert chance_of_dead(6, 8) == 37 / 256 and chance_of_dead(0, 8) == 1.0
    torch.manual_seed(21)
    narrow = lint(_Gate(8, 0.0), torch.randn(4, 3, 16, 16), config=Config(probe_steps=1))
    act = narrow.probe.layer("act")
    assert (act.units, act.init["dead"]) == (8, 0.75)  # measured at this seed
    assert "BNL903" not in {f.code for f in narrow.findings}
    assert any(n.startswith("BNL903 does not count the dead share of 1 ReLU layer(s) with 70% "
                            "or more of their units dead, act (6 of 8 units, chance 0.14)")
               for n in narrow.notes), narrow.notes
    torch.manual_seed(21)
    wide = lint(_Gate(64, -10.0), torch.randn(4, 3, 16, 16), config=Config(probe_steps=1))
    assert wide.probe.layer("act").units == 64
    assert [(f.code, f.module) for f in wide.findings if f.code == "BNL903"] == [
        ("BNL903", "act")]


def test_weight_norms_of_huge_finite_weights_are_finite():
    """A weight of 1e25 is finite but its square overflows float32: the probe's weight norms
    (which BNL908 weighs against the gradient) are summed in float64, so no Inf appears in
    the measurements that no finding would report."""
    from bnlint import lint
    from bnlint.config import Config
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        model[0].weight.fill_(1e-25)
        model[2].weight.fill_(1e25)
    report = lint(model, torch.randn(8, 4), config=Config(probe_steps=0))
    norms = {x.key: x.init["weight_norm"] for x in report.probe.layers
             if "weight_norm" in x.init}
    assert norms["2"] == pytest.approx(1e25 * math.sqrt(8), rel=1e-6)
