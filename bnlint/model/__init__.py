"""The model as a graph: :mod:`.graph` (the data), :mod:`.build` (torch.fx, else
:mod:`.hooked`), :mod:`.sandbox` (running the user's forward safely), :mod:`.ops` (op kinds),
:mod:`.sites` (where each module was built) and :mod:`.stats` (tensor statistics)."""
