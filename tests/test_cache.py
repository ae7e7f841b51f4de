"""The results cache: an unchanged file is served from it with the report an uncached run gives;
a change to the file, to a module it imports or to an option lints it again; what is not
settled (a timeout) is never stored; a corrupt entry, a read-only cache folder and --no-cache
each lint afresh without an error. Whether a file was linted is seen from a line its import
appends to imports.log, never from timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import CLI_ENV

ENV = {k: v for k, v in CLI_ENV.items() if k != "BNLINT_NO_CACHE"}

LAYERS = "WIDTH = 8\nBIAS = True\n"
MODEL = """
import os
import time
import torch.nn as nn
from layers import BIAS, WIDTH

with open(os.path.join(os.path.dirname(__file__), "imports.log"), "a") as log:
    log.write(__name__ + "\\n")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, WIDTH, 3, padding=1, bias=BIAS)
        self.bn = nn.BatchNorm2d(WIDTH)
        self.relu = nn.ReLU()
        self.head = nn.Linear(WIDTH, 10)

    def forward(self, x):
{slow}        return self.head(self.relu(self.bn(self.conv(x))).mean((2, 3)))
"""
OPTIONS = ("--no-probe", "--input-shape", "8,3,8,8", "--fail-on", "info")


def _bnlint(folder: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "bnlint", *args], cwd=folder,
                          capture_output=True, text=True, timeout=300, env=env or ENV)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _project(folder: Path, slow: str = "") -> Path:
    (folder / "layers.py").write_text(LAYERS)
    (folder / "model.py").write_text(MODEL.format(slow=f"        {slow}\n" if slow else ""))
    return folder / "model.py"


def _imports(folder: Path) -> int:
    log = folder / "imports.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("v*/*/*/*.json"))


def test_an_unchanged_file_comes_from_the_cache_with_the_same_report(tmp_path):
    _project(tmp_path)
    first = _bnlint(tmp_path, "model.py", *OPTIONS, "--format", "json")
    assert first.returncode == 1 and _imports(tmp_path) == 1
    second = _bnlint(tmp_path, "model.py", *OPTIONS, "--format", "json")
    assert _imports(tmp_path) == 1, "the file was imported again"
    assert second.returncode == first.returncode
    assert json.loads(second.stdout) == json.loads(first.stdout)
    assert [f["code"] for f in json.loads(first.stdout)["models"][0]["findings"]] == ["BNL102"]
    text = _bnlint(tmp_path, "model.py", *OPTIONS)
    assert "from 1 file (1 unchanged, from the cache)" in text.stdout
    cache = tmp_path / ".bnlint_cache"  # beside the config file, else in the current folder
    assert (cache / ".gitignore").read_text().splitlines()[-1] == "*"
    assert len(_entries(cache)) == 1


def test_the_probe_report_is_served_as_measured(tmp_path):
    _project(tmp_path)
    args = ("model.py", "--input-shape", "8,3,8,8", "--probe-steps", "2", "--format", "json")
    first = _bnlint(tmp_path, *args)
    second = _bnlint(tmp_path, *args)
    assert _imports(tmp_path) == 1
    assert json.loads(first.stdout)["models"][0]["probe"] is not None
    assert second.stdout == first.stdout and second.returncode == first.returncode


def test_editing_the_file_or_a_module_it_imports_lints_it_again(tmp_path):
    model = _project(tmp_path)
    first = _bnlint(tmp_path, "model.py", *OPTIONS, "--format", "json")
    model.write_text(model.read_text() + "# edited\n")
    edited = _bnlint(tmp_path, "model.py", *OPTIONS, "--format", "json")
    assert _imports(tmp_path) == 2, "an edit to model.py did not lint it again"
    assert json.loads(edited.stdout) == json.loads(first.stdout)
    (tmp_path / "layers.py").write_text(LAYERS.replace("BIAS = True", "BIAS = False"))
    fixed = _bnlint(tmp_path, "model.py", *OPTIONS, "--format", "json")
    assert _imports(tmp_path) == 3, "an edit to layers.py did not lint model.py again"
    assert fixed.returncode == 0 and json.loads(fixed.stdout)["models"][0]["findings"] == []
    _bnlint(tmp_path, "model.py", *OPTIONS)
    assert _imports(tmp_path) == 3


def test_another_option_lints_again_and_each_setting_keeps_its_own_entry(tmp_path):
    _project(tmp_path)
    _bnlint(tmp_path, "model.py", *OPTIONS)
    ignored = _bnlint(tmp_path, "model.py", *OPTIONS, "--ignore", "BNL102", "--format", "json")
    assert _imports(tmp_path) == 2
    assert ignored.returncode == 0 and json.loads(ignored.stdout)["models"][0]["findings"] == []
    _bnlint(tmp_path, "model.py", "--no-probe", "--input-shape", "8,3,16,16", "--fail-on", "info")
    assert _imports(tmp_path) == 3
    _bnlint(tmp_path, "model.py", *OPTIONS)
    _bnlint(tmp_path, "model.py", *OPTIONS, "--ignore", "BNL102")
    assert _imports(tmp_path) == 3


def test_a_corrupt_entry_is_linted_again(tmp_path):
    _project(tmp_path)
    first = _bnlint(tmp_path, "model.py", *OPTIONS, "--format", "json")
    cache = tmp_path / ".bnlint_cache"
    for garbage in (b"{not json", b'{"digest": 1}', json.dumps(
            {**json.loads(_entries(cache)[0].read_text()), "models": [{}]}).encode()):
        (entry,) = _entries(cache)
        entry.write_bytes(garbage)
        again = _bnlint(tmp_path, "model.py", *OPTIONS, "--format", "json")
        assert json.loads(again.stdout) == json.loads(first.stdout)
        assert again.returncode == first.returncode and again.stderr == ""
    assert _imports(tmp_path) == 4


def test_no_cache_writes_nothing_and_an_unwritable_folder_is_no_error(tmp_path):
    _project(tmp_path)
    _bnlint(tmp_path, "model.py", *OPTIONS, "--no-cache")
    _bnlint(tmp_path, "model.py", *OPTIONS, env={**ENV, "BNLINT_NO_CACHE": "1"})
    assert _imports(tmp_path) == 2
    assert not (tmp_path / ".bnlint_cache").exists()
    unwritable = [tmp_path / "imports.log" / "cache"]  # under a file: not even root makes it
    if os.geteuid() != 0:
        (tmp_path / "locked").mkdir(mode=0o500)
        unwritable.append(tmp_path / "locked" / "cache")
    for folder in unwritable:
        proc = _bnlint(tmp_path, "model.py", *OPTIONS, "--cache-dir", str(folder))
        assert proc.returncode == 1 and proc.stderr == ""
        assert not folder.exists()


def test_a_timed_out_model_is_never_stored(tmp_path):
    _project(tmp_path, slow="time.sleep(600)")
    for _ in range(2):
        proc = _bnlint(tmp_path, "model.py", *OPTIONS, "--timeout", "3", "--format", "json")
        assert [f["code"] for f in json.loads(proc.stdout)["findings"]] == ["BNL004"]
    assert _imports(tmp_path) == 2
    assert _entries(tmp_path / ".bnlint_cache") == []


def test_the_cache_lives_beside_the_config_and_fix_uses_it(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.bnlint]\ninput-shape = "8,3,8,8"\n')
    sub = tmp_path / "models"
    sub.mkdir()
    model = _project(sub)
    _bnlint(sub, "model.py", "--no-probe")
    assert _entries(tmp_path / ".bnlint_cache") and not (sub / ".bnlint_cache").exists()
    fixed = _bnlint(sub, "model.py", "--no-probe", "--fix", "--fail-on", "info")
    assert "bias=False" in model.read_text()
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    # served from the cache: one import to lint, one to check the fix, one to re-lint it
    assert _imports(sub) == 3


def test_the_config_keys_and_where_the_cache_lives(tmp_path):
    from bnlint import config
    cfg = config.from_mapping({"cache": False, "cache-dir": "ci/cache"},
                              str(tmp_path / "pyproject.toml"))
    assert not cfg.cache and config.cache_folder(cfg) == tmp_path / "ci" / "cache"
    assert config.cache_folder(config.Config()) == Path.cwd() / config.CACHE_DIR
    assert config.cache_folder(config.from_mapping({}, str(tmp_path / ".bnlint.yaml"))) == \
        tmp_path / config.CACHE_DIR


def test_only_settled_results_are_stored():
    from bnlint.errors import BUILD_FAILED, FORWARD_FAILED, IMPORT_FAILED, InputError, UserCodeError
    from bnlint.isolation.cache import settled
    model = {"name": "Net", "probe": {"cut": None}}
    assert settled([model], [UserCodeError(FORWARD_FAILED, "linting model X raised "
                                                           "ValueError: bad shape.")])
    assert not settled([{"name": "Net", "probe": {"cut": {"budget": 30.0}}}], [])
    assert settled([model], [UserCodeError(IMPORT_FAILED, "SyntaxError: invalid syntax.")])
    assert not settled([model], [UserCodeError(IMPORT_FAILED, "importing the file raised "
                                                              "ImportError: cannot import x.")])
    assert not settled([model], [UserCodeError(BUILD_FAILED, "building model X raised "
                                                             "ModuleNotFoundError: no apex.")])
    assert not settled([model], [InputError("internal error in bnlint: ...")])


def test_a_package_module_and_a_data_file_it_reads_are_dependencies(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    _project(package)
    model = package / "model.py"
    model.write_text(model.read_text().replace("from layers import", "from .layers import")
                     .replace("class Net", 'HIDDEN = int(open(os.path.join(os.path.dirname('
                              '__file__), "hidden.txt")).read())\n\n\nclass Net'))
    (package / "hidden.txt").write_text("4\n")
    _bnlint(tmp_path, "pkg/model.py", *OPTIONS)
    _bnlint(tmp_path, "pkg/model.py", *OPTIONS)
    assert _imports(package) == 1
    (package / "hidden.txt").write_text("5\n")
    _bnlint(tmp_path, "pkg/model.py", *OPTIONS)
    assert _imports(package) == 2, "a change to the data file did not lint model.py again"
    (package / "layers.py").write_text(LAYERS + "# edited\n")
    _bnlint(tmp_path, "pkg/model.py", *OPTIONS)
    assert _imports(package) == 3, "a change to pkg/layers.py did not lint pkg/model.py again"
    (package / "__init__.py").write_text("# edited\n")
    _bnlint(tmp_path, "pkg/model.py", *OPTIONS)
    assert _imports(package) == 4, "a change to pkg/__init__.py did not lint pkg/model.py again"


def test_a_run_wholly_served_from_the_cache_never_has_the_server_import_torch():
    """The fork server imports torch when its token comes; the CLI, whose cache may hold every
    file's result, sends it only once runner.run finds a file the cache does not hold."""
    from bnlint.config import Config
    from bnlint.isolation import runner

    class Full:  # every file's result stored: no models, no errors
        def get(self, path: str, may_be_empty: bool):
            return [], []

        def put(self, *args):
            raise AssertionError("a file was linted")

    worker = runner.Worker(False, start=False)
    try:
        report = runner.run(["a.py", "b.py"], Config(), {}, worker=worker, cache=Full())
        assert report.cached == ["a.py", "b.py"] and not worker.started
    finally:
        worker.kill()
