"""Fixes: source patches of the user's file (:mod:`.source` makes an edit's replacements with
libcst, :mod:`.text` merges, applies and renders them, :mod:`.plan` composes and verifies them
per file) and repaired copies of a model (:mod:`.repairs`)."""
