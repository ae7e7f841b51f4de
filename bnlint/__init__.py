"""bnlint: a linter and auto-repair tool for PyTorch models.

Command line: ``bnlint model.py``. Python: ``bnlint.lint(model, inputs)``,
``bnlint.probe(model, inputs)``, ``bnlint.fix(model, inputs)``. Importing the package does not
import torch; the API functions load it on first use.
"""

from .report import VERSION as __version__
from .report import Finding, ModelReport, Report

__all__ = ["Finding", "ModelReport", "Report", "fix", "lint", "probe", "__version__"]


def lint(model, inputs, targets=None, config=None, **kwargs) -> ModelReport:
    """Lint ``model`` with example ``inputs`` (tensor or tuple); see :func:`bnlint.engine.lint`.

    ``targets`` may be a tensor of regression targets."""
    from .discover import Targets
    from .engine import lint as _lint

    if targets is not None and not isinstance(targets, Targets):
        targets = Targets(targets.float(), float(targets.float().std()), "argument")
    return _lint(model, inputs, targets, config, **kwargs)


def probe(model, inputs, targets=None, **options):
    """Measure ``model`` in a short forward/backward and training run; see
    :func:`bnlint.probing.probe`."""
    from .probing import probe as _probe
    return _probe(model, inputs, targets, **options)


def fix(model, inputs, targets=None, **options):
    """Repair a copy of ``model``: ``(fixed_model, FixReport)``; see
    :func:`bnlint.fixes.model.fix`."""
    from .fixes.model import fix as _fix
    return _fix(model, inputs, targets, **options)
