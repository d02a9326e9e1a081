"""The package's plumbing: what the foundations, generators, studies and slices use, and a user rarely calls.

- :mod:`.checks`: the input checks every public function runs first (one message per kind of error, naming
  the argument and its value);
- :mod:`.scoped`: per-attention-module state of the blocks open in the current context;
- :mod:`.moved`: the old import paths of renamed modules, forwarding with a deprecation warning;
- :mod:`.execution` and :mod:`.series`: one notebook under papermill, and the notebook series
  (``tempo-lab run``, :mod:`tempo_lab.cli`).
"""
