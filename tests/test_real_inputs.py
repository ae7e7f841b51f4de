"""Real model files: their code runs as Python runs it, every parameter is read, inputs are
inferred for the sizes and kinds real models take, and folder runs skip what the user
excludes."""

from __future__ import annotations

import json

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
