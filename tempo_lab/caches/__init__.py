"""Whole KV caches moved in position (attention sinks, rolling windows, chunk reuse), and how far a moved
cache is from a recompute.

- :mod:`.reposition`: :func:`reposition`, the one primitive: cached slots given new positions, the keys'
  rotation corrected per layer (exact in layer 0's keys and for a 1-layer model; the deeper layers keep what
  the old positions left in them).
"""

from tempo_lab.caches.reposition import check_shift, reposition

__all__ = ["check_shift", "reposition"]
