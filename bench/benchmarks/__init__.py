"""Speed and memory: what bnlint costs (targets checked here, never in tests)."""
