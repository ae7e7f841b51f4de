"""bnlint in the user's tests: assert_trainable, the ``bnlint`` fixture and ``pytest --bnlint``,
run by pytest itself (pytester, in a subprocess: an in-process run would unload the torch
modules it imported, and torch cannot register their operators twice), and the README's pytest
snippet."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from conftest import readme_snippet, run_cli

from bnlint.discover.load import load_module
from bnlint.model import sites
from bnlint.testing import assert_trainable

# A deep plain Linear-BatchNorm-ReLU stack: gradients explode with depth (BNL201, a warning).
EXPLODING = """
import torch
from torch import nn


def deep_mlp():
    layers = []
    for _ in range(30):
        layers += [nn.Linear(32, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(32, 10))


def small_mlp():
    return nn.Sequential(nn.Linear(32, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(),
                         nn.Linear(32, 10))
"""


def test_assert_trainable_says_what_the_cli_says(tmp_path):
    path = tmp_path / "mlp.py"
    path.write_text(EXPLODING)
    cli = run_cli(path, "--no-probe", "--select", "BNL2", "--model", "deep_mlp")
    assert cli.returncode == 1, cli.stderr
    finding_lines = [line for line in cli.stdout.splitlines() if "BNL201" in line]
    assert finding_lines
    torch.manual_seed(0)  # the same weights as the CLI's worker builds, seeded the same way
    module = load_module(path)
    with sites.recording():  # and where each layer is built, as the worker records it
        model = module.deep_mlp()
    with pytest.raises(AssertionError) as raised:
        assert_trainable(model, torch.randn(64, 32), select="BNL2", probe=False)
    message = str(raised.value)
    for line in finding_lines:
        assert line.replace(" [deep_mlp]", "") in message.splitlines()
    assert "Found 1 finding (1 warning) in 1 model." in message
    # Below fail_on it passes and returns the report.
    report = assert_trainable(module.deep_mlp(), torch.randn(64, 32), select="BNL2",
                              probe=False, fail_on="error")
    assert [f.code for f in report.findings] == ["BNL201"]
    with pytest.raises(Exception, match="unknown rule code BNL2O1"):
        assert_trainable(module.small_mlp(), torch.randn(64, 32), select="BNL2O1")


def test_fixture_and_assert_trainable_in_a_pytest_run(pytester):
    pytester.makepyfile(mlp_models=EXPLODING)  # not models.py: this suite imported its own
    pytester.makepyfile(test_models="""
        import torch
        from bnlint.testing import assert_trainable
        from mlp_models import deep_mlp, small_mlp

        def test_deep_explodes():
            assert_trainable(deep_mlp(), torch.randn(64, 32), select="BNL2", probe=False)

        def test_small_is_fine():
            assert_trainable(small_mlp(), torch.randn(64, 32), probe=False)

        def test_fixture_reads_the_project_settings(bnlint):
            assert bnlint.config.ignore == ["BNL201"]
            report = bnlint.assert_trainable(deep_mlp(), torch.randn(64, 32), probe=False)
            assert "BNL201" not in [f.code for f in report.findings]

        def test_fixture_locates_layers_built_in_the_test(bnlint):
            import inspect
            from torch import nn
            line = inspect.currentframe().f_lineno + 1
            model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8))  # BNL102
            report = bnlint.lint(model, torch.randn(16, 8), probe=False)
            (found,) = [f for f in report.findings if f.code == "BNL102"]
            assert found.path.endswith("test_models.py") and found.line == line
        """)
    pytester.makepyprojecttoml('[tool.bnlint]\nignore = ["BNL201"]\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_deep_explodes*", "*BNL201 warning: 30 plain Linear*",
                                 "*Found 1 finding (1 warning) in 1 model*"])


def test_bnlint_option_lints_the_model_files_of_the_session(pytester):
    pytester.makepyprojecttoml("[tool.bnlint]\nprobe = false\n")
    pytester.makepyfile(mlp_models=EXPLODING)
    pytester.makepyfile(clean="""
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 2)

            def forward(self, x):
                return self.fc(x)
        """)
    pytester.makepyfile(helpers="import torch\nSCALE = torch.tensor(2.0)\n")  # no model: passes
    pytester.makepyfile(test_nothing="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("--bnlint", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*mlp_models.py::bnlint FAILED*", "*BNL201 warning*"])
    without = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    without.assert_outcomes(passed=1)  # without --bnlint nothing is linted


def test_readme_pytest_snippet_runs(pytester):
    pytester.makepyfile(test_readme=readme_snippet("pytest", "python"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_plugin_import_costs_no_torch(pytester):
    """pytest loads the plugin in every session of an environment with bnlint installed."""
    code = textwrap.dedent("""
        import sys
        import bnlint.integrations.pytest_plugin
        assert "torch" not in sys.modules, "the plugin imported torch"
        """)
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == 0, result.errlines
