"""Fixes: source patches of the user's file (:mod:`.source`, applied by :mod:`.apply`) and
repaired copies of a model (:mod:`.model`)."""
