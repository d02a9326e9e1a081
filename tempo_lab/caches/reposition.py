"""Moving a whole KV cache in position: give cached slots new positions after the fact.

    moved = reposition(lm, cache, shift)         # shift (slots,) or (batch, slots): Δ per slot, fractional
    moved = reposition(lm, cache, 5.0, slots=range(4, 20))   # only those slots, all by 5

A key is cached as the model rotated it at its position ``p``; the key it would have had at ``p + Δ`` is
``R(p + Δ) k = R(Δ) R(p) k``, one more rotation, exact, in every band, with the model's own
``apply_rotary_pos_emb`` and rotary table per layer (Gemma 2/3's local and global bases, partial rotary,
grouped-query key heads as cached). That is the whole correction: values carry no position, and from layer
1 on every cached key and value was computed from hidden states that saw the *old* positions (and the old
context). So the re-positioned cache equals a recompute at the new positions **in layer 0's keys** exactly,
and a 1-layer model's next-token distribution exactly; deeper layers keep what the old positions left in them,
which is what :mod:`tempo_lab.caches` measures. Sliding-window layers hold only their window's last slots:
those slots are moved by their own shifts. Layers that apply no rotary embedding (Cohere 2's full-attention
layers) are left alone.

The cache given is not modified: the result is a copy of its structure with new key tensors (the values are
shared). A shift of 0 everywhere returns keys bit-identical to the given ones.

Contents: :func:`reposition`, :func:`check_shift`.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
from transformers import DynamicCache

from tempo_lab.caches.slots import check_fits
from tempo_lab.interventions.rotary import Rotary
from tempo_lab.loaded import LoadedModel


def check_shift(
    lm: LoadedModel,
    cache: DynamicCache,
    shift: float | torch.Tensor,
    slots: Sequence[int] | None = None,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """The shift ``(batch or 1, length)`` float32 for every slot of ``cache``: ``shift`` per slot
    (``(length,)`` or ``(batch, length)``), or one number for ``slots`` (others 0). ``ValueError`` naming the
    value: a slot outside the cache, a shift of the wrong length, a non-finite shift, a cache whose layers do
    not match the model's. With the slots' current ``positions`` ``(batch or 1, length)``, two slots moved
    onto one position that were apart warn (TEMPO's shared positions do it on purpose)."""
    check_fits(lm, cache)
    length = cache.get_seq_length()
    if isinstance(shift, torch.Tensor):
        if slots is not None:
            raise ValueError(
                "give slots= with one number to shift them by, or a shift per slot without slots="
            )
        full = shift.float()[None] if shift.dim() == 1 else shift.float()
        if full.dim() != 2 or full.shape[1] != length:
            raise ValueError(f"shift has shape {tuple(shift.shape)}; the cache holds {length} slots")
    else:
        if isinstance(shift, bool) or not isinstance(shift, (int, float)):
            raise ValueError(f"shift must be a number or a tensor of one shift per slot, got {shift!r}")
        full = torch.zeros(1, length)
        chosen = range(length) if slots is None else list(slots)
        for i, s in enumerate(chosen):
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < length:
                raise ValueError(f"slots[{i}] = {s!r} is outside the cache (slots 0..{length - 1})")
            full[0, s] = float(shift)
    if not torch.isfinite(full).all():
        raise ValueError("shift holds a NaN or infinite value; give finite position offsets")
    if positions is not None:
        before, after = positions.float(), positions.float() + full
        if (after < 0).any():
            row, i = (int(x) for x in (after < 0).nonzero()[0])
            raise ValueError(
                f"the shift moves slot {i} (row {row}) to position {float(after[row, i]):g}: positions must "
                "stay >= 0"
            )
        for row in range(after.shape[0]):
            same = (after[row][:, None] == after[row][None, :]) & (
                before[row][:, None] != before[row][None, :]
            )
            if same.any():
                i, j = (int(x) for x in same.nonzero()[0])
                warnings.warn(
                    f"the shift puts slots {i} and {j} on one position ({float(after[row, i]):g}) where they "
                    "were apart: they now share it, as a TEMPO set's members do",
                    stacklevel=3,
                )
                break
    return full


def reposition(
    lm: LoadedModel,
    cache: DynamicCache,
    shift: float | torch.Tensor,
    slots: Sequence[int] | None = None,
    *,
    positions: torch.Tensor | None = None,
) -> DynamicCache:
    """A copy of ``cache`` whose slots sit ``shift`` positions further (see the module docstring and
    :func:`check_shift` for the forms of ``shift``). ``positions``: the slots' current positions, only to warn
    when the shift merges two of them. Refuses a model without rotary embeddings (GPT-2's learned table: its
    positions were added to the embeddings before layer 0 and cannot be moved in a cache)."""
    rotary = Rotary(lm)
    full = check_shift(lm, cache, shift, slots, positions)
    length = full.shape[1]
    out = copy.copy(cache)
    out.layers = []
    for layer, held in enumerate(cache.layers):
        part = copy.copy(held)
        n = held.keys.shape[2]
        if rotary.is_positional(layer) and n:
            keys = held.keys
            moved = full[:, length - n :].to(keys.device)  # a sliding layer holds the last n slots
            cos, sin = rotary.delta(moved, layer, None)  # (batch or 1, n, rotary_dim)
            rows = max(keys.shape[0], cos.shape[0])
            part.keys = rotary.rotate(keys.expand(rows, -1, -1, -1), cos, sin, layer)
            part.values = held.values.expand(rows, -1, -1, -1)
        out.layers.append(part)
    return out
