"""Capture attention probabilities with forward hooks, as a context manager.

Each attention module of a transformers model returns ``(attn_output, attn_weights)``; eager attention fills
``attn_weights`` with the softmax probabilities ``(batch, heads, q, kv)``. ``capture_attention`` switches the
model to eager attention for the duration of the ``with`` block (restoring SDPA or whatever it had on exit,
also on error), hooks the selected layers, and removes every hook on exit. Nothing in the model is replaced.
A registered attention function that returns the probabilities itself (listed in
:data:`WEIGHT_RETURNING`, e.g. the per-head position edits of :mod:`tempo_lab.interventions`) is kept, so a
capture inside such an intervention records the intervened attention.

At long lengths the probabilities of every query row do not fit: ``n`` queries by ``n`` keys per head and
layer. ``queries=[-1]`` (any query indices of the pass) records only those rows: the model then attends
through a registered attention function (:data:`ROWS_ATTENTION`) that computes each layer's output with
SDPA (eager for a family without it, e.g. Gemma 2's soft-capping) and the probabilities of the requested rows
alone, with the same scores, soft-capping and mask as eager attention, so a pass stores ``heads x rows x kv``
per layer. Captures nest: a row capture inside a full one keeps eager attention (the full one needs every
row) and takes its rows from it; one inside another row capture computes both captures' rows.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface, PreTrainedModel
from transformers.masking_utils import eager_mask, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from tempo_lab import masks
from tempo_lab.families import family_of
from tempo_lab.plumbing.scoped import PerModule, attending

WEIGHT_RETURNING: set[str] = {"eager"}  # attention implementations that return the probabilities
# the attention modules an open capture records (how many captures do), in this context
_RECORDED: PerModule[int] = PerModule("tempo_lab recorded modules")


def recorded(module: nn.Module) -> bool:
    """Whether a capture open in this context records ``module``'s probabilities: an attention function of
    :data:`WEIGHT_RETURNING` that can skip them (Self-Extend at 16k tokens) returns them only then."""
    return bool(_RECORDED.get(module))


def register_eager(name: str, function) -> None:
    """Register ``function`` (eager arithmetic: ``scores + mask``, returning the probabilities) as attention
    implementation ``name``, with eager's additive masks, and list it in :data:`WEIGHT_RETURNING`.

    The masks matter: transformers builds no mask at all for an attention name without a mask function, and
    eager arithmetic without a mask attends to the future (and past a sliding window). A pass given an
    explicit 4D mask (every tempo_lab generator's) is unaffected; a bare ``model(input_ids)`` would be."""
    AttentionInterface.register(name, function)
    AttentionMaskInterface.register(name, eager_mask)
    WEIGHT_RETURNING.add(name)


ROWS_ATTENTION = "tempo_lab_rows"
# per attention module: (query rows, inner implementation), while a row capture is open in this context
_ROWS: PerModule[tuple[list[int], str]] = PerModule("tempo_lab rows")
# per model: the full captures open on it in this context (a row capture inside one attends eagerly)
_FULL: PerModule[int] = PerModule("tempo_lab full captures")


def _rows_attention(
    module: nn.Module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs
):
    """The layer's output by its inner implementation; the probabilities of the requested query rows only,
    ``(batch, heads, rows, kv)``, computed as eager attention computes them."""
    rows, inner = _ROWS[module]
    q, kv = query.shape[2], key.shape[2]
    # The mask this name is given is SDPA's (ROWS_ATTENTION's mask function): none for a plain causal pass,
    # boolean otherwise. An eager inside needs it whole and additive; the rows need only their own rows.
    if inner == "eager":
        attend = sys.modules[type(module).__module__].eager_attention_forward
        if attention_mask is None:
            attention_mask = masks.causal_mask(q, kv, dtype=query.dtype, device=query.device)
        attention_mask = masks.ensure_additive(attention_mask, query.dtype)
    else:
        attend = ALL_ATTENTION_FUNCTIONS[inner]
    out, _ = attend(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    scaling = module.head_dim**-0.5 if scaling is None else scaling
    index = torch.tensor([r % q for r in rows], dtype=torch.long, device=query.device)
    if attention_mask is None:  # causal over slots: row r (slot kv - q + r) sees keys up to its own slot
        seen = torch.arange(kv, device=query.device)[None, :] <= (kv - q + index)[:, None]
        row_mask = masks.to_additive(seen, query.dtype)[None, None]
    else:
        row_mask = masks.ensure_additive(attention_mask.index_select(-2, index), query.dtype)
    picked = query.index_select(2, index)  # (batch, heads, rows, head_dim)
    keys = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
    scores = torch.matmul(picked, keys.transpose(2, 3)) * scaling  # (batch, heads, rows, kv)
    softcap = kwargs.get("softcap")
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    scores = scores + row_mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    return out, weights


AttentionInterface.register(ROWS_ATTENTION, _rows_attention)
# SDPA's masks (none for a plain causal pass, boolean otherwise): what the SDPA inside needs, made additive
# for the rows and for an eager inside. Without a mask function, transformers builds no mask for the name.
AttentionMaskInterface.register(ROWS_ATTENTION, sdpa_mask)


@dataclass
class AttentionRecord:
    """Attention probabilities recorded inside one ``capture_attention`` block.

    ``passes[k][i]`` is the ``(batch, heads, q, kv)`` tensor of the ``i``-th selected layer during the
    ``k``-th forward pass of the model (a prefill, then one per cached step). ``layers`` are the selected
    layer indices, ``heads`` the selected head indices (``None`` = all).

    On a sliding-window layer of a cached pass, ``kv`` counts only the keys that layer's cache holds: the
    *last* ``kv`` slots. :meth:`stacked` aligns every layer to the full width of the pass.
    """

    layers: list[int]
    heads: list[int] | None
    passes: list[list[torch.Tensor]] = field(default_factory=list)

    @property
    def weights(self) -> list[torch.Tensor]:
        """Per selected layer, ``(batch, heads, q, kv)`` of the most recent forward pass."""
        if not self.passes:
            raise RuntimeError("no forward pass was recorded inside the capture_attention block")
        return self.passes[-1]

    def stacked(self, pass_index: int = -1, width: int | None = None) -> torch.Tensor:
        """One pass as a single tensor ``(layers, batch, heads, q, kv)``.

        ``kv`` is ``width`` (the slots in the cache after the pass) or, by default, the widest layer's; a
        layer that holds fewer keys (a sliding window) is right-aligned, with zeros on the slots it cannot
        see. Give ``width`` when every layer slides (Mistral): no layer then spans the whole pass."""
        weights = self.passes[pass_index]
        kv = width if width is not None else max(w.shape[-1] for w in weights)
        return torch.stack([torch.nn.functional.pad(w, (kv - w.shape[-1], 0)) for w in weights])

    def mass(self, keys: slice | Sequence[int], query: int = -1, pass_index: int = -1) -> torch.Tensor:
        """Attention mass of query row ``query`` on the key slots ``keys``, ``(layers, batch, heads)``."""
        return span_mass(self.stacked(pass_index), keys, query)


def span_mass(weights: torch.Tensor, keys: slice | Sequence[int], query: int = -1) -> torch.Tensor:
    """Sum of attention probabilities of one query row over a span of key slots.

    ``weights``: ``(..., q, kv)`` probabilities (e.g. ``(batch, heads, q, kv)`` or
    ``(layers, batch, heads, q, kv)``).
    Returns ``(...)``. A mass over *all* keys is always 1; name the span you mean (e.g. the prompt's slots).
    """
    row = weights[..., query, :]
    if isinstance(keys, slice):
        return row[..., keys].sum(-1)
    return row[..., torch.as_tensor(list(keys), dtype=torch.long, device=row.device)].sum(-1)


def attention_modules(model: PreTrainedModel) -> list[nn.Module]:
    """The self-attention module of every decoder layer, in layer order (where the family table says they
    are: :meth:`tempo_lab.families.Family.modules`)."""
    return family_of(model).modules(model).attentions


def _resolve(indices: Sequence[int] | None, n: int, what: str) -> list[int] | None:
    if indices is None:
        return None
    out = []
    for i in indices:
        if not -n <= i < n:
            raise IndexError(f"{what} index {i} is out of range for {n} {what}s")
        out.append(i % n)
    return out


@contextmanager
def capture_attention(
    model: PreTrainedModel,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    *,
    queries: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> Iterator[AttentionRecord]:
    """Record attention probabilities of every forward pass run inside the block.

    Args:
        model: a transformers causal LM, loaded with eager or SDPA attention.
        layers: layer indices to record (negative allowed); ``None`` = all.
        heads: head indices to keep; ``None`` = all. Selecting fewer bounds memory.
        queries: query indices within each pass to record (``-1``: its last); ``None`` = every row. Given,
            the passes attend through :data:`ROWS_ATTENTION` (see the module docstring), and each tensor is
            ``(batch, heads, len(queries), kv)``. Inside an attention function that returns the probabilities
            itself (:data:`WEIGHT_RETURNING`), the rows are taken from its full output.
        device: where recorded tensors are stored.
        dtype: storage dtype (e.g. ``torch.float16`` to halve memory); ``None`` keeps the model's.

    Yields an :class:`AttentionRecord` whose ``passes`` fill as the model runs.
    """
    modules = attention_modules(model)
    n_heads = model.config.num_attention_heads
    layer_ids = _resolve(layers, len(modules), "layer") or list(range(len(modules)))
    head_ids = _resolve(heads, n_heads, "head")
    record = AttentionRecord(layers=layer_ids, heads=head_ids)
    slot = {id(modules[i]): k for k, i in enumerate(layer_ids)}
    head_index = None if head_ids is None else torch.tensor(head_ids, dtype=torch.long)

    def keep(module: nn.Module, _args: tuple, output: tuple) -> None:
        weights = output[1]
        if weights is None:
            raise RuntimeError(f"{type(module).__name__} returned no attention weights; is it running eager?")
        if rows is not None:
            if model.config._attn_implementation == ROWS_ATTENTION:  # the rows computed: ours among them
                computed = _ROWS[module][0]
                pick = [computed.index(r) for r in rows]
            else:  # a function returning every row
                pick = [r % weights.shape[2] for r in rows]
            weights = weights.index_select(2, torch.tensor(pick, device=weights.device))
        if head_index is not None:
            weights = weights.index_select(1, head_index.to(weights.device))
        k = slot[id(module)]
        if not record.passes or record.passes[-1][k] is not None:  # this layer ran again: a new forward pass
            record.passes.append([None] * len(layer_ids))  # type: ignore[list-item]
        record.passes[-1][k] = weights.detach().to(device=device, dtype=dtype or weights.dtype)

    original = model.config._attn_implementation
    rows = None if queries is None else _check_queries(queries)
    if rows is not None:
        family_of(model).check_own_attention("a capture of some query rows (queries=)")
    handles: list[torch.utils.hooks.RemovableHandle] = []
    full_open = _FULL.get(model) or 0
    stack = ExitStack()
    try:
        if rows is None:
            stack.enter_context(_FULL.bound({id(model): full_open + 1}))
        stack.enter_context(
            _RECORDED.bound({id(modules[i]): (_RECORDED.get(modules[i]) or 0) + 1 for i in layer_ids})
        )
        if rows is not None and not full_open and original not in WEIGHT_RETURNING - {"eager"}:
            inner = "sdpa" if getattr(model, "_supports_sdpa", False) else "eager"
            computed = rows
            if original == ROWS_ATTENTION:  # inside another row capture: attend as it does, with its rows
                outer_rows, inner = next(found for m in modules if (found := _ROWS.get(m)) is not None)
                computed = list(dict.fromkeys([*outer_rows, *rows]))
            # every layer attends through it; the selected ones are recorded
            stack.enter_context(_ROWS.bound({id(module): (computed, inner) for module in modules}))
            stack.enter_context(attending(model, ROWS_ATTENTION))
        elif original not in WEIGHT_RETURNING:
            stack.enter_context(attending(model, "eager"))
        handles = [modules[i].register_forward_hook(keep) for i in layer_ids]
        yield record
    finally:
        for h in handles:
            h.remove()
        stack.close()


def _check_queries(queries: Sequence[int]) -> list[int]:
    out = []
    for i, q in enumerate(queries):
        if isinstance(q, bool) or not isinstance(q, int):
            raise ValueError(f"queries[{i}] = {q!r} is not a query index (an int; -1 for a pass's last)")
        out.append(q)
    if not out:
        raise ValueError("queries is empty: give the query indices to record, or None for every row")
    return out
