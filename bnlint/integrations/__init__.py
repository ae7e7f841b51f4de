"""Glue for the tools users already run: pytest (``pytest_plugin``), PyTorch Lightning
(``lightning``); Hugging Face transformers models need none (see README). Each module imports
its tool only when used, so bnlint runs without them."""
