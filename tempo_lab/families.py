"""Model families: what tempo_lab must know about a model's attention layers to stay exact on it.

A custom 4D mask skips all of a model's own mask construction, for every layer type. So tempo_lab builds one
*logical* mask over every cache slot (:mod:`tempo_lab.masks`) and :meth:`Family.layer_masks` turns it into
what each kind of layer needs:

- ``full_attention`` layers get the logical mask as it is;
- ``sliding_attention`` layers get it with the window applied (a query at slot ``i`` sees slots ``j`` with
  ``i - window < j <= i``, counted in cache slots as transformers counts them) and cut to the slots that
  layer's cache still holds (``DynamicSlidingWindowLayer`` keeps only the last ``window - 1`` keys; its
  ``get_mask_sizes`` says where they start). A batch of ragged rows (:class:`~tempo_lab.generators.lockstep.
  Lockstep`) holds padding slots, which must not count: it keeps full-length cache layers and passes each
  slot's rank among its row's real slots, and the window is counted in those ranks instead, so every row
  sees exactly what it sees alone.

Models with per-layer-type masks (``config.layer_types``: Gemma2/3, Qwen2/3, Cohere2, …) take a dict
``{"full_attention": m, "sliding_attention": m_sw}``; a model whose every layer slides and that takes one mask
(Mistral) gets the windowed mask alone.

What cannot be exact is refused, with the reason and what to do instead (:meth:`Family.check_attention`,
:meth:`Family.check_positions`): FlashAttention (it takes no 4D mask and infers packed sequences from
``position_ids``), chunked attention, and positions that move a dynamic or longrope RoPE to other frequencies.

Contents: :class:`Family`, :func:`family_of`, :func:`check_attention`, :data:`SUPPORTED_LAYER_TYPES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, get_layer_types_and_kwargs

SUPPORTED_LAYER_TYPES = ("full_attention", "sliding_attention")
SLIDING = ("sliding_attention",)
FREQUENCY_CHOOSING_ROPE = ("dynamic", "longrope")  # pick frequencies from max(position_ids) + 1


@dataclass(frozen=True)
class Family:
    """What the masks and positions of one model must respect.

    ``layer_types``: one per decoder layer (:data:`SUPPORTED_LAYER_TYPES`); ``window``: the sliding window in
    cache slots (``None`` without sliding layers); ``takes_dict``: the model takes a per-layer-type mask dict;
    ``rope_limit``: with a dynamic or longrope RoPE, positions must stay below it (``None`` otherwise);
    ``attn_implementation``: the model's attention implementation when this was built.
    """

    model_type: str
    layer_types: tuple[str, ...]
    window: int | None
    takes_dict: bool
    rope_type: str
    rope_limit: int | None
    attn_implementation: str

    @property
    def first_sliding(self) -> int | None:
        """Index of the first sliding-window layer (its cache tells where the window starts)."""
        types = self.layer_types
        return types.index("sliding_attention") if "sliding_attention" in types else None

    def check_attention(self, implementation: str | None = None) -> None:
        """Refuse an attention implementation that cannot take tempo_lab's additive 4D masks."""
        check_attention(implementation or self.attn_implementation)

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


def family_of(model: PreTrainedModel) -> Family:
    """What tempo_lab needs to know of ``model`` (read from its config); refuses unsupported layer types."""
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
    return Family(
        model_type=getattr(config, "model_type", ""),
        layer_types=tuple(layer_types),
        window=windows.pop() if windows else None,
        takes_dict=getattr(config, "layer_types", None) is not None,
        rope_type=rope_type,
        rope_limit=rope_limit,
        attn_implementation=str(getattr(model.config, "_attn_implementation", None) or "eager"),
    )


def _rope(config: Any) -> tuple[str, int | None]:
    """``(rope_type, limit)``: the limit below which a frequency-choosing RoPE keeps its base frequencies."""
    params = getattr(config, "rope_parameters", None) or {}
    if params and all(isinstance(v, dict) for v in params.values()):  # one set per layer type (Gemma3)
        params = next((v for v in params.values() if v.get("rope_type") in FREQUENCY_CHOOSING_ROPE), {})
    rope_type = str(params.get("rope_type", "default"))
    if rope_type not in FREQUENCY_CHOOSING_ROPE:
        return rope_type, None
    limit = params.get("original_max_position_embeddings") or getattr(
        config, "original_max_position_embeddings", None
    )
    return rope_type, int(limit or config.max_position_embeddings)
