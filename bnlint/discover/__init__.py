"""Discovery: from a model file to the models to lint, their example inputs and targets.

:mod:`.load` imports the file; :mod:`.models` finds the models in it; :mod:`.inputs` and
:mod:`.targets` find what to run them on.
"""
