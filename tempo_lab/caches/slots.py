"""Cache surgery on slots: keep some slots, evict one, append one cache to another, stack caches as batch
rows, swap one layer. Every function returns a new cache and leaves the ones given untouched.

    kept = keep(cache, torch.tensor([[0, 1, 5, 6]]))   # (batch or 1, kept): slot indices per row
    fewer = evict(cache, 4)                            # every slot but 4 (or one slot per row: [4, 0])
    both = concat(first, second)                       # first's slots, then second's, layer by layer
    rows = stack([a, b, c])                            # batch rows a, b, c (batch-1 caches, same length)
    mixed = with_layer(cache, 3, other)                # layer 3 from other, the rest from cache

Sliding-window layers (Gemma 2/3, Mistral, ...) count the tokens they have seen (``cumulative_length``) and
drop slots older than the window. The surgery here keeps that count equal to the slots held, which is only
right while the layer still holds every slot it was given: a sliding layer that has dropped slots, or that
would hold more than ``sliding_window - 1`` slots, is refused with :class:`ValueError` naming the layer and
the lengths (the slots it dropped are gone; re-computing is the only way back).

Caches put together must be of one model: the same layers, key heads and head width (refused naming both
shapes otherwise); :func:`check_fits` holds a cache against a model.

Contents: :func:`keep`, :func:`evict`, :func:`concat`, :func:`stack`, :func:`with_layer`,
:func:`check_whole`, :func:`check_fits`.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Sequence

import torch
from torch import nn
from transformers import DynamicCache

from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel
from tempo_lab.plumbing import checks


def _shape(cache: object, what: str) -> list[tuple[int, int]]:
    """Per layer ``(key heads, head width)`` of a non-empty cache (``ValueError`` naming ``what``)."""
    if not isinstance(cache, DynamicCache):
        raise ValueError(f"{what} must be a DynamicCache, got {type(cache).__name__}")
    if not cache.layers or any(layer.keys is None for layer in cache.layers):
        raise ValueError(f"{what} holds no slots")
    return [(int(layer.keys.shape[1]), int(layer.keys.shape[3])) for layer in cache.layers]


def _same_model(a: object, b: object, names: tuple[str, str] = ("the first cache", "the second")) -> None:
    """Refuse two caches of different models: layer counts, key heads or head widths, naming both."""
    shape_a, shape_b = _shape(a, names[0]), _shape(b, names[1])
    if shape_a != shape_b:
        raise ValueError(
            f"{names[0]} has {len(shape_a)} layers of (key heads, head width) {shape_a[0]}, {names[1]} "
            f"{len(shape_b)} of {shape_b[0]}: caches of different models cannot be put together"
        )


# per model: the (key heads, head width) of each layer of its own cache, measured once (families store their
# keys differently, e.g. Falcon's multi-query attention one key head for every query head)
_OWN: weakref.WeakKeyDictionary[nn.Module, list[tuple[int, int]]] = weakref.WeakKeyDictionary()


def check_fits(lm: LoadedModel, cache: object) -> None:
    """Refuse a cache that is not ``lm``'s: another number of layers, key heads or head width than the cache
    the model itself makes (measured once per model, from one token)."""
    if lm.model not in _OWN:
        own = DynamicCache(config=lm.model.config)
        token = torch.zeros(1, 1, dtype=torch.long, device=lm.device)
        DecodingCore(lm).forward(token, Layout.contiguous(1), own)
        _OWN[lm.model] = _shape(own, "the model's own cache")
    shape, want = _shape(cache, "the cache"), _OWN[lm.model]
    if shape != want:
        raise ValueError(
            f"the cache has {len(shape)} layers of (key heads, head width) {shape[0]}; {lm.name} has "
            f"{len(want)} of {want[0]}: is it another model's cache?"
        )


def _is_sliding(layer) -> bool:
    return bool(getattr(layer, "is_sliding", False))


def check_whole(cache: DynamicCache, adding: int = 0) -> None:
    """Refuse a cache with a sliding layer that has dropped slots, or that would hold its window's worth
    after ``adding`` more slots (the next pass would drop the oldest, silently)."""
    for i, layer in enumerate(cache.layers):
        if not _is_sliding(layer) or layer.keys is None:
            continue
        held, seen, window = layer.keys.shape[2], layer.cumulative_length, layer.sliding_window
        if held != seen:
            raise ValueError(
                f"layer {i} slides over {window} tokens and has dropped {seen - held} of the {seen} it saw: "
                "its slots cannot be moved or re-assembled; keep caches shorter than the window"
            )
        if held + adding > window - 1:
            raise ValueError(
                f"layer {i} slides over {window} tokens; {held} + {adding} slots would need more than its "
                f"{window - 1}: keep caches shorter than the window"
            )


def _replaced(cache: DynamicCache, parts: list) -> DynamicCache:
    out = copy.copy(cache)
    out.layers = parts
    return out


def _with_tensors(layer, keys: torch.Tensor, values: torch.Tensor):
    part = copy.copy(layer)
    part.keys, part.values = keys, values
    if _is_sliding(layer):
        part.cumulative_length = keys.shape[2]
    return part


def keep(cache: DynamicCache, index: torch.Tensor) -> DynamicCache:
    """A cache of the slots ``index`` ``(batch or 1, kept)`` (int64) of each row of ``cache``, in that
    order."""
    check_whole(cache)
    length = cache.get_seq_length()
    if index.dim() != 2 or index.dtype != torch.long:
        raise ValueError(
            f"index must be int64 of shape (batch or 1, kept), got {tuple(index.shape)} {index.dtype}"
        )
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= length):
        bad = int(index[(index < 0) | (index >= length)][0])
        raise ValueError(f"slot {bad} is outside the cache (slots 0..{length - 1})")
    parts = []
    for layer in cache.layers:
        rows = max(layer.keys.shape[0], index.shape[0])
        where = index.to(layer.keys.device)[:, None, :, None]
        shape = (rows, layer.keys.shape[1], index.shape[1], layer.keys.shape[3])
        keys = layer.keys.expand(rows, -1, -1, -1).gather(2, where.expand(shape))
        values = layer.values.expand(rows, -1, -1, -1).gather(2, where.expand(shape))
        parts.append(_with_tensors(layer, keys, values))
    return _replaced(cache, parts)


def evict(cache: DynamicCache, slot: int | Sequence[int]) -> DynamicCache:
    """A copy of ``cache`` without slot ``slot`` in every layer: one slot for every row, or one per row."""
    length = cache.get_seq_length()
    slots = [slot] if isinstance(slot, int) else checks.as_list(slot)
    if not slots:
        raise ValueError("slot must be one slot, or one slot per row of the cache; got none")
    for s in slots:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < length:
            raise ValueError(f"slot {s!r} is outside the cache (slots 0..{length - 1})")
    index = torch.stack([torch.cat([torch.arange(s), torch.arange(s + 1, length)]) for s in slots])
    return keep(cache, index)


def concat(first: DynamicCache, second: DynamicCache) -> DynamicCache:
    """A cache holding ``first``'s slots, then ``second``'s, layer by layer (neither is modified)."""
    _same_model(first, second)
    check_whole(first, second.get_seq_length())
    check_whole(second)
    parts = [
        _with_tensors(a, torch.cat([a.keys, b.keys], 2), torch.cat([a.values, b.values], 2))
        for a, b in zip(first.layers, second.layers, strict=True)
    ]
    return _replaced(first, parts)


def stack(caches: Sequence[DynamicCache]) -> DynamicCache:
    """One cache whose batch rows are ``caches`` (each of batch 1 and the same length), in order."""
    lengths = {c.get_seq_length() for c in caches}
    if not caches or len(lengths) != 1:
        raise ValueError(f"stack takes caches of one length, got lengths {sorted(lengths)}")
    for i, c in enumerate(caches):
        _same_model(caches[0], c, ("caches[0]", f"caches[{i}]"))
        check_whole(c)
    parts = [
        _with_tensors(
            layers[0], torch.cat([x.keys for x in layers], 0), torch.cat([x.values for x in layers], 0)
        )
        for layers in zip(*(c.layers for c in caches), strict=True)
    ]
    return _replaced(caches[0], parts)


def with_layer(cache: DynamicCache, layer: int, source: DynamicCache) -> DynamicCache:
    """A copy of ``cache`` (each layer copied, so a pass on it grows the copy) whose layer ``layer`` is
    ``source``'s (a cache of the same model: refused otherwise, and a layer outside it)."""
    _same_model(cache, source, ("the cache", "the source"))
    layer = checks.integer_in("layer", layer, 0, len(cache.layers) - 1)
    return _replaced(
        cache, [copy.copy(source.layers[i] if i == layer else held) for i, held in enumerate(cache.layers)]
    )
