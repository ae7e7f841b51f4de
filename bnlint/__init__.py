"""bnlint: a linter and auto-repair tool for PyTorch models.

Command line: ``bnlint model.py``. Python: ``bnlint.lint(model, inputs)``,
``bnlint.probe(model, inputs)``, ``bnlint.fix(model, inputs)`` (see :mod:`bnlint.api`).
Importing the package does not import torch; the API functions load it on first use.
"""

from .findings import VERSION as __version__  # noqa: N811 - the package's version
from .findings import Finding, ModelReport, Report

__all__ = ["Finding", "ModelReport", "Report", "__version__", "fix", "lint", "probe"]


def lint(model, inputs, targets=None, config=None, **kwargs) -> ModelReport:
    """Lint ``model`` with example ``inputs``; see :func:`bnlint.api.lint`."""
    from . import api
    return api.lint(model, inputs, targets, config, **kwargs)


def probe(model, inputs, targets=None, **options):
    """Measure ``model`` in a short forward/backward and training run; see
    :func:`bnlint.api.probe`."""
    from . import api
    return api.probe(model, inputs, targets, **options)


def fix(model, inputs, targets=None, **options):
    """Repair a copy of ``model``: ``(fixed_model, FixReport)``; see :func:`bnlint.api.fix`."""
    from . import api
    return api.fix(model, inputs, targets, **options)
