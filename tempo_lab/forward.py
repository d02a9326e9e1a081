"""The one forward every tempo_lab number passes through: a model, token ids and a
:class:`~tempo_lab.layout.Layout`, with a cache or without.

    core = DecodingCore(lm)
    logits = core.forward(ids, Layout.contiguous(n))               # (1, n, vocab), uncached
    prefix = core.prefill(ids)                                     # the prompt, once, with its cache
    logits = core.step(branch(prefix.cache, 3), tokens, layout)    # a cached step: a slice of a layout

Contents: :class:`DecodingCore` (``inputs``, ``forward``, ``prefill``, ``step``, ``full``), :class:`Prefix` (a
prefilled prompt), :func:`branch` (a batch-``n`` view of a prefix cache), :func:`select_rows` (a copy of some
rows of a cache), :func:`cache_length`, :func:`split_head`.

Every pass passes its own ``position_ids`` and an explicit attention mask; nothing is patched into the model.
``generate()`` is not used because it recomputes positions itself, which erases gaps, fractional positions
and shared positions. A causal layout hands the model a 2D all-ones mask, and the model builds its own causal
(and sliding-window) masks, SDPA's ``is_causal`` kernel included, so a 16k-token pass holds no 16k x 16k mask;
any other layout becomes the family's additive 4D mask(s) (:meth:`~tempo_lab.families.Family.layer_masks`).
Either way transformers' packed-sequence detection, which splits a sequence at every gap when no mask is
given, never runs.

What is checked before the model runs (a mistake is named with its value): the layout against the ids (slot
counts, the cache's length), token ids inside the vocabulary, positions the model can take (its context,
fractional positions on a model with integer positions, a frequency-choosing RoPE), the attention
implementation. After it runs: logits with a NaN or an infinity are an error naming the first bad row, never
a result.

Branches: :func:`branch` turns a batch-1 prefix cache into a batch-``n`` cache whose tensors are *expanded
views* of the prefix (no copy). A step on the branched cache concatenates new keys onto those views into fresh
tensors, so the prefix cache itself is never modified and can be branched again.

Logits: for families whose logits are exactly ``lm_head(last_hidden_state)`` (the family table's
``plain_head``, a bias-free head), the core runs the base model and computes the logits as
``weight @ hidden^T``. On CPU, BLAS serves ``F.linear`` with 2-3 rows about one row at a time: on the bundled
model the vocabulary projection of 2 rows took 14.6 ms through ``lm_head`` and 2.3 ms as ``weight @
hidden^T`` (1 row: 6.6 ms either way), which matters for parallel sets, batched branches and prompts. The
logits are the model's own (a test checks them against a plain ``model(...)`` call). Other families go through
``model(...)`` unchanged. Logits come back in float32, or in float64 from a float64 model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel

from tempo_lab import positions as pos
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel, evaluating, keeps_logits, widened
from tempo_lab.plumbing import checks


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


class NonFiniteLogits(ValueError):
    """A forward pass gave NaN or infinite logits (see :meth:`DecodingCore.forward`)."""


def split_head(model: PreTrainedModel, plain: bool) -> tuple[nn.Module, torch.Tensor] | None:
    """``(base model, head weight (vocab, hidden))`` when the model's logits are exactly
    ``lm_head(base(...).last_hidden_state)`` (``plain``: its family's row says so) with a bias-free linear
    head; ``None`` otherwise."""
    head = model.get_output_embeddings()
    base = model.base_model
    if not plain or not isinstance(head, nn.Linear) or head.bias is not None or base is model:
        return None
    return base, head.weight


def cache_length(cache: DynamicCache) -> int:
    """Number of slots (tokens) held by the cache."""
    return cache.get_seq_length()


def branch(cache: DynamicCache, n: int) -> DynamicCache:
    """A batch-``n`` cache over a batch-1 cache, built from expanded views (shares memory, copies nothing)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"need at least one branch, got {n!r}")
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
    """Forward passes of a loaded model under layouts (see the module docstring).

    Every pass checks its positions first: any position past ``max_position_embeddings`` is an error (raised
    before the model runs), fractional positions on a model that takes integer positions only are refused,
    and so are positions that would move a dynamic/longrope RoPE to other frequencies. The model runs in eval
    mode; a model that was training is put back."""

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.model = lm.model
        self.dtype = lm.dtype
        self.device = lm.device
        self.family = lm.family
        self.is_rotary = self.family.is_rotary
        self.integer_reason = self.family.position_reason()  # "" where fractional positions are computed
        self.family.check_attention()
        self.split_head = split_head(lm.model, self.family.architecture.plain_head)
        self.keeps_logits = keeps_logits(lm.model)
        self.vocab = lm.model.get_input_embeddings().weight.shape[0]

    def check_positions(
        self, positions: torch.Tensor, *, after: float | None = None, ordered: bool = True
    ) -> torch.Tensor:
        """Validate ``(batch, n)`` positions for this model and return them in the form it takes."""
        pos.validate(
            positions, max_positions=self.lm.max_positions, strict_context=True, after=after, ordered=ordered
        )
        self.family.check_positions(positions)
        return pos.as_model_positions(positions, self.integer_reason).to(self.device)

    def check_ids(self, input_ids: Any, name: str = "input_ids") -> torch.Tensor:
        """``input_ids`` if they are ``(batch, q)`` integer token ids inside the vocabulary (``ValueError``
        naming the first one outside it)."""
        if not isinstance(input_ids, torch.Tensor):
            raise ValueError(f"{name} must be a tensor of token ids, got {type(input_ids).__name__}")
        if input_ids.dim() != 2 or input_ids.shape[1] == 0:
            raise ValueError(f"{name} must have shape (batch, q) with q >= 1, got {tuple(input_ids.shape)}")
        if input_ids.is_floating_point() or input_ids.dtype == torch.bool or input_ids.is_complex():
            raise ValueError(f"{name} must be integer token ids, got {input_ids.dtype}")
        bad = (input_ids < 0) | (input_ids >= self.vocab)
        if bad.any():
            b, i = (int(x) for x in bad.nonzero()[0])
            raise ValueError(
                f"{name}[{b}, {i}] = {int(input_ids[b, i])} is outside the vocabulary (0..{self.vocab - 1})"
            )
        return input_ids

    def inputs(
        self,
        input_ids: torch.Tensor,
        layout: Layout,
        cache: DynamicCache | None = None,
        ranks: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments of one pass, checked: ``input_ids`` ``(batch, q)``, ``position_ids``
        ``(batch, q)`` (float on a rotary model), ``attention_mask`` (a causal layout's 2D all-ones mask, or
        the family's additive mask per layer type, in the model's dtype, on its device), ``cache`` and
        ``use_cache``. Any call of the model with them (``model(**kwargs)``, an nnsight trace, a
        TransformerLens bridge) computes the same pass as :meth:`forward`, which makes exactly this call.
        ``ranks``: ``(batch, cached + q)``, each slot's rank among its row's real slots, for a padded batch on
        full-length cache layers (sliding windows are counted in them; :meth:`Family.layer_masks`)."""
        if not isinstance(layout, Layout):
            raise ValueError(f"layout must be a tempo_lab Layout, got {type(layout).__name__}")
        input_ids = self.check_ids(input_ids)
        b, q = input_ids.shape
        cached = cache_length(cache) if cache is not None else 0
        if layout.q != q or layout.batch not in (1, b):
            raise ValueError(
                f"the {layout.label} layout places {layout.batch} row(s) of {layout.q} slots; the ids are "
                f"{b} row(s) of {q}"
            )
        if layout.mask is not None and layout.cached != cached:
            raise ValueError(
                f"the {layout.label} layout's mask sees {layout.cached} cached slots before its {q} queries; "
                f"the cache holds {cached}"
            )
        self.family.check_attention(self.model.config._attn_implementation)
        if layout.is_causal and ranks is None:
            attention_mask: Any = torch.ones(b, cached + q, dtype=torch.long, device=self.device)
        else:
            mask = layout.full_mask(self.dtype, cached + q).to(self.device).expand(b, -1, -1, -1)
            attention_mask = self.family.layer_masks(mask, cache, ranks)
        return {
            "input_ids": input_ids.to(self.device),
            "position_ids": self.check_positions(
                layout.positions.expand(b, -1), ordered=not layout.any_order
            ),
            "attention_mask": attention_mask,
            "cache": cache,
            "use_cache": cache is not None,
        }

    def forward(
        self,
        input_ids: torch.Tensor,
        layout: Layout,
        cache: DynamicCache | None = None,
        *,
        grad: bool = False,
        ranks: torch.Tensor | None = None,
        last: bool = False,
    ) -> torch.Tensor:
        """One forward pass of ``input_ids`` ``(batch, q)`` laid out by ``layout``; returns logits ``(batch,
        q, vocab)`` (``last``: of the last slot only, ``(batch, 1, vocab)``) and appends ``q`` slots to
        ``cache``. ``grad``: build the autograd graph (float positions that require grad get theirs through
        the rotary embedding); otherwise no graph is kept. ``ranks``: see :meth:`inputs`.

        Raises :class:`NonFiniteLogits` naming the first row with a NaN or an infinity."""
        with torch.set_grad_enabled(grad):
            kwargs = self.inputs(input_ids, layout, cache, ranks)
            logits = self._logits(kwargs, last)
        bad = ~torch.isfinite(logits.sum(-1))  # (batch, q): one reduction, a NaN or an inf anywhere spreads
        if bad.any():
            r, i = (int(x) for x in bad.nonzero()[0])
            raise NonFiniteLogits(
                f"the forward pass gave non-finite logits at row {r}, slot {i} of {logits.shape[1]}: a query "
                "with nothing to attend to, or weights that overflow in this dtype"
            )
        return logits

    def _logits(self, kwargs: dict, last: bool) -> torch.Tensor:
        b = kwargs["input_ids"].shape[0]
        with evaluating(self.model):
            if self.split_head is None:
                keep = {"logits_to_keep": 1} if last and self.keeps_logits else {}
                logits = self.model(**kwargs, **keep).logits
                return widened(logits[:, -1:] if last else logits)
            base, weight = self.split_head
            hidden = base(**kwargs).last_hidden_state  # (batch, q, hidden)
        hidden = hidden[:, -1:] if last else hidden
        logits = (weight @ hidden.reshape(-1, hidden.shape[-1]).to(weight.device).T).T  # (batch * q, vocab)
        return widened(logits).reshape(b, hidden.shape[1], -1)

    def token_logprobs(self, input_ids: torch.Tensor, layout: Layout, *, chunk: int = 1024) -> torch.Tensor:
        """``(batch, q - 1)``: the log-probability of each next token of ``input_ids`` ``(batch, q)``, laid
        out by ``layout``, under the pass (its loss by position is the negative). Where the family's logits
        are a linear head over the last hidden states (:func:`split_head`), the head is applied ``chunk``
        slots at a time, so a 16k-token pass never holds its ``q x vocab`` logits (3.2 GB in float32 on
        SmolLM2); otherwise the logits of the pass are computed whole. Float64 when the model is, float32
        otherwise."""
        chunk = checks.count("chunk", chunk)
        if self.split_head is None:
            logits = self.forward(input_ids, layout)
            targets = input_ids[:, 1:, None].to(logits.device)
            return torch.log_softmax(logits[:, :-1], -1).gather(-1, targets)[..., 0]
        with torch.no_grad():
            kwargs = self.inputs(input_ids, layout)
            base, weight = self.split_head
            with evaluating(self.model):
                hidden = base(**kwargs).last_hidden_state[:, :-1]  # (batch, q - 1, hidden)
            targets = kwargs["input_ids"][:, 1:]
            out = []
            for a in range(0, hidden.shape[1], chunk):
                logits = widened(hidden[:, a : a + chunk] @ weight.T)  # (batch, rows, vocab)
                out.append(torch.log_softmax(logits, -1).gather(-1, targets[:, a : a + chunk, None])[..., 0])
        found = torch.cat(out, 1)
        if not torch.isfinite(found).all():
            raise NonFiniteLogits("the forward pass gave non-finite log-probabilities")
        return found

    def prefill(self, input_ids: torch.Tensor, layout: Layout | None = None) -> Prefix:
        """Run the prompt ``(1, T)`` once (contiguous positions by default) and keep its cache."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[0] != 1:
            got = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else input_ids
            raise ValueError(f"prefill takes one non-empty prompt of shape (1, T), got {got!r}")
        t = input_ids.shape[1]
        layout = Layout.contiguous(t) if layout is None else layout
        cache = DynamicCache(config=self.model.config)
        logits = self.forward(input_ids, layout, cache)
        return Prefix(cache=cache, input_ids=input_ids, positions=layout.positions, logits=logits)

    def step(self, cache: DynamicCache, input_ids: torch.Tensor, layout: Layout) -> torch.Tensor:
        """Feed ``q`` new tokens per branch on top of ``cache``: ``input_ids`` ``(batch, q)`` laid out by
        ``layout`` (causal over every slot when its mask is ``None``, else a mask ``(batch, 1, q, cached +
        q)``: a slice of a whole-sequence layout, :meth:`Layout.step`). Returns logits ``(batch, q, vocab)``;
        the cache grows by ``q`` slots."""
        return self.forward(input_ids, layout, cache)

    def full(self, input_ids: torch.Tensor, layout: Layout | None = None) -> torch.Tensor:
        """Plain uncached recomputation of a whole sequence: the reference every cached result is checked
        against, and the naive baseline of the benchmarks. ``input_ids``: ``(batch, n)``; ``layout``:
        contiguous and causal by default. Returns logits ``(batch, n, vocab)``."""
        return self.forward(input_ids, Layout.contiguous(input_ids.shape[-1]) if layout is None else layout)
