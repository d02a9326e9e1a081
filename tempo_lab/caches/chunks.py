"""Chunk reuse: a chunk's cache computed alone, placed behind another prefix, against the full recompute.

    reuse = reuse_chunk(lm, prefix_ids, chunk_ids)   # (1, P) and (1, m) token ids
    reuse.deviation      # per layer: relative error of the chunk's keys and values against the recompute
    reuse.tv, reuse.top1_agrees                       # the next-token distribution after the chunk
    reuse.restored       # per layer: TV left when that layer's recomputed chunk cache alone is put back

The chunk's first ``m - 1`` tokens are run alone at positions ``0 .. m-2`` (what a serving system keeps),
their cache moved by ``P`` (:func:`~tempo_lab.caches.reposition`: the keys' rotation, exact) and appended to
the prefix's own cache; the chunk's last token is then fed at position ``P + m - 1`` as the query whose
next-token distribution is compared with the full recompute of prefix and chunk. Layer 0's keys and values
of the chunk equal the recompute's (they depend only on each token and its position): the deviation starts
at layer 1, where the chunk's hidden states never saw the prefix. ``restored[l]`` puts back layer ``l``'s
recomputed keys and values of the chunk alone (activation patching on the cache) and measures the TV left,
so ``1 - restored / tv`` is the share of the gap that layer's cache closes.

Sliding-window families are refused for now (their cache layers hold only the window).

Contents: :class:`ChunkReuse`, :func:`reuse_chunk`, :func:`concat`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pandas as pd
import torch
from transformers import DynamicCache

from tempo_lab import masks
from tempo_lab.caches.reposition import reposition
from tempo_lab.families import family_of
from tempo_lab.generators import DecodingCore
from tempo_lab.loaded import LoadedModel


@dataclass
class ChunkReuse:
    """What :func:`reuse_chunk` measured. ``reused`` / ``recomputed``: the query's next-token probabilities
    ``(vocab,)``; ``deviation``: per layer ``key_error`` and ``value_error``, ``‖reused − recomputed‖ /
    ‖recomputed‖`` over the chunk's cached slots; ``restored``: per layer the TV left when that layer's
    recomputed chunk cache is put back alone, ``(layers,)``."""

    reused: torch.Tensor
    recomputed: torch.Tensor
    deviation: pd.DataFrame
    restored: torch.Tensor

    @property
    def tv(self) -> float:
        """Total variation between the reused and the recomputed next-token distributions."""
        return float(0.5 * (self.reused - self.recomputed).abs().sum())

    @property
    def top1_agrees(self) -> bool:
        return int(self.reused.argmax()) == int(self.recomputed.argmax())


def concat(first: DynamicCache, second: DynamicCache) -> DynamicCache:
    """A cache holding ``first``'s slots, then ``second``'s, layer by layer (neither is modified)."""
    out = copy.copy(first)
    out.layers = []
    for a, b in zip(first.layers, second.layers, strict=True):
        part = copy.copy(a)
        part.keys, part.values = torch.cat([a.keys, b.keys], 2), torch.cat([a.values, b.values], 2)
        out.layers.append(part)
    return out


def _with_layer(cache: DynamicCache, layer: int, source: DynamicCache) -> DynamicCache:
    """A copy of ``cache`` (each layer copied, so a pass on it grows the copy) whose layer ``layer`` is
    ``source``'s."""
    out = copy.copy(cache)
    out.layers = [copy.copy(source.layers[i] if i == layer else held) for i, held in enumerate(cache.layers)]
    return out


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).float().norm() / b.float().norm().clamp_min(1e-30))


def reuse_chunk(lm: LoadedModel, prefix: torch.Tensor, chunk: torch.Tensor) -> ChunkReuse:
    """Reuse ``chunk`` ``(1, m)``, m >= 2, computed alone, behind ``prefix`` ``(1, P)`` (see the module
    docstring)."""
    for name, ids, least in (("prefix", prefix, 0), ("chunk", chunk, 2)):
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] < least:
            got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else ids
            raise ValueError(f"{name} must be token ids of shape (1, n) with n >= {least}, got {got!r}")
    if family_of(lm.model).window is not None:
        raise ValueError(f"{type(lm.model).__name__} has sliding-window layers: chunk reuse is not supported")
    core = DecodingCore(lm)
    p, m = prefix.shape[1], chunk.shape[1]
    query, held = chunk[:, -1:], chunk[:, :-1]
    alone = core.prefill(held).cache
    moved = reposition(lm, alone, float(p)) if p else alone
    full = core.prefill(torch.cat([prefix, held], 1)).cache
    cached = concat(core.prefill(prefix).cache, moved) if p else moved
    where = torch.tensor([[float(p + m - 1)]])

    def next_probs(cache: DynamicCache) -> torch.Tensor:  # on a copy: the forward appends the query
        sees = masks.causal_mask(1, p + m, dtype=lm.dtype)
        logits = core.forward(query, where, sees, _with_layer(cache, 0, cache), last=True)
        return torch.softmax(logits[0, -1].float(), -1).cpu()

    reused, recomputed = next_probs(cached), next_probs(full)
    rows = []
    for layer, (ours, theirs) in enumerate(zip(cached.layers, full.layers, strict=True)):
        rows.append({
            "layer": layer,
            "key_error": _relative(ours.keys[:, :, p:], theirs.keys[:, :, p:]),
            "value_error": _relative(ours.values[:, :, p:], theirs.values[:, :, p:]),
        })  # fmt: skip
    restored = torch.tensor([
        float(0.5 * (next_probs(_with_layer(cached, layer, full)) - recomputed).abs().sum())
        for layer in range(len(cached.layers))
    ])  # fmt: skip
    return ChunkReuse(reused, recomputed, pd.DataFrame(rows), restored)
