"""The rules: each a YAML page (``BNL*.yaml``: what a person reads and tunes) beside the Python
that finds it. :mod:`.catalog` loads the pages (no torch); :mod:`.registry` maps a rule to its
finder (a ``pattern`` matched by :mod:`.patterns`, or a function in a family module)."""
