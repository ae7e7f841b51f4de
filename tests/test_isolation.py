"""Isolation: a model that hangs or kills its process loses only itself, files linted in
parallel give the report -j 1 gives, a stopped bnlint leaves no process behind, and model code
cannot forge results on the worker channel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import CLI_ENV, ROOT, line_of, run_cli

from bnlint.isolation import channel

MODEL = """
class {name}(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, {width})
{init}
    def forward(self, x):
{forward}        return self.fc(x)
"""


def _model_file(write_model, *models: tuple[str, str, str], head: str = "") -> Path:
    """A file of small models: (name, code in __init__, code in forward) each."""
    parts = ["import os, time\nimport torch.nn as nn\n" + head]
    for width, (name, init, forward) in enumerate(models, 2):
        parts.append(MODEL.format(name=name, width=width, init=init and f"        {init}\n",
                                  forward=forward and f"        {forward}\n"))
    return write_model("\n".join(parts))


def _json(proc) -> dict:
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("init, forward, code, needle", [
    ("", "time.sleep(600)", "BNL004", "timed out after 3 s while linting model Bad"),
    ("time.sleep(600)", "", "BNL003", "timed out after 3 s while building model Bad"),
    ("", "os._exit(7)", "BNL004",
     "the linting process exited with code 7 while linting model Bad"),
])
def test_a_model_that_hangs_or_dies_loses_only_itself(write_model, init, forward, code, needle):
    path = _model_file(write_model, ("First", "", ""), ("Bad", init, forward),
                       ("Last", "", ""))
    proc = run_cli(path, "--timeout", "3", "--no-probe", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    report = _json(proc)
    assert [m["name"] for m in report["models"]] == ["First", "Last"]
    assert report["errors"] == []
    stopped = [f for f in report["findings"] if f["code"].startswith("BNL00")]
    assert [(f["code"], f["path"], f["line"]) for f in stopped] == [
        (code, str(path), line_of(path, "class Bad"))]
    assert needle in stopped[0]["message"]


def _strip_seconds(value):
    """The report without the probe's wall-clock seconds (the one number that is timed)."""
    if isinstance(value, dict):
        return {k: _strip_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_strip_seconds(v) for v in value]
    return value


def test_jobs_give_the_report_of_one_job(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("deep_mlp.py", "mlp_regressor.py", "vgg_bn.py"):
        (folder / name).write_text((ROOT / "examples" / name).read_text())
    (folder / "broken.py").write_text("import torch\nraise ValueError('no')\n")
    args = ("--format", "json", "--probe-steps", "2")
    one, three = run_cli(folder, "-j", "1", *args), run_cli(folder, "-j", "3", *args)
    assert one.returncode == three.returncode == 1, one.stderr
    assert one.stderr == three.stderr
    first, second = _json(one), _json(three)
    assert _strip_seconds(first) == _strip_seconds(second)
    assert first["summary"]["files"] == 4 and first["errors"] == []
    assert [f["path"] for f in first["findings"] if f["code"] == "BNL002"] == [
        str(folder / "broken.py")]
    assert [m["path"] for m in first["models"]] == sorted(m["path"] for m in first["models"])


def test_the_largest_file_starts_first_and_the_report_keeps_the_files_order(tmp_path):
    folder, started = tmp_path / "models", tmp_path / "started.txt"
    folder.mkdir()
    for name, padding in (("a.py", 0), ("b.py", 3000), ("c.py", 1000)):
        (folder / name).write_text(
            f"open({str(started)!r}, 'a').write({name!r} + '\\n')\n" + "#" * padding + "\n"
            + "import torch.nn as nn\n"
            + MODEL.format(name="Net", width=2, init="", forward=""))
    proc = run_cli(folder, "-j", "1", "--no-probe", "--format", "json")
    assert started.read_text().split() == ["b.py", "c.py", "a.py"]
    assert [m["path"] for m in _json(proc)["models"]] == [
        str(folder / n) for n in ("a.py", "b.py", "c.py")]


# Processes started by one test carry its tag in their environment, so the process table
# shows whether any of them is still running after bnlint stopped.
def _tagged(tag: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:  # ended meanwhile, or not ours
                continue
            if f"BNLINT_TEST_TAG={tag}".encode() in environ.split(b"\0"):
                found.append(int(entry.name))
    return found


def _gone(tag: str) -> list[int]:
    """The tagged processes still there after waiting up to 30 s for the kernel to end them
    (they are ended by signals, which take effect asynchronously)."""
    for _ in range(300):
        left = [pid for pid in _tagged(tag) if not _zombie(pid)]
        if not left:
            return []
        time.sleep(0.1)
    return left


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _start_on_a_hanging_model(write_model, tmp_path) -> tuple[subprocess.Popen, str]:
    marker = tmp_path / "forward-started"
    path = _model_file(write_model, ("Slow", "", f"open({str(marker)!r}, 'w').close(); "
                                                "time.sleep(600)"))
    tag = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, "-m", "bnlint", str(path), "--timeout", "600"],
                            cwd=ROOT, env={**CLI_ENV, "BNLINT_TEST_TAG": tag},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(3000):  # until the model code runs in the forked child
        if marker.exists() or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()
    assert len(_tagged(tag)) >= 3  # bnlint, the fork server, the child on the file
    return proc, tag


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_bnlint_leaves_no_process_behind(write_model, tmp_path, sig):
    proc, tag = _start_on_a_hanging_model(write_model, tmp_path)
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert f"stopped by {sig.name}" in err and "Traceback" not in err
    assert _gone(tag) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_worker_ends_itself_when_bnlint_is_killed(write_model, tmp_path):
    proc, tag = _start_on_a_hanging_model(write_model, tmp_path)
    proc.kill()  # no handler runs: the server and its child must notice on their own
    proc.communicate(timeout=120)
    assert _gone(tag) == []


FORGE = """
import json
import os

for fd in range(1, 21):
    for line in ('{"event": "done"}', '{"event": "end", "file": 0}',
                 json.dumps({"token": "0" * 32, "event": "done"})):
        try:
            os.write(fd, (line + "\\n").encode())
        except OSError:
            pass
print('{"event": "done"}')
"""


def test_forged_events_on_small_descriptors_change_nothing(write_model):
    with_model = _model_file(write_model, ("Net", "", ""), head=FORGE)
    report = _json(run_cli(with_model, "--no-probe", "--format", "json"))
    assert [m["name"] for m in report["models"]] == ["Net"] and report["errors"] == []
    without = write_model("import torch\n" + FORGE, name="nothing.py")
    proc = run_cli(without, "--no-probe")
    assert proc.returncode == 0 and "not linted: no model found" in proc.stdout, proc.stderr


def test_writing_on_the_channel_itself_is_an_internal_error_not_a_pass(write_model):
    path = _model_file(write_model, ("Net", "", ""), head="""
for fd in range(3, 1024):
    try:
        if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
            os.write(fd, b'{"event": "done"}\\n')
    except OSError:
        pass
""")
    proc = run_cli(path, "--no-probe")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "internal error" in proc.stderr and "Traceback" not in proc.stderr


def test_the_channel_reads_only_this_runs_messages():
    token = channel.new_token()
    read, write = os.pipe()
    reader = channel.Reader(channel.high_fd(read), token)
    assert reader.fd > 20 and not os.get_inheritable(reader.fd)
    os.write(write, channel.encode(token, "end", file=0))
    assert list(reader.feed()) == [{"token": token, "event": "end", "file": 0}]
    for forged in (b'{"event": "done"}\n', channel.encode(channel.new_token(), "done"),
                   b"done\n", b'["done"]\n', b'{"token": "%s"}\n' % token.encode()):
        os.write(write, forged)
        with pytest.raises(channel.ChannelError):
            list(reader.feed())
        reader.buffer = b""
    os.close(write)
    assert reader.feed() is None
    os.close(reader.fd)
