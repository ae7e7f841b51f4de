"""Real-world buggy training programs from published benchmarks, ported to PyTorch: the cases
(``manifest.py``, ``cases/``), their ground truth by training (``label.py``, ``labels.json``)
and bnlint's verdicts on them (``python -m bench.studies.realbugs``)."""
