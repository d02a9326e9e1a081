"""Whole KV caches moved in position (attention sinks, rolling windows, chunk reuse), and how far a moved
cache is from a recompute.

- :mod:`.reposition`: :func:`reposition`, the one primitive: cached slots given new positions, the keys'
  rotation corrected per layer (exact in layer 0's keys and for a 1-layer model; the deeper layers keep what
  the old positions left in them);
- :mod:`.rolling`: :class:`Rolling` and :func:`rolling_logprobs`, sinks plus a window slid along a long text
  (StreamingLLM, a plain window, sinks not re-positioned), each against its recomputed-window reference;
- :mod:`.chunks`: :func:`reuse_chunk`, a chunk's cache computed alone and reused behind another prefix,
  against the full recompute: per-layer deviation of its keys and values, the next-token TV and top-1, and
  the TV left when each layer's recomputed cache is put back alone;
- :mod:`.sinks`: :func:`sink_mass`, :func:`massive_activations`, :func:`sink_ablation`, the attention sinks
  that make a rolling window work and what happens when one is removed, zeroed or set to its mean.
"""

from tempo_lab.caches.chunks import ChunkReuse, concat, reuse_chunk
from tempo_lab.caches.reposition import check_shift, reposition
from tempo_lab.caches.rolling import Rolling, evict, kept_slots, rolling_logprobs
from tempo_lab.caches.sinks import ABLATIONS, massive_activations, sink_ablation, sink_mass

__all__ = [
    "ABLATIONS",
    "ChunkReuse",
    "Rolling",
    "check_shift",
    "concat",
    "evict",
    "kept_slots",
    "reposition",
    "reuse_chunk",
    "rolling_logprobs",
    "massive_activations",
    "sink_ablation",
    "sink_mass",
]
