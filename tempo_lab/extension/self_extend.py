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
step. Sliding-window layers already keep every pair within their window, so they are left alone when
``window`` is at least theirs; a smaller ``window`` there is refused. Everything is removed on exit, also
after an exception.

Contents: :func:`self_extended`, :func:`grouped_positions`, :data:`SELF_EXTEND_ATTENTION`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from tempo_lab.capture import register_eager
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


_LAYERS: PerModule[_Layer] = PerModule("tempo_lab self-extend")  # each attention module's, while open


def _self_extend_attention(
    module: nn.Module, query, key, value, attention_mask, scaling: float | None = None, dropout=0.0, **kwargs
):
    """The registered attention function (eager arithmetic; see the module docstring)."""
    found = _LAYERS[module]
    scaling = module.head_dim**-0.5 if scaling is None else scaling
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)  # (batch, heads, K, head_dim)
    value = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (batch, heads, q, K)
    softcap = kwargs.get("softcap")
    if found.extend:
        now, n_keys = found.slots.now, key.shape[2]
        end = now.offset + now.q
        q_pos = found.slots.positions[:, now.offset : end].to(query.device)  # (batch or 1, q)
        k_pos = found.slots.positions[:, end - n_keys : end].to(query.device)  # (batch or 1, K)
        q_group, k_group = grouped_positions(q_pos, k_pos, found.window, found.group)
        rotary, layer = found.rotary, found.layer
        grouped_query = rotary.rotate(query, *rotary.delta(q_group - q_pos, layer, None), layer)
        grouped_key = rotary.rotate(key, *rotary.delta(k_group - k_pos, layer, None), layer)
        grouped = torch.matmul(grouped_query, grouped_key.transpose(2, 3)) * scaling
        if softcap is not None:
            scores, grouped = (torch.tanh(s / softcap) * softcap for s in (scores, grouped))
        near = (q_pos[:, :, None] - k_pos[:, None, :] < found.window)[:, None]  # (batch or 1, 1, q, K)
        scores = torch.where(near, scores, grouped)
    elif softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


register_eager(SELF_EXTEND_ATTENTION, _self_extend_attention)  # eager's masks; a capture inside keeps them


@contextmanager
def self_extended(lm: LoadedModel, window: int, group: int) -> Iterator[Rotary]:
    """Every forward pass of ``lm`` inside the block attends with Self-Extend (see the module docstring):
    neighbours within ``window`` positions at their own positions, the rest grouped by ``group``. Positions
    past the trained context are allowed inside. Yields the model's
    :class:`~tempo_lab.interventions.rotary.Rotary`.

    Refused before any forward, naming the value: ``group`` < 1, ``window`` < 1, a ``window`` past the
    model's trained context (every pair would be a neighbour), a ``window`` below a sliding layer's, a model
    without rotary embeddings. Does not nest with itself or with per-head position edits (both attend through
    their own registered function)."""
    group, window = checks.count("group", group), checks.count("window", window)
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
            bound[id(attention)] = _Layer(rotary, layer, window, group, slots, extend)
        stack.enter_context(_LAYERS.bound(bound))
        stack.enter_context(attending(lm.model, SELF_EXTEND_ATTENTION))
        with beyond_context(lm):
            yield rotary
    finally:
        handle.remove()
        stack.close()
