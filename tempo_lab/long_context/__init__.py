"""Long context on real models: passkey retrieval by distance (position gaps) and by length (RULER's
``niah_single_1`` through lm-evaluation-harness), and long-text loss by position, for every extension method
(notebook 10, part b).

Contents: :mod:`.rules` (the claims' rules, registered before any data).
"""
