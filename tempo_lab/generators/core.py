"""The one decoding core all generators share: prefill, then cached steps with explicit positions and masks.

Contents: :class:`DecodingCore` (``inputs``, ``forward``, ``prefill``, ``step``, ``full``),
:class:`Generator` (what every generator holds: the model and its core), :class:`Prefix` (a prefilled
prompt), :func:`branch` (a batch-``n`` view of a prefix cache), :func:`select_rows` (a copy of some rows of
a cache), :func:`cache_length`, :func:`split_head`. The loop that drives cached steps is
:mod:`tempo_lab.generators.loop`; token selection is :mod:`tempo_lab.generators.selection`.

Every forward pass passes its own ``position_ids`` and an explicit additive 4D mask; nothing is patched into
the model. ``generate()`` is not used because it recomputes positions itself, which erases gaps, fractional
positions and shared positions.

Branches: :func:`branch` turns a batch-1 prefix cache into a batch-``n`` cache whose tensors are *expanded
views* of the prefix (no copy). A step on the branched cache concatenates new keys onto those views into fresh
tensors, so the prefix cache itself is never modified and can be branched again.

Logits: for architectures whose logits are exactly ``lm_head(last_hidden_state)`` (:data:`PLAIN_HEAD_TYPES`,
bias-free head), the core runs the base model and computes the logits as ``weight @ hidden^T``. On CPU, BLAS
serves ``F.linear`` with 2-3 rows about one row at a time: on the bundled model the vocabulary projection of
2 rows took 14.6 ms through ``lm_head`` and 2.3 ms as ``weight @ hidden^T`` (1 row: 6.6 ms either way), which
matters for parallel sets, batched branches and prompts. The logits are the model's own (to ~2e-5; a test
checks them against a plain ``model(...)`` call). Other architectures go through ``model(...)`` unchanged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from tempo_lab import masks
from tempo_lab import positions as pos
from tempo_lab.families import family_of
from tempo_lab.loaded import LoadedModel, evaluating, keeps_logits

PLAIN_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "gpt2", "phi3", "olmo", "olmo2"})


@dataclass
class Prefix:
    """A prefilled prompt: its cache, ids ``(1, T)``, positions ``(1, T)`` and logits ``(1, T, vocab)``."""

    cache: DynamicCache
    input_ids: torch.Tensor
    positions: torch.Tensor
    logits: torch.Tensor

    @property
    def length(self) -> int:
        return self.input_ids.shape[1]

    @property
    def next_logits(self) -> torch.Tensor:
        """Logits for the token after the prompt, ``(vocab,)``."""
        return self.logits[0, -1]


def split_head(model: PreTrainedModel) -> tuple[nn.Module, torch.Tensor] | None:
    """``(base model, head weight (vocab, hidden))`` when the model's logits are exactly
    ``lm_head(base(...).last_hidden_state)`` with a bias-free linear head; ``None`` otherwise."""
    head = model.get_output_embeddings()
    base = model.base_model
    if (
        getattr(model.config, "model_type", None) not in PLAIN_HEAD_TYPES
        or not isinstance(head, nn.Linear)
        or head.bias is not None
        or base is model
    ):
        return None
    return base, head.weight


def cache_length(cache: DynamicCache) -> int:
    """Number of slots (tokens) held by the cache."""
    return cache.get_seq_length()


def branch(cache: DynamicCache, n: int) -> DynamicCache:
    """A batch-``n`` cache over a batch-1 cache, built from expanded views (shares memory, copies nothing)."""
    if n < 1:
        raise ValueError(f"need at least one branch, got {n}")
    out = copy.copy(cache)
    out.layers = []
    for layer in cache.layers:
        if layer.keys.shape[0] != 1:
            raise ValueError(f"can only branch a batch-1 cache, got batch {layer.keys.shape[0]}")
        view = copy.copy(layer)
        view.keys = layer.keys.expand(n, -1, -1, -1)
        view.values = layer.values.expand(n, -1, -1, -1)
        out.layers.append(view)
    return out


def select_rows(cache: DynamicCache, rows: torch.Tensor) -> DynamicCache:
    """A cache over some batch rows of ``cache`` (``rows``: their indices), copied: a pass on it grows the
    copy and leaves ``cache`` as it was."""
    out = copy.copy(cache)
    out.layers = []
    for layer in cache.layers:
        part = copy.copy(layer)
        part.keys, part.values = layer.keys.index_select(0, rows), layer.values.index_select(0, rows)
        out.layers.append(part)
    return out


class DecodingCore:
    """Forward passes with explicit positions and masks on a loaded model.

    Every pass checks its positions first: any position past ``max_position_embeddings`` is an error (raised
    before the model runs), fractional positions on a model without rotary embeddings are refused, and so are
    positions that would move a dynamic/longrope RoPE to other frequencies. The one logical mask of a pass is
    turned into what each layer type needs (sliding windows included) by the model's
    :class:`~tempo_lab.families.Family`. The model runs in eval mode; a model that was training is put back.
    """

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.model = lm.model
        self.dtype = lm.dtype
        self.device = lm.device
        self.is_rotary = lm.is_rotary  # walks every module: look it up once, not on every step
        self.family = family_of(lm.model)
        self.family.check_attention()
        self.split_head = split_head(lm.model)
        self.keeps_logits = keeps_logits(lm.model)

    def check_positions(self, positions: torch.Tensor, *, after: float | None = None) -> torch.Tensor:
        """Validate ``(batch, n)`` positions for this model and return them in the form it takes."""
        pos.validate(positions, max_positions=self.lm.max_positions, strict_context=True, after=after)
        self.family.check_positions(positions)
        return pos.as_model_positions(positions, self.is_rotary).to(self.device)

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        cache: DynamicCache | None,
        *,
        grad: bool = False,
        ranks: torch.Tensor | None = None,
        last: bool = False,
    ) -> torch.Tensor:
        """One forward pass; returns logits ``(batch, q, vocab)`` (``last``: of the last slot only,
        ``(batch, 1, vocab)``) and appends ``q`` slots to ``cache``.

        ``input_ids`` and ``positions``: ``(batch, q)``; ``mask``: ``(batch, 1, q, cached + q)``, bool or
        additive (a bool mask is converted, never added as 0/1). ``grad``: build the autograd graph (float
        positions that require grad get theirs through the rotary embedding); otherwise no graph is kept.
        ``ranks``: ``(batch, cached + q)``, each slot's rank among its row's real slots, for a padded batch on
        full-length cache layers (sliding windows are counted in them; :meth:`Family.layer_masks`).
        """
        with torch.set_grad_enabled(grad):
            return self._forward(input_ids, positions, mask, cache, ranks, last)

    def inputs(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        cache: DynamicCache | None,
        ranks: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments of one pass, checked: ``input_ids`` ``(batch, q)``, ``position_ids``
        ``(batch, q)`` (float on a rotary model), ``attention_mask`` (the family's additive mask per layer
        type, in the model's dtype, on its device), ``cache`` and ``use_cache``. Any call of the model with
        them (``model(**kwargs)``, an nnsight trace, a TransformerLens bridge) computes the same pass as
        :meth:`forward`, which makes exactly this call. Arguments as :meth:`forward`'s."""
        b, q = input_ids.shape
        kv = q + (cache_length(cache) if cache is not None else 0)
        mask = masks.ensure_additive(mask, self.dtype)
        if mask.shape[0] not in (1, b) or tuple(mask.shape[2:]) != (q, kv):
            raise ValueError(f"mask shape {tuple(mask.shape)} does not fit (batch={b}, 1, q={q}, kv={kv})")
        self.family.check_attention(self.model.config._attn_implementation)
        mask = mask.to(self.device).expand(b, -1, -1, -1)
        return {
            "input_ids": input_ids.to(self.device),
            "position_ids": self.check_positions(positions.expand(b, -1)),
            "attention_mask": self.family.layer_masks(mask, cache, ranks),
            "cache": cache,
            "use_cache": cache is not None,
        }

    def _forward(self, input_ids, positions, mask, cache, ranks=None, last=False) -> torch.Tensor:
        b = input_ids.shape[0]
        kwargs = self.inputs(input_ids, positions, mask, cache, ranks)
        with evaluating(self.model):
            if self.split_head is None:
                keep = {"logits_to_keep": 1} if last and self.keeps_logits else {}
                logits = self.model(**kwargs, **keep).logits
                return (logits[:, -1:] if last else logits).float()
            base, weight = self.split_head
            hidden = base(**kwargs).last_hidden_state  # (batch, q, hidden)
        hidden = hidden[:, -1:] if last else hidden
        logits = (weight @ hidden.reshape(-1, hidden.shape[-1]).to(weight.device).T).T  # (batch * q, vocab)
        return logits.float().reshape(b, hidden.shape[1], -1)

    def prefill(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None) -> Prefix:
        """Run the prompt ``(1, T)`` once (contiguous positions by default) and keep its cache."""
        if input_ids.dim() != 2 or input_ids.shape[0] != 1 or input_ids.shape[1] == 0:
            raise ValueError(
                f"prefill takes one non-empty prompt of shape (1, T), got {tuple(input_ids.shape)}"
            )
        t = input_ids.shape[1]
        positions = pos.contiguous(t) if positions is None else positions
        cache = DynamicCache(config=self.model.config)
        logits = self.forward(input_ids, positions, masks.causal_mask(t, dtype=self.dtype), cache)
        return Prefix(cache=cache, input_ids=input_ids, positions=positions, logits=logits)

    def step(
        self,
        cache: DynamicCache,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Feed ``q`` new tokens per branch on top of ``cache`` (causal over all slots unless ``mask`` is
        given).

        ``input_ids``, ``positions``: ``(batch, q)``; ``mask``: ``(batch, 1, q, cached + q)``. Returns logits
        ``(batch, q, vocab)``; the cache grows by ``q`` slots.
        """
        q = input_ids.shape[1]
        if mask is None:
            mask = masks.causal_mask(q, cache_length(cache) + q, dtype=self.dtype)
        return self.forward(input_ids, positions, mask, cache)

    def full(
        self, input_ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Plain uncached recomputation of a whole sequence: the reference every cached result is checked
        against, and the naive baseline of the benchmarks. ``input_ids``, ``positions``: ``(batch, n)``;
        ``mask``: ``(batch, 1, n, n)`` (causal by default). Returns logits ``(batch, n, vocab)``."""
        n = input_ids.shape[1]
        if mask is None:
            mask = masks.causal_mask(n, dtype=self.dtype)
        return self.forward(input_ids, positions, mask, cache=None)


class Generator:
    """The base of every generator: the loaded model ``lm`` and its :class:`DecodingCore` ``core``."""

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.core = DecodingCore(lm)
