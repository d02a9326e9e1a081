"""Model families: the one table of what each family is, and what tempo_lab must respect to stay exact on a
model of it.

:data:`ARCHITECTURES` has one row per ``config.model_type`` (:class:`Architecture`): where its decoder layers,
attention, output projection, MLP and norms sit (:class:`Parts`), how its rotary embedding is laid out
(:class:`RotaryLayout`; ``None`` for a learned position table at the input), whether its logits are exactly
``lm_head(last hidden state)``, whether its attention adds learned sinks or bypasses transformers'
``AttentionInterface``. Every module that needs family knowledge asks it here, through :func:`family_of` and
:meth:`Family.modules`: the forward, the sites of patching, the rotary bands, capture, caches, sinks,
extension and interop. A family without a row is refused before any forward, naming it; every row is held to
the model's own forward by the family matrix (``tests/test_families.py``, :data:`tempo_lab.tiny.MATRIX`).

A custom 4D mask skips all of a model's own mask construction, for every layer type, so tempo_lab builds one
*logical* mask over every cache slot (:mod:`tempo_lab.masks`) and :meth:`Family.layer_masks` turns it into
what each kind of layer needs: ``full_attention`` layers take it as it is, ``sliding_attention`` layers with
their window applied (counted in cache slots, or in a padded batch's ranks of real slots) and cut to the slots
their cache still holds; a model with per-layer-type masks (``config.layer_types``) takes a dict of both. A
causal layout needs none of this: the model builds its own masks.

What cannot be exact is refused, with the reason and what to do instead (:meth:`Family.check_attention`,
:meth:`Family.check_positions`, :meth:`Family.check_own_attention`): FlashAttention (no 4D mask, packed
sequences inferred from ``position_ids``), chunked attention, positions that move a dynamic or longrope RoPE
to other frequencies, and tempo_lab's own attention functions where they would not run whole.

Contents: :class:`Parts`, :class:`RotaryLayout`, :class:`Architecture`, :data:`ARCHITECTURES`,
:class:`Family`, :class:`Modules`, :func:`family_of`, :func:`architecture_of`, :func:`rope_parameters`,
:func:`check_attention`, :data:`SUPPORTED_LAYER_TYPES`, :data:`FREQUENCY_CHOOSING_ROPE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, get_layer_types_and_kwargs

SUPPORTED_LAYER_TYPES = ("full_attention", "sliding_attention")
SLIDING = ("sliding_attention",)
FREQUENCY_CHOOSING_ROPE = ("dynamic", "longrope")  # pick frequencies from max(position_ids) + 1


@dataclass(frozen=True)
class Parts:
    """Where a family keeps its modules, as attribute names: ``layers`` (the decoder layers, in the base
    model), ``attention`` and ``mlp`` (in a layer), ``projection`` (the attention's output projection, in the
    attention module) and ``norms`` (in a layer)."""

    layers: str
    attention: str
    projection: str
    mlp: str
    norms: tuple[str, ...]


@dataclass(frozen=True)
class RotaryLayout:
    """How a family's rotary embedding reaches its layers: the base model's ``rotary_emb`` gives every layer
    its ``position_embeddings`` (cos, sin), one column per rotated dimension, or one per rotated pair where
    ``half_width`` (gpt-oss), computed from the positions, or looked up in a table of integer positions where
    ``table`` (GPT-J, CodeGen: no fractional positions, no position past the table, no frequencies to read
    or rescale). Interleaved pairs and partial rotary need no entry: the model's own
    ``apply_rotary_pos_emb`` applies them."""

    half_width: bool = False
    table: bool = False


@dataclass(frozen=True)
class Architecture:
    """One family's row (see the module docstring). ``rotary`` ``None``: positions are a learned table at
    the input (GPT-2); ``plain_head``: the logits are exactly ``lm_head(last hidden state)`` with a bias-free
    head (the forward then projects only the rows it needs); ``sinks``: its attention adds learned sinks to
    every softmax (gpt-oss), which tempo_lab's own attention functions (Self-Extend, row capture) do not
    compute, so those are refused on it; ``interface``: its attention modules attend through transformers'
    ``AttentionInterface``, where tempo_lab's registered attention functions take over (Falcon computes its
    attention itself, so they would be silently skipped: refused); ``layer_kwargs``: what a decoder layer
    called alone needs besides the hidden states, mask and positions (Falcon's ``alibi=None``)."""

    parts: Parts
    rotary: RotaryLayout | None = RotaryLayout()
    plain_head: bool = False
    sinks: bool = False
    interface: bool = True
    layer_kwargs: tuple[tuple[str, Any], ...] = ()

    @property
    def has_bands(self) -> bool:
        """A rotary embedding computed from the positions, band by band (not a table of any kind)."""
        return self.rotary is not None and not self.rotary.table


_PRE_NORM = ("input_layernorm", "post_attention_layernorm")
_SANDWICH = (*_PRE_NORM, "pre_feedforward_layernorm", "post_feedforward_layernorm")
_POST_NORM = ("post_attention_layernorm", "post_feedforward_layernorm")
_LLAMA = Parts("layers", "self_attn", "o_proj", "mlp", _PRE_NORM)
_GPTJ = Parts("h", "attn", "out_proj", "mlp", ("ln_1",))
_TABLE = RotaryLayout(table=True)

#: one row per ``config.model_type``; every row is in the family matrix (:data:`tempo_lab.tiny.MATRIX`)
ARCHITECTURES: dict[str, Architecture] = {
    **dict.fromkeys(("llama", "mistral", "qwen2", "qwen3", "olmo"), Architecture(_LLAMA, plain_head=True)),
    "phi3": Architecture(_LLAMA, plain_head=True),
    **dict.fromkeys(("gemma", "granite", "stablelm", "starcoder2", "helium", "smollm3", "glm"),
                    Architecture(_LLAMA)),  # fmt: skip
    "gemma2": Architecture(Parts("layers", "self_attn", "o_proj", "mlp", _SANDWICH)),
    "gemma3_text": Architecture(Parts("layers", "self_attn", "o_proj", "mlp", _SANDWICH)),
    "olmo2": Architecture(Parts("layers", "self_attn", "o_proj", "mlp", _POST_NORM), plain_head=True),
    "olmo3": Architecture(Parts("layers", "self_attn", "o_proj", "mlp", _POST_NORM)),
    "cohere": Architecture(Parts("layers", "self_attn", "o_proj", "mlp", ("input_layernorm",))),
    "cohere2": Architecture(Parts("layers", "self_attn", "o_proj", "mlp", ("input_layernorm",))),
    "phi": Architecture(Parts("layers", "self_attn", "dense", "mlp", ("input_layernorm",))),
    "gpt_neox": Architecture(Parts("layers", "attention", "dense", "mlp", _PRE_NORM)),
    "falcon": Architecture(Parts("h", "self_attention", "dense", "mlp", ("input_layernorm",)),
                           interface=False, layer_kwargs=(("alibi", None),)),  # fmt: skip
    "gpt_oss": Architecture(_LLAMA, RotaryLayout(half_width=True), sinks=True),
    "gptj": Architecture(_GPTJ, _TABLE),
    "codegen": Architecture(_GPTJ, _TABLE),
    "gpt2": Architecture(Parts("h", "attn", "c_proj", "mlp", ("ln_1", "ln_2")), None, plain_head=True),
}


@dataclass
class Modules:
    """Per decoder layer of one model, as its row names them: the layer, attention, projection, MLP, norms."""

    layers: list[nn.Module]
    attentions: list[nn.Module]
    projections: list[nn.Module]
    mlps: list[nn.Module]
    norms: list[dict[str, nn.Module]]


def _part(owner: nn.Module, name: str, what: str) -> nn.Module:
    found = getattr(owner, name, None)
    if not isinstance(found, nn.Module):
        raise ValueError(
            f"{what} has no {name!r}: the family table's row does not fit this model "
            "(tempo_lab.families.ARCHITECTURES)"
        )
    return found


@dataclass(frozen=True)
class Family:
    """What the masks, positions and modules of one model must respect: its row of :data:`ARCHITECTURES`
    (``architecture``) and what its config adds.

    ``layer_types``: one per decoder layer (:data:`SUPPORTED_LAYER_TYPES`); ``window``: the sliding window in
    cache slots (``None`` without sliding layers); ``takes_dict``: the model takes a per-layer-type mask dict;
    ``rope_limit``: with a dynamic or longrope RoPE, positions must stay below it (``None`` otherwise);
    ``attn_implementation``: the model's attention implementation when this was built.
    """

    model_type: str
    architecture: Architecture
    layer_types: tuple[str, ...]
    window: int | None
    takes_dict: bool
    rope_type: str
    rope_limit: int | None
    attn_implementation: str

    @property
    def first_sliding(self) -> int | None:
        """Index of the first sliding-window layer (its cache tells where the window starts)."""
        return self.layer_types.index(SLIDING[0]) if SLIDING[0] in self.layer_types else None

    @property
    def is_rotary(self) -> bool:
        """Whether positions enter through a rotary embedding in every layer (not a table at the input)."""
        return self.architecture.rotary is not None

    @property
    def has_bands(self) -> bool:
        """Whether the rotary embedding is computed from the positions band by band (so bands, scalings,
        Self-Extend and per-layer positions apply): rotary, and not looked up in a table."""
        return self.architecture.has_bands

    @property
    def integer_positions(self) -> bool:
        """Whether the model takes integer positions only: a position table at the input (GPT-2) or a rotary
        embedding looked up in a table (GPT-J, CodeGen)."""
        return not self.has_bands

    def position_reason(self) -> str:
        """Why this family takes integer positions only (for messages), or ``""``."""
        if self.architecture.rotary is None:
            return "it has no rotary position embedding (it looks positions up in a learned table)"
        table = f"its rotary embedding ({self.model_type}) looks cos and sin up in a table of integer"
        return f"{table} positions" if self.architecture.rotary.table else ""

    def modules(self, model: PreTrainedModel) -> Modules:
        """Every decoder layer's modules as the row names them; a part the model lacks is refused, naming
        the family, the layer and the part."""
        parts, kind = self.architecture.parts, self.model_type
        layers = list(_part(model.base_model, parts.layers, f"{kind}'s base model"))
        found = Modules(layers, [], [], [], [])
        for i, layer in enumerate(layers):
            where = f"layer {i} of {kind}"
            found.attentions.append(attention := _part(layer, parts.attention, where))
            found.projections.append(_part(attention, parts.projection, f"the attention of {where}"))
            found.mlps.append(_part(layer, parts.mlp, where))
            found.norms.append({n: _part(layer, n, where) for n in parts.norms})
        return found

    def check_attention(self, implementation: str | None = None) -> None:
        """Refuse an attention implementation that cannot take tempo_lab's additive 4D masks."""
        check_attention(implementation or self.attn_implementation)

    def takes_own_attention(self, *, computes_softmax: bool = True) -> bool:
        """Whether tempo_lab's registered attention functions run exactly here (see the next method)."""
        return self.architecture.interface and not (computes_softmax and self.architecture.sinks)

    def check_own_attention(self, what: str, *, computes_softmax: bool = True) -> None:
        """Refuse ``what`` (an attention function tempo_lab registers) on a family that would not attend
        through it (no ``AttentionInterface``), or, where the function ``computes_softmax`` itself, whose
        attention it would not compute whole (learned sinks)."""
        if not self.architecture.interface:
            raise ValueError(
                f"{what} attends through an attention function registered with transformers' "
                f"AttentionInterface, and {self.model_type} computes its attention itself, without that "
                "interface: it would silently run without it, so it is refused"
            )
        if computes_softmax and self.architecture.sinks:
            raise ValueError(
                f"{what} attends through tempo_lab's own attention function, and {self.model_type}'s "
                "attention adds learned sinks to every softmax, which that function does not compute: "
                "refused rather than inexact"
            )

    def check_positions(self, positions: torch.Tensor) -> None:
        """Refuse positions that would move a dynamic or longrope RoPE to other frequencies."""
        if self.rope_limit is None or positions.numel() == 0:
            return
        top = float(positions.max())
        if top + 1 > self.rope_limit:
            raise ValueError(
                f"position {top:g} is past {self.rope_limit - 1}: this model's RoPE (rope_type "
                f"{self.rope_type!r}) chooses its frequencies from max(position_ids) + 1, so such a position "
                "rotates every token differently and no longer matches the cached keys; keep positions below "
                f"{self.rope_limit} (original_max_position_embeddings), or load the model with "
                "rope_parameters={'rope_type': 'default', ...} to study it without scaling"
            )

    def layer_masks(
        self, logical: torch.Tensor, cache: Cache | None = None, ranks: torch.Tensor | None = None
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """The ``attention_mask`` argument for a forward pass.

        A sliding layer's query at slot ``i`` sees slots ``j`` with ``i - window < j <= i`` (counted as
        transformers counts them), cut to the slots its cache holds (``DynamicSlidingWindowLayer`` keeps the
        last ``window - 1`` keys; ``get_mask_sizes`` says where they start). A batch of ragged rows
        (:class:`~tempo_lab.generators.lockstep.Lockstep`) holds padding slots, which must not count: it
        keeps full-length cache layers and passes each slot's rank among its row's real slots.

        ``logical``: additive ``(batch, 1, q, kv)`` over every slot, the queries being the last ``q``;
        ``cache``: the cache the pass appends to (``None`` for an uncached pass over the whole sequence);
        ``ranks``: ``(batch, kv)``, each slot's rank among its row's real (non-padding) slots, to count the
        window in (``None``: count it in slots). Returns ``logical`` for models without sliding layers;
        otherwise the sliding layers' mask ``(batch, 1, q, kv_held)``, alone (every layer slides, one mask
        taken) or in a dict beside ``logical``.
        """
        if self.window is None:
            return logical
        q, kv = logical.shape[-2:]
        if ranks is None:
            ranks = torch.arange(kv, device=logical.device)[None]
        ranks = ranks.to(logical.device)
        outside = (ranks[:, kv - q :, None] - ranks[:, None, :]) >= self.window  # (batch or 1, q, kv)
        sliding = logical.masked_fill(outside[:, None], torch.finfo(logical.dtype).min)
        if cache is not None:
            held, offset = cache.get_mask_sizes(q, self.first_sliding)
            sliding = sliding[..., offset : offset + held]
        if not self.takes_dict:
            return sliding
        return {"full_attention": logical, "sliding_attention": sliding}


def check_attention(implementation: str) -> None:
    """Refuse an attention implementation that cannot take tempo_lab's additive 4D masks (FlashAttention)."""
    if "flash" in implementation:
        raise ValueError(
            f"attention implementation {implementation!r} takes no 4D mask, and with batch 1 it infers "
            "packed sequences from position_ids (a repeated or restarting position starts a new "
            "segment), so gaps, fractional and shared positions cannot be exact; load the model with "
            "attn_implementation='eager' (needed for attention weights) or 'sdpa'"
        )


def architecture_of(model: PreTrainedModel) -> tuple[str, Architecture]:
    """``(model_type, its row)``; a family without a row is refused, naming it and the known ones."""
    config = model.config.get_text_config(decoder=True)
    kind = getattr(config, "model_type", None) or getattr(model.config, "model_type", "")
    if kind not in ARCHITECTURES:
        raise ValueError(
            f"tempo_lab does not know the family {kind!r} ({type(model).__name__}): its exactness has not "
            f"been checked, so it is refused. Known families: {', '.join(sorted(ARCHITECTURES))}. To add "
            "one, give it a row in tempo_lab.families.ARCHITECTURES and a tiny config in "
            "tempo_lab.tiny.MATRIX, and run tests/test_families.py"
        )
    return kind, ARCHITECTURES[kind]


def family_of(model: PreTrainedModel) -> Family:
    """What tempo_lab needs to know of ``model`` (its row, and what its config adds); refuses a family without
    a row and unsupported layer types."""
    kind, architecture = architecture_of(model)
    config = model.config.get_text_config(decoder=True)
    layer_types, per_layer = get_layer_types_and_kwargs(config)
    unknown = sorted(set(layer_types) - set(SUPPORTED_LAYER_TYPES))
    if unknown:
        raise ValueError(
            f"{type(model).__name__} has {unknown[0]!r} layers; tempo_lab builds masks for "
            f"{' and '.join(SUPPORTED_LAYER_TYPES)} layers only, so its results would not be exact"
        )
    windows = {kw.get("sliding_window") for kw, t in zip(per_layer, layer_types, strict=True) if t in SLIDING}
    if len(windows) > 1:
        raise ValueError(f"{type(model).__name__} has sliding layers of different windows {sorted(windows)}")
    rope_type, rope_limit = _rope(config)
    takes_dict = getattr(config, "layer_types", None) is not None
    implementation = str(getattr(model.config, "_attn_implementation", None) or "eager")
    window = windows.pop() if windows else None
    types = tuple(layer_types)
    return Family(kind, architecture, types, window, takes_dict, rope_type, rope_limit, implementation)


def rope_parameters(config: Any, layer_type: str | None = None) -> dict:
    """The config's ``rope_parameters`` for ``layer_type`` (a model with one set per layer type, Gemma 3:
    that type's; ``None``: the first frequency-choosing set, else the first set), ``{}`` when it has none."""
    params = getattr(config, "rope_parameters", None) or {}
    if params and all(isinstance(v, dict) for v in params.values()):  # one set per layer type
        if layer_type is not None:
            return dict(params.get(layer_type) or {})
        chosen = [v for v in params.values() if v.get("rope_type") in FREQUENCY_CHOOSING_ROPE]
        return dict((chosen or list(params.values()))[0])
    return dict(params)


def _rope(config: Any) -> tuple[str, int | None]:
    """``(rope_type, limit)``: the limit below which a frequency-choosing RoPE keeps its base frequencies."""
    params = rope_parameters(config)
    rope_type = str(params.get("rope_type", "default"))
    if rope_type not in FREQUENCY_CHOOSING_ROPE:
        return rope_type, None
    own = getattr(config, "original_max_position_embeddings", 0)
    limit = params.get("original_max_position_embeddings") or own
    return rope_type, int(limit or config.max_position_embeddings)
