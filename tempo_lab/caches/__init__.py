"""Whole KV caches moved in position (attention sinks, rolling windows, chunk reuse), and how far a moved
cache is from a recompute.

- :mod:`.reposition`: :func:`reposition`, the one primitive: cached slots given new positions, the keys'
  rotation corrected per layer (exact in layer 0's keys and for a 1-layer model; the deeper layers keep what
  the old positions left in them);
- :mod:`.rolling`: :class:`Rolling` and :func:`rolling_logprobs`, sinks plus a window slid along a long text
  (StreamingLLM, a plain window, sinks not re-positioned), each against its recomputed-window reference.
"""

from tempo_lab.caches.reposition import check_shift, reposition
from tempo_lab.caches.rolling import Rolling, kept_slots, rolling_logprobs

__all__ = ["Rolling", "check_shift", "kept_slots", "reposition", "rolling_logprobs"]
