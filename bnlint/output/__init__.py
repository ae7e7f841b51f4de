"""What a person or a CI system reads: :mod:`.formats` (text, json, sarif, github) and
:mod:`.plots`."""
