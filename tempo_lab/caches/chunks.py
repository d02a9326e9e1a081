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

Partial recompute (``partial=``): some of the chunk's tokens are run again behind the prefix, layer by
layer, while the others keep their reused keys and values (each recomputed token attends to the prefix, to
the reused tokens before it and to the recomputed ones up to itself, in text order):

- ``("first", k)``: the chunk's first ``k`` tokens (EPIC's LegoLink: a chunk's first tokens are its own
  attention sinks, which behind a prefix they should not be);
- ``("deviating", k)``: the ``k`` tokens whose layer-1 values deviate most from the recompute (CacheBlend's
  selection; layer 1's keys and values depend only on layer 0's outputs, which CacheBlend recomputes for every
  token, so the selection needs nothing deeper than what it computes).

Recomputing every token is the full recompute (a test checks it to 1e-5); recomputing none is the reuse.

Sliding-window families are supported while prefix and chunk fit inside the window
(:func:`~tempo_lab.caches.slots.check_whole` refuses longer ones, naming the lengths).

Contents: :class:`ChunkReuse`, :func:`reuse_chunk`, :data:`SELECTIONS`, :func:`selected`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from transformers import DynamicCache

from tempo_lab.caches.reposition import reposition
from tempo_lab.caches.slots import concat, keep, stack, with_layer
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel, widened

SELECTIONS = ("first", "deviating")


@dataclass
class ChunkReuse:
    """What :func:`reuse_chunk` measured. ``reused`` / ``recomputed``: the query's next-token probabilities
    ``(vocab,)``; ``deviation``: per layer ``key_error`` and ``value_error``, ``‖reused − recomputed‖ /
    ``‖recomputed‖`` over the chunk's cached slots; ``restored``: per layer the TV left when that layer's
    recomputed chunk cache is put back alone, ``(layers,)``; ``partial``: per ``(selection, tokens)`` asked
    for, the TV and top-1 agreement with the recompute when those tokens are recomputed."""

    reused: torch.Tensor
    recomputed: torch.Tensor
    deviation: pd.DataFrame
    restored: torch.Tensor
    partial: pd.DataFrame

    @property
    def tv(self) -> float:
        """Total variation between the reused and the recomputed next-token distributions."""
        return _tv(self.reused, self.recomputed)

    @property
    def top1_agrees(self) -> bool:
        return int(self.reused.argmax()) == int(self.recomputed.argmax())


def _tv(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(0.5 * (a - b).abs().sum())


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(widened(a - b).norm() / widened(b).norm().clamp_min(1e-30))


def selected(kind: str, k: int, deviation: torch.Tensor) -> list[int]:
    """The chunk tokens (indices into the cached chunk, sorted) that ``(kind, k)`` recomputes;
    ``deviation``: ``(m - 1,)`` each cached chunk token's layer-1 value deviation."""
    m = deviation.shape[0]
    if kind not in SELECTIONS:
        raise ValueError(f"partial selection must be one of {', '.join(SELECTIONS)}, got {kind!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= m:
        raise ValueError(f"the chunk has {m} cached tokens: recompute 0..{m} of them, not {k!r}")
    if kind == "first":
        return list(range(k))
    return sorted(int(i) for i in deviation.topk(k).indices)


def _check(prefix: torch.Tensor, chunk: torch.Tensor) -> None:
    for name, ids, least in (("prefix", prefix, 0), ("chunk", chunk, 2)):
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] < least:
            got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else ids
            raise ValueError(f"{name} must be token ids of shape (1, n) with n >= {least}, got {got!r}")


def reuse_chunk(
    lm: LoadedModel,
    prefix: torch.Tensor,
    chunk: torch.Tensor,
    *,
    partial: Sequence[tuple[str, int]] = (),
) -> ChunkReuse:
    """Reuse ``chunk`` ``(1, m)``, m >= 2, computed alone, behind ``prefix`` ``(1, P)``; ``partial``:
    ``(selection, k)`` pairs to recompute (see the module docstring)."""
    _check(prefix, chunk)
    core = DecodingCore(lm)
    p, m = prefix.shape[1], chunk.shape[1]
    if core.family.window is not None and p + m > core.family.window - 1:
        raise ValueError(
            f"{type(lm.model).__name__} slides over {core.family.window} tokens; prefix ({p}) and chunk "
            f"({m}) hold {p + m}: chunk reuse needs them to fit in {core.family.window - 1}"
        )
    query, held = chunk[:, -1:], chunk[:, :-1]
    alone = core.prefill(held).cache
    moved = reposition(lm, alone, float(p)) if p else alone
    full = core.prefill(torch.cat([prefix, held], 1)).cache
    cached = concat(core.prefill(prefix).cache, moved) if p else moved
    layers = len(cached.layers)
    # one pass, one row per cache: reused, recomputed, then each layer's recomputed cache put back alone
    rows = stack([cached, full, *(with_layer(cached, layer, full) for layer in range(layers))])
    where = torch.tensor([[float(p + m - 1)]])
    logits = core.forward(query.expand(layers + 2, -1), Layout(where), rows, last=True)
    probs = torch.softmax(widened(logits[:, -1]), -1).cpu()
    reused, recomputed = probs[0], probs[1]
    deviation = pd.DataFrame([
        {"layer": layer,
         "key_error": _relative(ours.keys[:, :, p:], theirs.keys[:, :, p:]),
         "value_error": _relative(ours.values[:, :, p:], theirs.values[:, :, p:])}
        for layer, (ours, theirs) in enumerate(zip(cached.layers, full.layers, strict=True))
    ])  # fmt: skip
    restored = torch.tensor([_tv(row, recomputed) for row in probs[2:]])
    depth = min(1, layers - 1)
    per_token = widened(cached.layers[depth].values[0, :, p:] - full.layers[depth].values[0, :, p:]).norm(
        dim=(0, 2)
    ) / widened(full.layers[depth].values[0, :, p:]).norm(dim=(0, 2)).clamp_min(1e-30)  # (m - 1,)
    parts = []
    for kind, k in partial:
        chosen = selected(kind, k, per_token)
        probs_k = _recompute(core, prefix, chunk, cached, chosen)
        parts.append({"selection": kind, "tokens": k, "tv": _tv(probs_k, recomputed),
                      "top1_agrees": int(probs_k.argmax()) == int(recomputed.argmax())})  # fmt: skip
    columns = ["selection", "tokens", "tv", "top1_agrees"]
    return ChunkReuse(reused, recomputed, deviation, restored, pd.DataFrame(parts, columns=columns))


def _recompute(
    core: DecodingCore, prefix: torch.Tensor, chunk: torch.Tensor, cached: DynamicCache, chosen: list[int]
) -> torch.Tensor:
    """The query's next-token probabilities ``(vocab,)`` when the chunk tokens ``chosen`` are run again on
    top of the others' reused cache: one pass over the chosen tokens and the query, in text order."""
    p, m = prefix.shape[1], chunk.shape[1]
    reused = [i for i in range(m - 1) if i not in set(chosen)]
    kept = keep(cached, torch.tensor([list(range(p)) + [p + i for i in reused]]))
    fed = [*chosen, m - 1]
    order = torch.tensor([-1] * p + reused + fed)  # each slot's index in the chunk (the prefix: before it)
    sees = (order[None, :] <= torch.tensor(fed)[:, None])[None, None]  # (1, 1, q, kv)
    where = torch.tensor([[float(p + i) for i in fed]])
    logits = core.forward(chunk[:, fed], Layout(where, sees), kept, last=True)
    return torch.softmax(widened(logits[0, -1]), -1).cpu()
