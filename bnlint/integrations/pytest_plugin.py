"""bnlint's pytest plugin (registered with the ``pytest11`` entry point, so installing bnlint
enables it): the ``bnlint`` fixture, and ``pytest --bnlint``, which lints each model file the
session collects as one test item. Importing it costs no torch: pytest loads it in every session.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .. import files


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("bnlint").addoption(
        "--bnlint", action="store_true",
        help="Lint the model files among the collected paths with bnlint, one test per file "
             "(settings from [tool.bnlint]).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bnlint: bnlint's lint of a model file (pytest --bnlint)")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.File | None:
    if parent.config.getoption("bnlint") and files.may_hold_models(file_path):
        return BnlintFile.from_parent(parent, path=file_path)
    return None


class BnlintFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield BnlintItem.from_parent(self, name="bnlint")


class BnlintFailedError(Exception):
    """What bnlint printed for a file that fails."""


class BnlintItem(pytest.Item):
    """The ``bnlint`` command on one file, in its own process as the CLI always runs model
    code: it passes when bnlint exits 0 and fails with bnlint's report otherwise."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.add_marker("bnlint")

    def runtest(self) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "bnlint", "--allow-no-models", str(self.path)],
            cwd=self.config.rootpath, capture_output=True, text=True)
        if proc.returncode:
            raise BnlintFailedError((proc.stdout + proc.stderr).rstrip())

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:
        if isinstance(excinfo.value, BnlintFailedError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"bnlint {self.path.name}"


class Bnlint:
    """What the ``bnlint`` fixture gives a test: bnlint with the project's settings."""

    def __init__(self, rootpath: Path):
        from .. import config
        self.config = config.load(None, rootpath)

    def lint(self, model: Any, inputs: Any, targets: Any = None, **settings: Any):
        """:func:`bnlint.lint` with the project's settings and ``settings`` (config keys in
        snake_case) over them."""
        from ..api import lint
        from ..testing import configured
        return lint(model, inputs, targets, configured(self.config, **settings))

    def assert_trainable(self, model: Any, inputs: Any, targets: Any = None, **settings: Any):
        """:func:`bnlint.testing.assert_trainable` with the project's settings."""
        __tracebackhide__ = True
        from ..testing import assert_trainable
        return assert_trainable(model, inputs, targets, config=self.config, **settings)


@pytest.fixture
def bnlint(request: pytest.FixtureRequest) -> Iterator[Bnlint]:
    """bnlint with the project's ``[tool.bnlint]`` settings. Models the test builds while it
    holds the fixture are located at the lines that build their layers."""
    from ..model import sites
    with sites.recording():
        yield Bnlint(request.config.rootpath)
