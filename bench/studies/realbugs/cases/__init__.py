"""The ported programs, one file per version (``<case>_buggy.py``, ``<case>_fixed.py``); see
``bench/studies/realbugs/manifest.py`` for where each comes from.
"""
