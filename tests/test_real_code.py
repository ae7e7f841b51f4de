"""Model code as real repositories hold it (issue 10): files inside packages, classes that need
arguments, factories, nested Sequentials, functions that must never run, a shadowing module in
the working directory, and a constructor that raises. Each file is written by the test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import CLI_ENV, line_of, run_cli


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))


def _lint(*args, cwd=None) -> tuple[int, dict]:
    proc = run_cli(*args, "--format", "json", "--no-probe", cwd=cwd)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _problems(report: dict) -> list[tuple[str, str]]:
    return [(f["code"], f["message"]) for f in report["findings"]]


def test_a_package_file_with_relative_imports_is_linted_where_it_is(tmp_path):
    _write(tmp_path, {
        "repo/pkg/__init__.py": "",
        "repo/pkg/layers.py": "WIDTH = 8\n",
        "repo/pkg/models/__init__.py": "",
        "repo/pkg/models/net.py": """
            from torch import nn

            from ..layers import WIDTH


            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(WIDTH, WIDTH)
                    self.bn = nn.BatchNorm1d(WIDTH)
                    self.head = nn.Linear(WIDTH, 2)

                def forward(self, x):
                    return self.head(self.bn(self.fc(x)).relu())
        """})
    net = tmp_path / "repo/pkg/models/net.py"
    code, report = _lint("pkg/models/net.py", cwd=tmp_path / "repo")
    assert code == 0 and _problems(report) == []
    [model] = report["models"]
    assert model["name"] == "Net"
    [finding] = [f for f in model["findings"] if f["code"] == "BNL102"]
    assert ((tmp_path / "repo" / finding["path"]).resolve(), finding["line"]) == (
        net.resolve(), line_of(net, "nn.Linear(WIDTH, WIDTH)"))


def test_a_relative_import_outside_a_package_says_so(tmp_path):
    _write(tmp_path, {"net.py": "import torch\nfrom .layers import WIDTH\n"})
    code, report = _lint(tmp_path / "net.py")
    assert code == 1
    [(rule, message)] = _problems(report)
    assert rule == "BNL002" and "relative import" in message
    assert "Install" not in message and "__init__.py" in message


SIDE_EFFECTS = """
    from pathlib import Path

    import torch
    from torch import nn

    HERE = Path(__file__).parent


    def cleanup():
        (HERE / "cleanup.ran").touch()


    def ddp_setup():
        (HERE / "ddp_setup.ran").touch()


    def finish_episode():
        (HERE / "finish_episode.ran").touch()
        return None


    def get_config():
        (HERE / "get_config.ran").touch()
        return {"width": 4}


    class VGG(nn.Module):
        def __init__(self, vgg_name):
            super().__init__()
            self.name = vgg_name
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x)


    def test():
        net = VGG("VGG11")
        (HERE / "test.ran").touch()
        return net(torch.randn(2, 4))


    class ShuffleBlock(nn.Module):
        def __init__(self, groups=2):
            super().__init__()
            self.groups = groups

        def forward(self, x):
            return x


    class Block(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.fc = nn.Linear(width, width)

        def forward(self, x):
            return self.fc(x)


    class ResNet(nn.Module):
        def __init__(self, block=Block, depth=2, width=4):
            super().__init__()
            self.blocks = nn.Sequential(*[block(width) for _ in range(depth)])
            self.shuffle = ShuffleBlock()

        def forward(self, x):
            return self.shuffle(self.blocks(x))


    def resnet(**kwargs):
        model = ResNet(Block, **kwargs)
        return model


    if __name__ == "__main__":
        (HERE / "main.ran").touch()
"""


def test_only_model_factories_run_and_classes_get_their_call_sites_arguments(tmp_path):
    _write(tmp_path, {"models.py": SIDE_EFFECTS})
    code, report = _lint(tmp_path / "models.py")
    assert code == 0, report
    assert list(tmp_path.glob("*.ran")) == []
    # VGG from test()'s call; resnet(**kwargs) with its defaults (ResNet itself is the same
    # model); Block inside ResNet and the parameter-free ShuffleBlock are building blocks
    assert sorted(m["name"] for m in report["models"]) == ["VGG", "resnet"]
    assert _problems(report) == []


def test_a_class_without_arguments_is_a_not_linted_note_until_given_some(tmp_path):
    _write(tmp_path, {"vgg.py": SIDE_EFFECTS.replace('net = VGG("VGG11")', "net = None"),
                      "pyproject.toml": "[tool.bnlint]\nmodels = ['VGG(\"VGG16\")']\n"})
    path = tmp_path / "vgg.py"
    code, report = _lint(path, "--model", "resnet")
    assert code == 0 and [m["name"] for m in report["models"]] == ["resnet"]
    code, report = _lint(path)
    assert code == 0
    assert _problems(report) == [("BNL005", "not linted: VGG needs vgg_name; give it with "
                                            "--model 'VGG(...)', or call it in the file with "
                                            "literal arguments (as a test or __main__ block "
                                            "does), or list such calls as model = [...] in "
                                            "[tool.bnlint].")]
    assert report["findings"][0]["line"] == line_of(path, "class VGG")
    assert report["findings"][0]["severity"] == "info"
    # a call gives the arguments (and lints the file's other models too); one of a model
    # the file does not define is for another file
    for args, cwd in ((["--model", 'VGG("VGG16")', "--model", "Other(1)"], None),
                      ([], tmp_path)):
        code, report = _lint(path, *args, cwd=cwd)
        assert code == 0 and sorted(m["name"] for m in report["models"]) == ["VGG", "resnet"]
    code, report = _lint(path, "--model", "VGG", "--model", 'VGG("VGG16")')
    assert code == 0 and [m["name"] for m in report["models"]] == ["VGG"]
    assert list(tmp_path.glob("*.ran")) == []


GPT_LIKE = """
    from dataclasses import dataclass

    from torch import nn


    @dataclass
    class Config:
        width: int = 16
        layers: int = 2


    class Net(nn.Module):
        def __init__(self, config):
            super().__init__()
            if config.width < 1:
                raise ValueError("width must be positive")
            self.body = nn.Sequential(*[nn.Linear(config.width, config.width)
                                        for _ in range(config.layers)])

        def forward(self, x):
            return self.body(x)
"""


def test_a_model_entry_may_call_the_files_names_in_its_arguments(tmp_path):
    # nanoGPT's GPT(GPTConfig(...)): the config object is built from the entry too
    _write(tmp_path, {"gpt.py": GPT_LIKE})
    path = tmp_path / "gpt.py"
    code, report = _lint(path, "--model", "Net(Config(width=8, layers=3))")
    assert code == 0, report
    model, = report["models"]
    assert model["name"] == "Net" and model["trace"]["nodes"] == 3 + 2  # x, 3 Linear, output
    assert "8 features" in model["inputs"]["how"]
    # the nested call raising is the model's build error, located at the class
    code, report = _lint(path, "--model", "Net(Config(width=0))")
    assert code == 1
    assert [f["code"] for f in report["findings"]] == ["BNL003"]
    assert "width must be positive" in report["findings"][0]["message"]
    # a nested call of something that is not a name (a lambda's result) is still refused
    code, report = _lint(path, "--model", "Net((lambda: Config())())")
    assert code == 2


def test_nested_sequentials_are_found(tmp_path):
    _write(tmp_path, {"seq.py": """
        from torch import nn


        def block():
            return nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU())


        head = nn.Linear(8, 2)
        model = nn.Sequential(block(), block(), head)
    """})
    code, report = _lint(tmp_path / "seq.py")
    assert code == 0 and [m["name"] for m in report["models"]] == ["model"]


def test_a_factory_returning_a_classmethod_construction_is_a_factory(tmp_path):
    _write(tmp_path, {"alt.py": """
        from torch import nn


        class Net(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.fc = nn.Linear(width, 2)

            @classmethod
            def small(cls):
                return cls(8)

            def forward(self, x):
                return self.fc(x)


        def build():
            return Net.small()
    """})
    code, report = _lint(tmp_path / "alt.py")
    assert code == 0 and "build" in [m["name"] for m in report["models"]]


def test_a_bisect_py_in_the_working_directory_is_not_imported(tmp_path):
    _write(tmp_path, {"bisect.py": "from pathlib import Path\nPath('bisect.ran').touch()\n"
                                   "raise RuntimeError('the cwd bisect.py was imported')\n",
                      "src/net.py": "from torch import nn\nmodel = nn.Linear(4, 2)\n"})
    # the bnlint command, as a user types it (python -m would put the folder on the path)
    proc = subprocess.run([Path(sys.executable).parent / "bnlint", "src/net.py", "--format",
                           "json", "--no-probe"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=CLI_ENV)
    assert proc.returncode == 0, proc.stderr
    assert [m["name"] for m in json.loads(proc.stdout)["models"]] == ["model"]
    assert not (tmp_path / "bisect.ran").exists()


RAISES = """
    from torch import nn


    class Good(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x)


    class Broken(nn.Module):
        def __init__(self, width=16):
            super().__init__()
            self.fc = nn.Linear(4, width / 3)

        def forward(self, x):
            return self.fc(x)
"""


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github", "html"])
def test_a_raising_constructor_is_a_located_error_and_the_rest_is_linted(tmp_path, fmt):
    _write(tmp_path, {"net.py": RAISES})
    path = tmp_path / "net.py"
    line = line_of(path, "width / 3")
    proc = run_cli(path, "--no-probe", "--format", fmt)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    out = proc.stdout
    if fmt == "json":
        report = json.loads(out)
        [problem] = report["findings"]
        assert (problem["code"], problem["severity"], problem["path"], problem["line"]) == (
            "BNL003", "error", str(path), line)
        assert problem["message"].startswith("building Broken() raised TypeError")
        assert [m["name"] for m in report["models"]] == ["Good"]
    elif fmt == "sarif":
        [run] = json.loads(out)["runs"]
        [result] = [r for r in run["results"] if r["ruleId"] == "BNL003"]
        assert result["level"] == "error"
        assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == line
        assert "BNL003" in [r["id"] for r in run["tool"]["driver"]["rules"]]
    elif fmt == "github":
        assert f"::error file={path},line={line},col=1" in out and "BNL003" in out
    elif fmt == "html":
        assert "BNL003" in out and "building Broken() raised TypeError" in out
    else:
        assert f"{path}:{line}:1: BNL003 error: building Broken() raised TypeError" in out


def test_a_folder_run_lints_every_file_it_can(tmp_path):
    _write(tmp_path, {"models/good.py": RAISES.split("class Broken")[0],
                      "models/missing.py": "import torch\nimport not_a_module_bnlint_xyz\n",
                      "models/utils.py": "import torch\n\n\ndef helper():\n    return 1\n"})
    code, report = _lint(tmp_path / "models")
    assert code == 1
    assert [m["name"] for m in report["models"]] == ["Good"]
    assert [c for c, _ in _problems(report)] == ["BNL002"]
    assert report["errors"] == []


def test_explain_covers_the_problem_rules():
    for code in ("BNL002", "BNL003", "BNL004", "BNL005"):
        proc = run_cli("--explain", code)
        assert proc.returncode == 0 and proc.stdout.startswith(code)


def test_a_kwargs_factory_needs_what_its_model_needs(tmp_path):
    _write(tmp_path, {"preresnet.py": """
        from torch import nn


        def conv3x3(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.ReLU())


        class PreResNet(nn.Module):
            def __init__(self, depth, num_classes=10):
                super().__init__()
                self.convs = nn.Sequential(*[conv3x3(3 if i == 0 else 8, 8)
                                             for i in range(depth)])
                self.fc = nn.Linear(8, num_classes)

            def forward(self, x):
                return self.fc(self.convs(x).mean((2, 3)))


        def preresnet(**kwargs):
            return PreResNet(**kwargs)
    """})
    path = tmp_path / "preresnet.py"
    code, report = _lint(path)
    assert code == 0 and report["models"] == []
    # one note, for the factory: PreResNet and the conv3x3 helper are what it builds
    assert [(f["code"], f["line"]) for f in report["findings"]] == [
        ("BNL005", line_of(path, "def preresnet"))]
    assert report["findings"][0]["message"].startswith(
        "not linted: preresnet needs depth; give it with --model 'preresnet(...)'")
    code, report = _lint(path, "--model", "preresnet(depth=2)")
    assert code == 0 and [m["name"] for m in report["models"]] == ["preresnet"]


def test_a_model_with_torchscript_blocks_is_linted_without_them(write_model):
    """Blocks subclassing torch.jit.ScriptModule (weiaicunzai's stochastic-depth ResNets) refuse
    forward hooks and weight swaps: the input-size inference skips them (it crashed with
    'register_forward_hook is not supported on ScriptModules'), the rest is linted, and the
    probe is skipped with a note that says why."""
    path = write_model("""
        import torch
        import torch.nn as nn

        class Block(torch.jit.ScriptModule):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(8, 8, 3, padding=1)

            @torch.jit.script_method
            def forward(self, x):
                return torch.relu(self.conv(x))

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = nn.Conv2d(3, 8, 3, padding=1)
                self.block = Block()
                self.pool = nn.AdaptiveAvgPool2d(1)
                self.fc = nn.Linear(8, 10)

            def forward(self, x):
                return self.fc(self.pool(self.block(self.stem(x))).flatten(1))
    """)
    proc = run_cli(path, "--format", "json", "--probe-steps", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model = json.loads(proc.stdout)["models"][0]
    assert model["name"] == "Net" and model["inputs"]["shapes"] == [[16, 3, 32, 32]]
    assert model["probe"] is None
    assert any("probe skipped: the model holds TorchScript modules (block, ...)" in n
               for n in model["notes"]), model["notes"]


def test_a_file_rewritten_in_place_is_read_again_in_one_process(tmp_path):
    """Discovery in one process (the detection study writes each case to the same file) reads
    the file's code as it is now, not a tree parsed from its earlier content."""
    from bnlint.discover.load import load_module
    from bnlint.discover.models import find_models

    path = tmp_path / "case.py"
    found, expected = [], []
    for name, blank_lines in (("First", 0), ("Second", 3)):
        path.write_text("import torch.nn as nn\n" + "\n" * blank_lines
                        + f"\n\nclass {name}(nn.Module):\n"
                        "    def __init__(self):\n        super().__init__()\n"
                        "        self.fc = nn.Linear(2, 2)\n\n"
                        "    def forward(self, x):\n        return self.fc(x)\n")
        expected.append((name, line_of(path, f"class {name}")))
        found += [(m.name, m.line) for m in find_models(load_module(path), path, []).models]
    assert found == expected == [("First", 4), ("Second", 7)]
