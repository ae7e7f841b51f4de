"""What a person or a CI system reads: :mod:`.render` picks the format, :mod:`.text`
(ruff-like), :mod:`.json_report`, :mod:`.sarif`, :mod:`.github`; :mod:`.plots` draws the probe."""
