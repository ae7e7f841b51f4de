"""Hugging Face transformers models built from small configs, offline (nothing downloaded):
found in the user's file like any factory, given the inputs their config describes, linted
through hooks with every parameter covered, and located in the user's file."""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import readme_snippet, run_cli

pytest.importorskip("transformers")
os.environ["HF_HUB_OFFLINE"] = "1"  # from_config downloads nothing; make sure of it

from bnlint.discover.inputs import infer_inputs

# The README's BERT factory, and GPT-2 and ViT beside it.
OTHERS = """

from transformers import AutoModelForImageClassification, GPT2Config, ViTConfig


def tiny_gpt2():
    return AutoModelForSequenceClassification.from_config(GPT2Config(
        vocab_size=1000, n_embd=64, n_layer=2, n_head=2, n_positions=128, num_labels=3,
        bos_token_id=1, eos_token_id=2, pad_token_id=0))


def tiny_vit():
    return AutoModelForImageClassification.from_config(ViTConfig(
        image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, num_labels=3))
"""


@pytest.fixture(scope="module")
def models_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("hf") / "models.py"
    path.write_text(readme_snippet("Hugging Face transformers", "python") + OTHERS)
    return path


@pytest.fixture(scope="module")
def module(models_file):
    from bnlint.discover.load import load_module
    return load_module(models_file)


def test_factories_are_found_linted_through_hooks_and_located_in_the_users_file(models_file):
    proc = run_cli(models_file, "--no-probe", "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    models = {m["name"]: m for m in json.loads(proc.stdout)["models"]}
    assert sorted(models) == ["tiny_bert", "tiny_gpt2", "tiny_vit"]
    for model in models.values():
        assert model["trace"]["method"] == "hooks" and model["trace"]["coverage"] == 1.0
        assert {f["path"] for f in model["findings"]} == {str(models_file)}
    assert "attention_mask" not in proc.stderr  # no padding in the inputs: no warning about it


@pytest.mark.parametrize("name", ["tiny_bert", "tiny_gpt2"])
def test_token_inputs_are_words_of_the_vocabulary(module, models_file, name):
    model = getattr(module, name)()
    first, _ = infer_inputs(model, name, 8, models_file).first_that_runs(lambda inputs: None)
    inputs, how = first.tensors, first.how
    assert how.startswith("from the transformers config: input_ids of 16 tokens")
    ids, config = inputs[0], model.config
    assert ids.dtype == torch.long and ids.shape == (8, 16)
    special = {config.pad_token_id, config.bos_token_id, config.eos_token_id}
    assert int(ids.min()) >= 0 and int(ids.max()) < config.vocab_size
    assert not any(int(t) in special for t in ids.flatten())
    # BERT's forward takes (input_ids, attention_mask): all ones, since nothing is padding.
    if name == "tiny_bert":
        assert len(inputs) == 2 and torch.equal(inputs[1], torch.ones_like(ids))
    else:
        assert len(inputs) == 1
    model.eval()(*inputs)  # runs as the model expects


def test_image_inputs_have_the_configured_size(module, models_file):
    model = module.tiny_vit()
    first, _ = infer_inputs(model, "tiny_vit", 4, models_file).first_that_runs(
        lambda inputs: None)
    (pixels,), how = first.tensors, first.how
    assert how == "from the transformers config: pixel_values of 3x32x32 (random values)"
    assert pixels.shape == (4, 3, 32, 32)


def test_the_probe_runs_on_each_model(models_file):
    proc = run_cli(models_file, "--probe-steps", "2", "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    for model in json.loads(proc.stdout)["models"]:
        assert model["probe"] is not None and model["probe"]["steps"] == 2, model["notes"]
        assert "cross-entropy" in model["probe"]["loss"]


def test_post_ln_bert_is_told_apart_from_pre_ln_gpt2_and_vit(models_file):
    """BERT adds then normalises (post-LN: two sublayers per layer); GPT-2 and ViT normalise
    each branch's input (pre-LN). BNL501 needs an Adam-like lr of at least 5e-4 and no warm-up;
    2 layers is shallow, so it is info."""
    proc = run_cli(models_file, "--no-probe", "--optimizer", "adamw,lr=1e-3", "--format", "json")
    found = {m["name"]: [f for f in m["findings"] if f["code"] == "BNL501"]
             for m in json.loads(proc.stdout)["models"]}
    assert found["tiny_gpt2"] == found["tiny_vit"] == []
    (bert,) = found["tiny_bert"]
    assert bert["severity"] == "info" and len(bert["evidence"]["post_ln_sublayers"]) == 4
    assert bert["module"] == "bert.encoder.layer.0.attention.output.LayerNorm"
    warmed = run_cli(models_file, "--no-probe", "--optimizer", "adamw,lr=1e-3",
                     "--warmup-steps", "1000", "--format", "json")
    assert "BNL501" not in warmed.stdout


@pytest.mark.slow
def test_no_static_warning_on_bert_gpt2_and_vit_at_their_default_configs(tmp_path):
    path = tmp_path / "defaults.py"
    path.write_text(
        "from transformers import (AutoModelForImageClassification,\n"
        "                          AutoModelForSequenceClassification, BertConfig, GPT2Config,\n"
        "                          ViTConfig)\n\n\n"
        "def bert():\n    return AutoModelForSequenceClassification.from_config(BertConfig())\n\n\n"
        "def gpt2():\n    return AutoModelForSequenceClassification.from_config(\n"
        "        GPT2Config(pad_token_id=0))\n\n\n"
        "def vit():\n    return AutoModelForImageClassification.from_config(ViTConfig())\n")
    proc = run_cli(path, "--no-probe", "--format", "json", "--fail-on", "warning",
                   timeout=1200)
    data = json.loads(proc.stdout)
    assert [m["name"] for m in data["models"]] == ["bert", "gpt2", "vit"]
    assert data["summary"]["warning"] == data["summary"]["error"] == 0, proc.stdout
    assert proc.returncode == 0
