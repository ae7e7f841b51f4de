"""Repairs: source patches of the user's file (:mod:`.source`)."""
