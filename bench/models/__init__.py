"""Models the benchmarks share."""
