"""The probe, a short measured forward/backward and training run: :mod:`.plan` (what to run,
from the model's FLOPs, before running), :mod:`.run` (the run and its result), :mod:`.taps`
(per-layer statistics), :mod:`.hessian` (the top curvature) and :mod:`.advice` (learning-rate
settings from the measurement). The probe measures; the rules (``bnlint.rules.measured``)
judge."""
