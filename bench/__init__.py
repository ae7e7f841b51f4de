"""bnlint's benchmarks, calibrations and studies, each a script run as a module from the
repository root (``python -m bench.benchmarks.speed``), printing a markdown table that
bench/RESULTS.md records."""
