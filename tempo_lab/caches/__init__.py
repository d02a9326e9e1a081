"""Whole KV caches moved in position (attention sinks, rolling windows, chunk reuse), and how far a moved
cache is from a recompute.

- :mod:`.reposition`: :func:`reposition`, the one primitive: cached slots given new positions, the keys'
  rotation corrected per layer (exact in layer 0's keys and for a 1-layer model; the deeper layers keep what
  the old positions left in them);
- :mod:`.slots`: cache surgery (:func:`keep`, :func:`evict`, :func:`concat`, :func:`stack`,
  :func:`with_layer`), sliding-window layers kept consistent;
- :mod:`.rolling`: :class:`Rolling` and :func:`rolling_logprobs`, sinks plus a window slid along a long text
  (StreamingLLM, a plain window, sinks not re-positioned; several at once as batch rows), each against its
  recomputed-window reference;
- :mod:`.chunks`: :func:`reuse_chunk`, a chunk's cache computed alone and reused behind another prefix,
  against the full recompute: per-layer deviation of its keys and values, the next-token TV and top-1, and
  the TV left when each layer's recomputed cache is put back alone, and the TV left when some of its tokens
  are recomputed (EPIC's first tokens, CacheBlend's most deviating ones);
- :mod:`.study`: :func:`run_cache_study` and :func:`read_cache_study`, notebook 11's study in a verified
  results folder;
- :mod:`.sinks`: :func:`sink_mass`, :func:`massive_activations`, :func:`sink_ablation`, the attention sinks
  that make a rolling window work and what happens when one is removed, zeroed or set to its mean.
"""

from tempo_lab.caches.chunks import SELECTIONS, ChunkReuse, reuse_chunk, selected
from tempo_lab.caches.reposition import check_shift, reposition
from tempo_lab.caches.rolling import Rolling, kept_slots, recomputed_steps, rolled_steps, rolling_logprobs
from tempo_lab.caches.sinks import ABLATIONS, massive_activations, massive_means, sink_ablation, sink_mass
from tempo_lab.caches.slots import check_whole, concat, evict, keep, stack, with_layer
from tempo_lab.caches.study import TABLES, CacheSpec, read_cache_study, run_cache_study, study_spec

__all__ = [
    "ABLATIONS",
    "SELECTIONS",
    "TABLES",
    "CacheSpec",
    "ChunkReuse",
    "Rolling",
    "check_shift",
    "check_whole",
    "concat",
    "evict",
    "keep",
    "kept_slots",
    "massive_activations",
    "massive_means",
    "read_cache_study",
    "recomputed_steps",
    "reposition",
    "reuse_chunk",
    "rolled_steps",
    "rolling_logprobs",
    "run_cache_study",
    "selected",
    "sink_ablation",
    "sink_mass",
    "stack",
    "study_spec",
    "with_layer",
]
