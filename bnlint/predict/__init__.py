"""Predictions at initialisation, without a backward pass: :mod:`.theory` (the formulas) and
:mod:`.flow` (them chained over a model's graph)."""
