"""Studies: how well bnlint detects what it claims, on labelled suites and random models."""
