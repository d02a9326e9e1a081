"""Self-Extend (Jin et al. 2024, "LLM Maybe LongLM") as a pairwise position layout, at inference, unpatched.

    with self_extended(lm, window=512, group=8):
        ...                                      # any forward pass: generators, sessions, studies

Each (query, key) pair sees one of two layouts. Neighbours, ``q − k < window``, keep their exact positions;
farther pairs see grouped positions: the key at ``⌊k/G⌋``, the query at ``⌊q/G⌋ + window − ⌊window/G⌋``
(so the grouped distances continue where the neighbour ones stop). Both score matrices are computed and
merged per pair with ``torch.where`` before one softmax, as the paper's reference code does (it patched old
transformers' Llama attention, at batch size 1). Positions are the layout's own: gapped and fractional ones
are grouped the same way (``⌊·⌋`` of the position).

How, through public extension points only: a forward pre-hook on the base model records the positions of
every slot the cache holds, and a registered attention function (transformers' ``AttentionInterface``)
receives the queries and keys as the model rotated them at their normal positions, rotates a copy of each
once more by the grouped shift (``R(p + d) = R(d) R(p)``, exact, with the model's own
``apply_rotary_pos_emb``), and attends with the merged scores (soft-capping, where the layer has it, applied
to both before the merge). Keys are cached as the model rotates them, at their normal positions, and the
grouped rotation is applied on every call: the cache stays the plain model's (a cached step equals a full
recompute, and leaving the block leaves a usable cache), at the cost of one more rotation of the keys per
step. The queries are attended in blocks of :data:`CHUNK` rows, each over the keys up to its last slot, and a
plain causal pass gets no mask at all (SDPA's mask function, registered with the attention). Such a pass, with
no soft-capping and no capture open, runs each block through SDPA's fused kernel (:func:`_fused`: both
layouts in one dot product, joined along the head dimension); otherwise the merged scores are computed in
eager arithmetic and the probabilities returned. Either way a 16k-token pass holds ``heads x CHUNK x 16k``
blocks, never a ``16k x 16k`` matrix. Sliding-window layers
already keep every pair within their window, so they are left alone when ``window`` is at least theirs; a
smaller ``window`` there is refused. Everything is removed on exit, also after an exception.

Contents: :func:`self_extended`, :func:`grouped_positions`, :data:`SELF_EXTEND_ATTENTION`, :data:`CHUNK`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import sdpa_mask

from tempo_lab import masks
from tempo_lab.capture import WEIGHT_RETURNING, recorded
from tempo_lab.interventions.edits import HEADS_ATTENTION, CurrentPass
from tempo_lab.interventions.rotary import Rotary
from tempo_lab.loaded import LoadedModel, beyond_context, trained_context
from tempo_lab.plumbing import checks
from tempo_lab.plumbing.scoped import PerModule, attending

SELF_EXTEND_ATTENTION = "tempo_lab_self_extend"


def grouped_positions(
    query: torch.Tensor, key: torch.Tensor, window: int, group: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The grouped layout: queries at ``⌊q/G⌋ + window − ⌊window/G⌋``, keys at ``⌊k/G⌋`` (any shapes)."""
    window, group = checks.count("window", window), checks.count("group", group)
    return (
        torch.floor(query / group) + window - window // group,
        torch.floor(key / group),
    )


@dataclass
class _Slots:
    """The positions ``(batch or 1, slots)`` of every slot the cache holds, the pass under way included."""

    now: CurrentPass = field(default_factory=CurrentPass)
    positions: torch.Tensor | None = None

    def record(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.now.record(module, args, kwargs)
        new = self.now.positions.float()
        if self.now.offset == 0 or self.positions is None:
            self.positions = new
            return
        kept = self.positions[:, : self.now.offset]
        rows = max(kept.shape[0], new.shape[0])
        self.positions = torch.cat([kept.expand(rows, -1), new.to(kept.device).expand(rows, -1)], 1)


@dataclass
class _Layer:
    """What the attention function needs for one attention module."""

    rotary: Rotary
    layer: int
    window: int
    group: int
    slots: _Slots
    extend: bool  # False: a sliding layer whose window keeps every pair a neighbour, attended as is
    chunk: int  # query rows per block


_LAYERS: PerModule[_Layer] = PerModule("tempo_lab self-extend")  # each attention module's, while open


#: query rows attended together: a block's two score matrices hold ``heads x CHUNK x keys`` floats each (at
#: 16k keys on SmolLM2, 9 heads: 2 x 0.6 GB in float32), not ``heads x queries x keys``
CHUNK = 1024
#: the largest ``batch x heads x queries x keys`` whose probabilities a pass returns to a capture inside (64M
#: floats; a longer pass returns none); without a capture it returns none at any length
RETURNED = 2**26


def _self_extend_attention(
    module: nn.Module, query, key, value, attention_mask, scaling: float | None = None, dropout=0.0, **kwargs
):
    """The registered attention function (eager arithmetic, in blocks of :data:`CHUNK` query rows; see the
    module docstring). ``attention_mask``: ``None`` for a plain causal pass (SDPA's mask function gives
    none), else bool or additive ``(batch, 1, q, K)``."""
    found = _LAYERS[module]
    scaling = module.head_dim**-0.5 if scaling is None else scaling
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)  # (batch, heads, K, head_dim)
    value = value.repeat_interleave(groups, dim=1)
    q, n_keys = query.shape[2], key.shape[2]
    softcap = kwargs.get("softcap")
    if found.extend:
        now = found.slots.now
        end = now.offset + now.q
        q_pos = found.slots.positions[:, now.offset : end].to(query.device)  # (batch or 1, q)
        k_pos = found.slots.positions[:, end - n_keys : end].to(query.device)  # (batch or 1, K)
        q_group, k_group = grouped_positions(q_pos, k_pos, found.window, found.group)
        rotary, layer = found.rotary, found.layer
        grouped_query = rotary.rotate(query, *rotary.delta(q_group - q_pos, layer, None), layer)
        grouped_key = rotary.rotate(key, *rotary.delta(k_group - k_pos, layer, None), layer)
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        attention_mask = masks.to_additive(attention_mask, query.dtype)
    keep = recorded(module) and query.shape[0] * query.shape[1] * q * n_keys <= RETURNED
    ordered = found.extend and bool((k_pos[:, 1:] >= k_pos[:, :-1]).all())
    if ordered and attention_mask is None and softcap is None and not keep and q_pos.shape[0] == 1:
        if not (dropout and module.training):
            return _fused(
                found, query, key, value, grouped_query, grouped_key, q_pos[0], k_pos[0], scaling
            ), None
    out = torch.empty_like(query)  # (batch, heads, q, head_dim)
    query = query * scaling  # scaled once here, not on every score block
    if found.extend:
        grouped_query = grouped_query * scaling
    weights = query.new_zeros(query.shape[0], query.shape[1], q, n_keys) if keep else None
    floor = torch.finfo(query.dtype).min
    # where positions never decrease along the slots (every layout but an any_order one), the neighbours of a
    # block's queries are a suffix of the keys: the plain scores are needed there only
    for a in range(0, q, found.chunk):
        z = min(q, a + found.chunk)
        seen = n_keys if attention_mask is not None else n_keys - q + z  # causal: no key past the block's
        if found.extend:
            scores = torch.matmul(grouped_query[:, :, a:z], grouped_key[:, :, :seen].transpose(2, 3))
            first = 0
            if ordered:  # the first key a query of the block can see as a neighbour
                lowest = q_pos[:, a].min() - found.window
                first = min(int(torch.searchsorted(k_pos[:, :seen].max(0).values, lowest, right=True)), seen)
            plain = torch.matmul(query[:, :, a:z], key[:, :, first:seen].transpose(2, 3))
            if softcap is not None:
                scores, plain = (torch.tanh(x / softcap) * softcap for x in (scores, plain))
            near = q_pos[:, a:z, None] - k_pos[:, None, first:seen] < found.window  # (batch or 1, rows, K')
            scores[..., first:seen] = torch.where(near[:, None], plain, scores[..., first:seen])
        else:
            scores = torch.matmul(query[:, :, a:z], key[:, :, :seen].transpose(2, 3))
            if softcap is not None:
                scores = torch.tanh(scores / softcap) * softcap
        if attention_mask is None:  # causal over slots: query a + i sits at slot seen - (z - a) + i
            rows = z - a
            tail = scores[..., seen - rows :]  # only the last rows keys can lie past a query's slot
            tail.masked_fill_(torch.ones(rows, rows, dtype=torch.bool, device=query.device).triu(1), floor)
        else:
            scores = scores + attention_mask[..., a:z, :seen]
        block = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
        block = nn.functional.dropout(block, p=dropout, training=module.training)
        out[:, :, a:z] = torch.matmul(block, value[:, :, :seen])
        if weights is not None:
            weights[:, :, a:z, :seen] = block
    return out.transpose(1, 2).contiguous(), weights


def _fused(
    found: _Layer,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    grouped_query: torch.Tensor,
    grouped_key: torch.Tensor,
    q_pos: torch.Tensor,
    k_pos: torch.Tensor,
    scaling: float,
) -> torch.Tensor:
    """The long causal pass (no mask, no soft-capping, one layout for the batch, positions in slot order),
    through SDPA's fused kernel: per block of query rows, one attention over the grouped keys that are far
    from some row and the plain keys that are near some row. The two layouts share one dot product by
    concatenating along the head dimension, ``[q_grouped, q] . [k_grouped, 0] = q_grouped . k_grouped`` and
    ``[q_grouped, q] . [0, k] = q . k``, and a boolean mask keeps each pair in its own layout. The values are
    zero-padded to the same width (the fused kernel wants equal widths) and the padding dropped. Returns
    ``(batch, q, heads, head_dim)``. ``query`` and ``key``: ``(batch, heads, q | K, head_dim)``, unscaled;
    ``q_pos (q,)``, ``k_pos (K,)``."""
    width = query.shape[-1]
    q, n_keys = query.shape[2], key.shape[2]
    out = torch.empty_like(query)
    slots = torch.arange(n_keys, device=query.device)
    for a in range(0, q, found.chunk):
        z = min(q, a + found.chunk)
        seen = n_keys - q + z  # the block's last query sits at slot seen - 1
        rows, keys = q_pos[a:z], k_pos[:seen]
        far_end = int(torch.searchsorted(keys, rows.max() - found.window, right=True))  # k <= q - window
        first = int(torch.searchsorted(keys, rows.min() - found.window, right=True))  # k > q - window
        joined = torch.cat([grouped_query[:, :, a:z], query[:, :, a:z]], -1)
        keys_both = torch.cat([
            nn.functional.pad(grouped_key[:, :, :far_end], (0, width)),
            nn.functional.pad(key[:, :, first:seen], (width, 0)),
        ], 2)  # fmt: skip
        values = nn.functional.pad(torch.cat([value[:, :, :far_end], value[:, :, first:seen]], 2), (0, width))
        far = rows[:, None] - keys[None, :far_end] >= found.window
        own_slot = (n_keys - q + a + torch.arange(z - a, device=query.device))[:, None]
        near = (rows[:, None] - keys[None, first:] < found.window) & (slots[None, first:seen] <= own_slot)
        out[:, :, a:z] = nn.functional.scaled_dot_product_attention(
            joined, keys_both, values, attn_mask=torch.cat([far, near], 1), scale=scaling
        )[..., :width]
    return out.transpose(1, 2).contiguous()


# SDPA's masks: none at all for a plain causal pass (no q x K mask at 16k tokens), bool otherwise; a layout's
# own 4D mask is passed as it is. A capture inside keeps the probabilities it returns.
AttentionInterface.register(SELF_EXTEND_ATTENTION, _self_extend_attention)
AttentionMaskInterface.register(SELF_EXTEND_ATTENTION, sdpa_mask)
WEIGHT_RETURNING.add(SELF_EXTEND_ATTENTION)


@contextmanager
def self_extended(lm: LoadedModel, window: int, group: int, *, chunk: int = CHUNK) -> Iterator[Rotary]:
    """Every forward pass of ``lm`` inside the block attends with Self-Extend (see the module docstring):
    neighbours within ``window`` positions at their own positions, the rest grouped by ``group``. Positions
    past the trained context are allowed inside. ``chunk``: query rows attended together (the results do not
    depend on it; the memory does). Yields the model's :class:`~tempo_lab.interventions.rotary.Rotary`.

    Refused before any forward, naming the value: ``group`` < 1, ``window`` < 1, a ``window`` past the
    model's trained context (every pair would be a neighbour), a ``window`` below a sliding layer's, a model
    without rotary embeddings. Does not nest with itself or with per-head position edits (both attend through
    their own registered function)."""
    group, window = checks.count("group", group), checks.count("window", window)
    chunk = checks.count("chunk", chunk)
    rotary = Rotary(lm)
    lm.family.check_own_attention("Self-Extend")
    config = lm.model.config.get_text_config(decoder=True)
    trained = trained_context(lm)
    if window > trained:
        raise ValueError(
            f"window = {window} is past the model's trained context ({trained}): every pair would keep its "
            "own positions; Self-Extend groups the pairs beyond a window inside the context"
        )
    sliding = getattr(config, "sliding_window", None)
    slides = [i for i, t in enumerate(rotary.layer_types) if t == "sliding_attention"]
    if slides and sliding is not None and window < sliding:
        raise ValueError(
            f"window = {window} is below the sliding window ({sliding}) of layers {slides}: their keys reach "
            f"{sliding} positions back; give window >= {sliding}, which leaves those layers as they are"
        )
    original = lm.model.config._attn_implementation
    if original in (SELF_EXTEND_ATTENTION, HEADS_ATTENTION):
        raise ValueError(
            f"the model already attends through {original!r}: Self-Extend does not nest with itself or with "
            "per-head position edits"
        )
    slots = _Slots()
    handle = lm.model.base_model.register_forward_pre_hook(slots.record, with_kwargs=True)
    stack = ExitStack()
    try:
        bound: dict[int, _Layer] = {}
        for layer in range(rotary.n_layers):
            attention = rotary.attention(layer)
            rotary.apply(layer)  # refuses a family without apply_rotary_pos_emb before anything runs
            extend = rotary.layer_types[layer] != "sliding_attention" or sliding is None
            bound[id(attention)] = _Layer(rotary, layer, window, group, slots, extend, chunk)
        stack.enter_context(_LAYERS.bound(bound))
        stack.enter_context(attending(lm.model, SELF_EXTEND_ATTENTION))
        with beyond_context(lm):
            yield rotary
    finally:
        handle.remove()
        stack.close()
