"""bnlint's benchmarks, calibrations and studies, each a script run as a module from the
repository root (``python -m bench.benchmarks.speed``), printing a markdown table that
bench/RESULTS.md records."""

import os

# The benchmarks and studies time and compare linting runs: they run bnlint without its results
# cache (which would serve a second run of a file from the first), in every process they start;
# bench/benchmarks/folders.py turns it on for its cached rows.
os.environ["BNLINT_NO_CACHE"] = "1"
