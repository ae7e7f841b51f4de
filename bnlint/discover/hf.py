"""Example inputs for Hugging Face transformers models (``from_config(...)``), read from the
model's ``main_input_name`` and config without importing transformers: token ids drawn from the
vocabulary without its special tokens (so no position is padding and an all-ones attention mask
is right), or pixel values at the configured image size."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from .. import config as defaults

_SPECIAL_TOKENS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id",
                   "cls_token_id", "mask_token_id", "unk_token_id")


def _second_parameter(model: nn.Module) -> str | None:
    names = list(inspect.signature(model.forward).parameters)
    return names[1] if len(names) > 1 else None


Described = tuple[tuple[torch.Tensor, ...], str]  # the inputs, and how they were chosen


def _token_inputs(model: nn.Module, config, batch: int, device: torch.device) -> Described | None:
    vocab = getattr(config, "vocab_size", None)
    if not isinstance(vocab, int) or vocab < 2:
        return None
    special = {getattr(config, k, None) for k in _SPECIAL_TOKENS}
    words = torch.tensor([i for i in range(vocab) if i not in special] or list(range(vocab)))
    longest = next((n for n in (getattr(config, k, None) for k in
                                ("max_position_embeddings", "n_positions", "max_length"))
                    if isinstance(n, int) and n > 0), defaults.TOKENS)
    ids = words[torch.randint(len(words), (batch, min(defaults.TOKENS, longest)))].to(device)
    how = (f"from the transformers config: input_ids of {ids.shape[1]} tokens of the "
           "vocabulary without its special tokens")
    if _second_parameter(model) == "attention_mask":  # (input_ids, attention_mask, ...): BERT
        return (ids, torch.ones_like(ids)), how + ", and an all-ones attention_mask"
    return (ids,), how


def _pixel_inputs(config, batch: int, device: torch.device) -> Described | None:
    size, channels = getattr(config, "image_size", None), getattr(config, "num_channels", 3)
    height, width = (size, size) if isinstance(size, int) else tuple(size or (None, None))[:2]
    if not (isinstance(height, int) and isinstance(width, int) and isinstance(channels, int)):
        return None
    return ((torch.randn(batch, channels, height, width, device=device),),
            f"from the transformers config: pixel_values of {channels}x{height}x{width}")


def example_inputs(model: nn.Module, batch: int, device: torch.device) -> Described | None:
    """Inputs for a transformers model and how they were chosen, or None for any other model
    (or input kind)."""
    config, name = getattr(model, "config", None), getattr(model, "main_input_name", None)
    if config is None or not isinstance(name, str):
        return None
    if name == "input_ids":
        return _token_inputs(model, config, batch, device)
    if name == "pixel_values":
        return _pixel_inputs(config, batch, device)
    return None
