"""Whether the model's file loads trained weights: a call that reads a checkpoint or pretrained
weights (``load_state_dict``, ``from_pretrained``, ``torch.load``, ``load_file``...) or passes
``weights=`` / ``pretrained=`` / ``checkpoint=`` to a constructor (torchvision's and timm's
spellings). Only the file's text is read (nothing runs)."""

from __future__ import annotations

import ast

from . import syntax

# calls, by the name they end in, that put stored values into a model's weights
_LOADING_CALLS = ("load_state_dict", "from_pretrained", "load", "load_file", "load_model",
                  "load_checkpoint", "load_from_checkpoint", "load_pretrained",
                  "load_state_dict_from_url", "load_weights", "hf_hub_download")
# constructor keywords that ask for stored weights, unless given None or False
_LOADING_KEYWORDS = ("weights", "pretrained", "checkpoint", "pretrained_cfg",
                     "checkpoint_path", "weights_path", "pretrained_weights")


def loading_call(path: str) -> str | None:
    """Where and how the file at ``path`` loads stored weights (``torch.load(...) at line
    12``), or None when it does not, or cannot be read."""
    read = syntax.parsed(path)
    if read is None:
        return None
    for node in ast.walk(read[0]):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in _LOADING_CALLS:
            return f"{name}(...) at line {node.lineno}"
        for kw in node.keywords:
            if kw.arg in _LOADING_KEYWORDS and not (isinstance(kw.value, ast.Constant)
                                                    and kw.value.value in (None, False)):
                return f"{kw.arg}= at line {node.lineno}"
    return None
