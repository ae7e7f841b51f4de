"""User code runs in a child process: :mod:`.runner` is the parent side (no torch), and
:mod:`.worker` the child that imports model files and lints them."""
