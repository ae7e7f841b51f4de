"""Fixes: source patches of the user's file (:mod:`.source` makes an edit's replacements with
libcst, :mod:`.text` merges, applies and renders them, :mod:`.plan` composes and verifies them
per file), graph repairs of a model (:mod:`.repairs`) and the same repairs written as plain
PyTorch for the user's file (:mod:`.written`), and what a patch does to the model's state_dict
keys (:mod:`.keys`) with the code that loads an old checkpoint (:mod:`.checkpoint`)."""
