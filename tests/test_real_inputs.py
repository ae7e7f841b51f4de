"""Real model files: their code runs as Python runs it, every parameter is read, inputs are
inferred for the sizes and kinds real models take, and folder runs skip what the user
excludes."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import torch
from conftest import line_of, run_cli


def _json(proc) -> dict:
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_user_code_does_not_inherit_bnlints_future_imports(write_model):
    """bnlint's modules use `from __future__ import annotations`; the user's file must not:
    there a `-> None` annotation is None, as under `python`, not the string 'None'."""
    path = write_model("""
        import torch
        from torch import nn

        def helper() -> None:
            pass

        assert helper.__annotations__["return"] is None, "annotations are strings"

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc = nn.Linear(8, 2)

            def forward(self, x):
                return self.fc(x)
    """)
    proc = run_cli(path, "--no-probe", "--format", "json")
    assert [m["name"] for m in _json(proc)["models"]] == ["Net"]


def test_nan_in_a_parameter_the_model_owns_is_reported(write_model):
    """BNL304 reads every parameter and buffer: the model's own (a learned temperature at
    log(0) = -inf), and a custom module's (a NaN scale), not only those of its layers."""
    path = write_model("""
        import torch
        from torch import nn

        class Scale(nn.Module):
            def __init__(self):
                super().__init__()
                self.gain = nn.Parameter(torch.full((8,), float("nan")))

            def forward(self, x):
                return x * self.gain

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)
                self.scale = Scale()
                self.log_temp = nn.Parameter(torch.tensor(0.0).log())

            def forward(self, x):
                return self.scale(self.fc(x)) * self.log_temp.exp()
    """)
    report = _json(run_cli(path, "--no-probe", "--format", "json"))
    found = {f["module"]: f for f in report["models"][0]["findings"] if f["code"] == "BNL304"}
    assert set(found) == {"log_temp", "scale"}
    assert "the model (Net) holds 1 NaN/Inf values in log_temp" in found["log_temp"]["message"]
    assert "scale (Scale) holds 8 NaN/Inf values in scale.gain" in found["scale"]["message"]
    # located at the forward line that reads each
    assert found["log_temp"]["line"] == line_of(path, "self.log_temp.exp()")
    assert found["scale"]["line"] == line_of(path, "x * self.gain")


MNIST = """
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Net(nn.Module):  # the PyTorch examples' MNIST net
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, 1)
            self.conv2 = nn.Conv2d(8, 16, 3, 1)
            self.fc1 = nn.Linear(16 * 12 * 12, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))
"""


def _inputs(path, *args) -> dict:
    report = _json(run_cli(path, "--format", "json", *args))
    assert not report["errors"], report["errors"]
    return report["models"][0]["inputs"]


def test_image_size_is_solved_from_the_first_linear_after_a_flatten(write_model):
    """An MNIST net takes 28x28 (a size none of 32, 64, 224 is), solved from fc1's inputs:
    the max pool floors, so 29x29 fits too, and MNIST's 28 is preferred."""
    inputs = _inputs(write_model(MNIST), "--no-probe")
    assert inputs["shapes"] == [[16, 1, 28, 28]]
    assert "28x28: the layers flatten it to the 2304 features of fc1 (Linear) (as they do " \
        "29x29 too)" in inputs["how"]


def test_a_usual_size_is_found_in_few_runs_and_another_by_bisection(write_model, monkeypatch):
    """The search tries the usual sizes the features at 32 and 64 px allow before bisecting:
    the MNIST net runs at 64, 32, 28 (fits) and 29 (fits too); sized for 40 px, a size no
    dataset has, the bisections find every size that fits, 40 and 41, and 40 (divisible by
    8) is picked. Each run goes up to the first Linear: ((size - 4) // 2)^2 x 16 features."""
    from bnlint.discover import sizes
    from bnlint.discover.inputs import infer_inputs

    runs: list[int] = []
    seen_at = sizes.seen_at

    def counted(model, shape, on_weights=False, meta=None):
        runs.append(shape[-1])
        return seen_at(model, shape, on_weights, meta)

    monkeypatch.setattr(sizes, "seen_at", counted)
    scope: dict = {}
    exec(textwrap.dedent(MNIST), scope)
    first, _ = infer_inputs(scope["Net"](), "Net", 16, write_model("pass")).first_that_runs(
        lambda inputs: None)
    (x,), how = first.tensors, first.how
    assert x.shape == (16, 1, 28, 28) and runs == [64, 32, 28, 29], (how, runs)
    runs.clear()
    exec(textwrap.dedent(MNIST).replace("16 * 12 * 12", "16 * 18 * 18"), scope)
    first, _ = infer_inputs(scope["Net"](), "Net", 16, write_model("pass")).first_that_runs(
        lambda inputs: None)
    (x,), how = first.tensors, first.how
    assert x.shape == (16, 1, 40, 40), how
    assert "40x40: the layers flatten it to the 5184 features of fc1 (Linear) (as they do " \
        "every size from 40 to 41)" in how
    assert len(runs) == len(set(runs)), runs  # each size runs once


def test_a_head_that_squeezes_the_batch_away_is_still_solved(write_model):
    """The search runs at a batch of 1 to save time; a forward that squeezes every dimension
    of size 1 (the batch too) gives the head no (batch, features) input there, so the run is
    made again at a batch of 2, and the MNIST net's 28x28 is still found."""
    source = MNIST.replace("torch.flatten(x, 1)", "torch.flatten(x, 1).squeeze()")
    inputs = _inputs(write_model(source), "--no-probe")
    assert inputs["shapes"] == [[16, 1, 28, 28]], inputs["how"]
    assert "the layers flatten it to the 2304 features of fc1" in inputs["how"]


def test_a_warm_process_searches_sizes_on_the_meta_device_and_finds_the_same(write_model,
                                                                             monkeypatch):
    """Once a process has used the meta device (warm_meta: the fork server, for a run of
    several files), the size search runs there, with no arithmetic, and finds what the runs on
    the weights find; a forward the meta device cannot run (one that makes a tensor on the
    CPU) runs on the weights instead, with the same answer."""
    from bnlint.discover import sizes
    from bnlint.discover.inputs import infer_inputs

    runs: list[tuple[int, bool, bool]] = []
    seen_at = sizes.seen_at

    def counted(model, shape, on_weights=False, meta=None):
        seen = seen_at(model, shape, on_weights, meta)
        runs.append((shape[-1], on_weights, seen is not None))
        return seen

    def infer(source: str) -> tuple[tuple, str, list]:
        scope: dict = {}
        exec(textwrap.dedent(source), scope)
        torch.manual_seed(0)
        runs.clear()
        first, _ = infer_inputs(scope["Net"](), "Net", 16, write_model("pass")
                                ).first_that_runs(lambda inputs: None)
        return first.tensors[0].shape, first.how, list(runs)

    monkeypatch.setattr(sizes, "seen_at", counted)
    monkeypatch.setattr(sizes, "_warm", False)  # put back after the test
    cpu_tensor = MNIST.replace("torch.flatten(x, 1)",
                               "torch.flatten(x, 1) + torch.zeros(x.shape[0], 1)")
    cold = [infer(MNIST), infer(cpu_tensor)]
    assert all(on_weights for _, _, runs in cold for _, on_weights, _ in runs)
    sizes.warm_meta()
    warm = [infer(MNIST), infer(cpu_tensor)]
    for (shape, how, _), (warm_shape, warm_how, _) in zip(cold, warm, strict=True):
        assert shape == warm_shape == (16, 1, 28, 28) and how == warm_how, (how, warm_how)
    assert warm[0][2] and not any(on_weights for _, on_weights, _ in warm[0][2]), warm[0][2]
    meta_runs = [run for run in warm[1][2] if not run[1]]
    assert meta_runs and not any(ran for _, _, ran in meta_runs), warm[1][2]
    assert [size for size, on_weights, _ in warm[1][2] if on_weights] == \
        [size for size, _, _ in meta_runs] == [size for size, _, _ in cold[1][2]]


def test_the_size_search_does_not_run_a_model_with_a_lazy_layer(monkeypatch):
    """A lazy layer after the first (nn.LazyLinear as the head) has no shape until a run sets
    it, so the search runs the model at no size, on the weights or on the meta device, whose
    copies of the tensors need their shapes; the sizes are then tried in turn."""
    from torch import nn

    from bnlint.discover import sizes

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    for warm in (False, True):
        monkeypatch.setattr(sizes, "_warm", warm)
        probes = sizes.Probes(model, lambda size: (1, 3, size, size))
        assert probes(32) is None and probes(64) is None and probes(224) is None
        assert sizes.solve_flatten(probes) is None


def test_the_search_sees_what_the_models_own_hooks_make(write_model):
    """A pre-hook the model puts on its head (one that flattens the head's input) runs before
    the search looks at that input, as in the model's own forward: the head's 2304 features are
    found at 48x48 (16 maps of 12x12 after a 4x4 max pool)."""
    source = """
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 16, 3, padding=1)
                self.bn = nn.BatchNorm2d(16)
                self.pool = nn.MaxPool2d(4)
                self.fc = nn.Linear(16 * 12 * 12, 10)
                self.fc.register_forward_pre_hook(lambda m, a: (a[0].flatten(1),))

            def forward(self, x):
                return self.fc(self.pool(self.bn(self.conv(x)).relu()))
        """
    inputs = _inputs(write_model(source), "--no-probe")
    assert inputs["shapes"] == [[16, 3, 48, 48]], inputs["how"]
    assert "the layers flatten it to the 2304 features of fc" in inputs["how"]


def test_a_forward_on_meta_twins_follows_a_module_put_in_anothers_place():
    """The meta-device runs find where each tensor is held once, and again when the model
    changed what it holds: a layer replaced between two runs is run on its own twins."""
    from torch import nn

    from bnlint.model.sandbox import Swapped, meta_state

    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    run = Swapped(model, meta_state(model))
    assert run(torch.empty(3, 4, device="meta")).shape == (3, 2)
    replaced = model[0] = nn.Linear(4, 4)
    assert run(torch.empty(3, 4, device="meta")).is_meta
    assert model[0] is replaced and not replaced.weight.is_meta


def test_a_batch_norm_of_the_wrong_width_fails_on_the_meta_device_as_on_the_weights():
    """The meta device's trials answer batch norm with its input's shape only when torch's own
    would run: one built for 4 channels and given 8 fails there too, so a size is not taken to
    fit where the model cannot run; one of the right width runs."""
    from torch import nn

    from bnlint.discover import sizes

    def net(width: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(width), nn.ReLU(),
                             nn.Flatten(), nn.Linear(8 * 6 * 6, 2))

    for on_weights in (False, True):
        assert sizes.seen_at(net(4), (1, 1, 8, 8), on_weights) is None
        seen = sizes.seen_at(net(8), (1, 1, 8, 8), on_weights)
        assert seen is not None and seen.flat == 8 * 6 * 6


def test_a_probe_finding_measured_at_an_inferred_size_says_so(write_model):
    """The probe's numbers depend on the input size; when bnlint inferred it, they say so."""
    path = write_model(MNIST.replace(
        "self.fc2 = nn.Linear(32, 10)",
        "self.fc2 = nn.Linear(32, 10)\n"
        "            with torch.no_grad():\n"
        "                self.conv2.weight[0, 0, 0, 0] = float('nan')"))
    report = _json(run_cli(path, "--format", "json", "--probe-steps", "2"))
    measured = [f for f in report["models"][0]["findings"] if f["code"] == "BNL904"]
    assert measured, report["models"][0]["findings"]
    assert all("Measured on 28x28 inputs, a size bnlint inferred" in f["message"]
               for f in measured)
    static = [f for f in report["models"][0]["findings"] if f["code"] == "BNL304"]
    assert static and "a size bnlint inferred" not in static[0]["message"]


STEM = """
    from torch import nn

    def stage(channels, stride):
        return nn.Sequential(nn.Conv2d(channels, channels, 3, stride, 1, bias=False),
                             nn.BatchNorm2d(channels), nn.ReLU())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(STEM)
            self.stages = nn.Sequential(stage(8, 2), stage(8, 2), stage(8, 2))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))
"""


def test_an_imagenet_style_stem_gets_224(write_model):
    """A stride-2 stem and a max pool, then strided stages, before a global pool: ImageNet's
    224x224 (at 32x32 its last stage would see 1x1 maps); a CIFAR-style stem keeps 32x32."""
    imagenet = STEM.replace("STEM", "nn.Conv2d(3, 8, 7, 2, 3), nn.ReLU(), "
                                    "nn.MaxPool2d(3, 2, 1)")
    inputs = _inputs(write_model(imagenet), "--no-probe")
    assert inputs["shapes"] == [[16, 3, 224, 224]]
    assert "224x224, ImageNet's size: the layers downsample it 32x" in inputs["how"]
    cifar = STEM.replace("STEM", "nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU()")
    inputs = _inputs(write_model(cifar, "cifar.py"), "--no-probe")
    assert inputs["shapes"] == [[16, 3, 32, 32]]
    assert "no layer fixes the size" in inputs["how"]


def test_a_folder_run_infers_the_inputs_each_file_gets_alone(write_model):
    """A run of several files searches sizes on the meta device in each child after the first
    (see above), a run of one on the weights: each model's inputs, how they were chosen and its
    findings are the same."""
    stem = write_model(STEM.replace("STEM", "nn.Conv2d(3, 8, 7, 2, 3), nn.ReLU(), "
                                            "nn.MaxPool2d(3, 2, 1)"), "stem.py")
    mnist = write_model(MNIST, "mnist.py")
    together = _json(run_cli(stem, mnist, "--no-probe", "--format", "json", "-j", "1"))["models"]
    alone = [_json(run_cli(path, "--no-probe", "--format", "json"))["models"][0]
             for path in (stem, mnist)]
    assert [m["inputs"] for m in together] == [m["inputs"] for m in alone]
    assert [m["inputs"]["shapes"] for m in alone] == [[[16, 3, 224, 224]], [[16, 1, 28, 28]]]
    assert [m["findings"] for m in together] == [m["findings"] for m in alone]


CONVNEXT = """
    from torch import nn

    class Block(nn.Module):
        # ConvNeXt's: a depthwise conv, then a pointwise MLP of Linears on (B, H, W, C) maps
        def __init__(self, dim):
            super().__init__()
            self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
            self.norm = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

        def forward(self, x):
            return x + self.mlp(self.norm(self.dwconv(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)

    class ConvNeXt(nn.Module):
        def __init__(self, dims=DIMS, classes=CLASSES):
            super().__init__()
            layers = [STEM, Block(dims[0])]
            for before, dim in zip(dims, dims[1:]):
                layers += [nn.Conv2d(before, dim, 2, 2), Block(dim)]
            self.stages = nn.Sequential(*layers)
            self.norm = nn.LayerNorm(dims[-1])
            self.head = nn.Linear(dims[-1], classes)

        def forward(self, x):
            return self.head(self.norm(self.stages(x).mean((2, 3))))
"""


def test_linears_on_each_pixel_are_not_the_head(write_model):
    """ConvNeXt in small: a stride-4 patch stem, blocks whose MLPs are Linears on
    channels-last (B, H, W, C) maps, strided downsampling to 1/32 and a global pool before a
    head of 1000 classes: ImageNet's 224x224, as the search runs through the blocks' Linears
    to the head on (batch, features). Its spatial sizes are read from H and W of the
    channels-last maps, not from W and C: a narrow one for CIFAR (4 channels, a stride-1
    stem: 8x downsampling) is no ImageNet model, though its 4 channels are 1/56 of 224."""
    imagenet = CONVNEXT.replace("DIMS", "(8, 16, 32, 64)").replace("CLASSES", "1000") \
        .replace("STEM", "nn.Conv2d(3, 8, 4, 4)")
    inputs = _inputs(write_model(imagenet), "--no-probe")
    assert inputs["shapes"] == [[16, 3, 224, 224]], inputs["how"]
    assert "224x224, ImageNet's size: the layers downsample it 32x" in inputs["how"]
    narrow = CONVNEXT.replace("DIMS", "(4, 4, 4, 4)").replace("CLASSES", "10") \
        .replace("STEM", "nn.Conv2d(3, 4, 3, 1, 1)")
    inputs = _inputs(write_model(narrow, "narrow.py"), "--no-probe")
    assert inputs["shapes"] == [[16, 3, 32, 32]], inputs["how"]
    assert "no layer fixes the size" in inputs["how"]


CIFAR_VGG = """
from torch import nn


class VGG(nn.Module):
    def __init__(self, num_classes=CLASSES):
        super().__init__()
        layers, channels = [], 3
        for _ in range(5):
            layers += [nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                       nn.MaxPool2d(2)]
            channels = 8
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))
"""


def test_a_cifar_head_after_a_stride_1_stem_gets_32_though_it_downsamples_32x(write_model):
    """huyvnphan/PyTorch_CIFAR10's VGGs in small: 3x3 stride-1 convs and five max pools take
    32x32 to 1x1 before a global pool, as ImageNet models take 224 to 7; a head of CIFAR-10's
    or CIFAR-100's classes makes it CIFAR's 32x32, one of ImageNet's 1000 keeps 224."""
    for classes in (10, 100):
        inputs = _inputs(write_model(CIFAR_VGG.replace("CLASSES", str(classes)),
                                     f"vgg{classes}.py"), "--no-probe")
        assert inputs["shapes"] == [[16, 3, 32, 32]], inputs
        assert (f"32x32, CIFAR's size: the head's {classes} classes are CIFAR-{classes}'s and "
                "the first layer is CIFAR's 3x3 conv at stride 1") in inputs["how"]
        assert "downsample it 32x, to 1x1" in inputs["how"]
    inputs = _inputs(write_model(CIFAR_VGG.replace("CLASSES", "1000"), "vgg1000.py"),
                     "--no-probe")
    assert inputs["shapes"] == [[16, 3, 224, 224]], inputs
    assert "224x224, ImageNet's size: the layers downsample it 32x" in inputs["how"]


AUX = """
    from pathlib import Path

    import torch
    from torch import nn

    CALLS = Path(__file__).with_suffix(".calls")

    def record(module, args):
        if not args[0].is_meta:  # a run of the model's weights, not a size search on meta
            with CALLS.open("a") as log:
                log.write(f"{tuple(args[0].shape)} {module.training}\\n")

    class Aux(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.MaxPool2d(3, 2), nn.Conv2d(8, 8, 3, 2),
                                      nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(3, 2))
            self.aux = nn.Sequential(nn.AvgPool2d(5, 3), nn.Conv2d(8, 8, 5),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
            self.body = nn.Sequential(nn.Conv2d(8, 8, 3, 2), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                      nn.Linear(8, 10))
            self.stem[0].register_forward_pre_hook(record)

        def forward(self, x):
            x = self.stem(x)
            if self.training:
                return self.body(x), self.aux(x)
            return self.body(x)
"""


def test_an_auxiliary_head_that_needs_more_than_224_gets_inceptions_299(write_model):
    """Inception v3's shape in small: an ImageNet stem, and an auxiliary head that runs only in
    training mode (as bnlint runs the model) and pools 5x5 with stride 3 before a 5x5 conv,
    which the 13x13 maps of a 224 input cannot feed and the 17x17 maps of 299 can. The
    static pass's training-mode forward is what tries the shapes: at 299 the model runs once
    in training mode (and not first at a batch of 2 to confirm the shape)."""
    path = write_model(AUX)
    report = _json(run_cli(path, "--no-probe", "--format", "json"))["models"][0]
    assert report["inputs"]["shapes"] == [[16, 3, 299, 299]], report["inputs"]
    how = report["inputs"]["how"]
    assert "224x224, ImageNet's size" in how and "it did not run, 299x299 did" in how, how
    calls = path.with_suffix(".calls").read_text().splitlines()
    assert [c for c in calls if c.endswith("299) True")] == ["(8, 3, 299, 299) True"], calls


def test_fix_verification_tries_the_inferred_shapes_as_the_lint_does(write_model):
    """--fix checks a patched file by running its models; on inferred inputs it tries the
    shapes in training mode on the static pass's examples, as the lint does (224, then 299
    for the auxiliary head), then runs the model in evaluation mode on all of them."""
    from bnlint.config import Config
    from bnlint.isolation import runner
    from bnlint.rules import catalog

    path = write_model(AUX)
    assert runner.verify({str(path): path.read_text()}, Config(), catalog.load(None)) == \
        {str(path): ["Aux"]}
    calls = path.with_suffix(".calls").read_text().splitlines()
    assert [c for c in calls if c.startswith("(8, 3, ")] == ["(8, 3, 224, 224) True",
                                                           "(8, 3, 299, 299) True"], calls
    assert calls[-1] == "(16, 3, 299, 299) False", calls


def test_token_inputs_for_a_model_that_calls_its_embedding_first(write_model):
    """The embedding is registered after the head but called first: token ids in its range."""
    from bnlint.discover.inputs import infer_inputs
    scope: dict = {}
    exec("""if True:
        import torch
        from torch import nn
        class Tagger(nn.Module):
            def __init__(self):
                super().__init__()
                self.head = nn.Linear(32, 5)
                self.embed = nn.Embedding(100, 32)
            def forward(self, tokens):
                return self.head(self.embed(tokens))
    """, scope)
    first, _ = infer_inputs(scope["Tagger"](), "Tagger", 16, write_model("pass")
                            ).first_that_runs(lambda inputs: None)
    (tokens,), how = first.tensors, first.how
    assert tokens.dtype == torch.long and tokens.shape == (16, 16)
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 100
    assert "token ids per sample in [0, 100), for the first layer, embed (Embedding)" in how


def test_optional_forward_arguments_are_traced_at_their_defaults(write_model):
    """`mask=None` with `if mask is not None`, and a flag: fx traces them as constants at
    their defaults (not as inputs, which bakes in the wrong branch), and the report says so."""
    path = write_model("""
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 4)

            def forward(self, x, mask=None, return_features=False):
                h = torch.relu(self.fc1(x))
                if mask is not None:
                    h = h * mask
                if return_features:
                    return h
                return self.fc2(h)
    """)
    model = _json(run_cli(path, "--format", "json", "--no-probe"))["models"][0]
    assert model["trace"]["method"] == "fx"
    assert model["trace"]["nodes"] == 5  # input, fc1, relu, fc2, output: no checks
    assert model["inputs"]["how"].endswith(
        "forward's mask=None, return_features=False at their defaults")


TINY = """
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
"""


def _tree(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(TINY)


def test_folder_runs_skip_excluded_globs_and_what_git_ignores(tmp_path):
    """`extend-exclude` in [tool.bnlint], --exclude on the command line (replacing the default
    list: .venv is walked again), and the .gitignore, as `git check-ignore` reads it."""
    _tree(tmp_path, ["models/net.py", "models/generated/auto.py", "models/scratch.py",
                     "vendor/lib.py", "experiments/old.py", "models/migrations/m1.py",
                     "venv/site.py"])
    (tmp_path / ".gitignore").write_text("generated/\nscratch.py\n")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.bnlint]\nextend-exclude = ["vendor", "models/migrations/*.py"]\n')
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)

    def linted(*args: str) -> set[str]:
        report = _json(run_cli(".", "--no-probe", "--format", "json", *args, cwd=tmp_path))
        return {Path(m["path"]).relative_to(tmp_path.resolve()).as_posix()
                if Path(m["path"]).is_absolute() else m["path"] for m in report["models"]}

    assert linted() == {"models/net.py", "experiments/old.py"}
    assert linted("--extend-exclude", "exp*") == {"models/net.py"}
    assert linted("--exclude", "experiments", "--no-respect-gitignore") == {
        "models/net.py", "models/generated/auto.py", "models/scratch.py", "venv/site.py"}
    # a file given by name is linted even when excluded, as ruff does
    assert linted("vendor/lib.py") >= {"vendor/lib.py"}


def test_exclusion_patterns_match_names_anywhere_and_paths_from_the_root(tmp_path):
    from bnlint.files import Exclusions
    rules = Exclusions(("build", "*_pb2.py", "src/legacy/*"), tmp_path, gitignore=False)
    assert rules.matches(tmp_path / "a" / "build")
    assert rules.matches(tmp_path / "deep" / "x_pb2.py")
    assert rules.matches(tmp_path / "src" / "legacy" / "old.py")
    assert not rules.matches(tmp_path / "other" / "src" / "legacy" / "old.py")
    assert not rules.matches(tmp_path / "builder.py")
