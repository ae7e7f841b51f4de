"""User code runs in child processes: :mod:`.runner` is the parent side (no torch), :mod:`.server`
the fork server that imports torch once and forks a :mod:`.child` per file, and :mod:`.channel`
the token-checked messages between them."""
