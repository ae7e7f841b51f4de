"""bnlint/discover/checkpoints.py: which model files load stored weights (BNL306 stays silent on
those)."""

import pytest

from bnlint.discover.checkpoints import loading_call


@pytest.mark.parametrize("code,found", [
    ("model.load_state_dict(torch.load('a.pt'))", "load_state_dict(...) at line 1"),
    ("m = AutoModel.from_pretrained('bert-base-uncased')", "from_pretrained(...) at line 1"),
    ("backbone = resnet50(weights=ResNet50_Weights.DEFAULT)", "weights= at line 1"),
    ("backbone = timm.create_model('vit_small', pretrained=True)", "pretrained= at line 1"),
    ("backbone = resnet50(weights=None)", None),
    ("backbone = timm.create_model('vit_small', pretrained=False)", None),
    ("net = nn.Linear(4, 2)\nnet.requires_grad_(False)", None),
])
def test_a_file_that_loads_weights_is_told_from_one_that_does_not(tmp_path, code, found):
    path = tmp_path / "model.py"
    path.write_text(code + "\n")
    assert loading_call(str(path)) == found


def test_an_unreadable_file_loads_nothing(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("def (:\n")
    assert loading_call(str(path)) is None
    assert loading_call(str(tmp_path / "missing.py")) is None
