"""Helpers for the generator tests: record every forward pass of a model, make a model whose EOS is chosen."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from tempo_lab.forward import cache_length
from tempo_lab.models import LoadedModel


@dataclass
class Call:
    """One forward pass as the model saw it (recorded *before* it ran)."""

    input_ids: torch.Tensor  # (batch, q)
    position_ids: torch.Tensor  # (batch, q)
    mask_shape: tuple[int, ...]  # (batch, 1, q, kv), or (batch, kv) for a causal pass
    causal: bool  # the 2D all-ones mask of a causal layout: the model builds its own causal mask
    cached: int  # cache slots before the pass
    cache: object  # the cache object passed (None without cache)
    key_batch_stride: int | None  # stride of layer 0's cached keys along the batch dim (0 = expanded view)


@contextmanager
def record_forwards(lm: LoadedModel) -> Iterator[list[Call]]:
    """Record every forward pass of ``lm.model`` inside the block; the hook is removed on exit."""
    calls: list[Call] = []

    def pre(_module, _args, kwargs):
        cache = kwargs.get("cache")
        stride = None
        if cache is not None and cache.layers and getattr(cache.layers[0], "keys", None) is not None:
            keys = cache.layers[0].keys
            stride = keys.stride(0) if keys.dim() == 4 and keys.shape[0] > 1 else None
        calls.append(
            Call(
                input_ids=kwargs["input_ids"].clone(),
                position_ids=kwargs["position_ids"].clone(),
                mask_shape=tuple(kwargs["attention_mask"].shape),
                causal=kwargs["attention_mask"].dim() == 2 and bool(kwargs["attention_mask"].all()),
                cached=cache_length(cache) if cache is not None else 0,
                cache=cache,
                key_batch_stride=stride,
            )
        )

    # the base model runs in every forward pass, whether the core calls it directly or through the LM head
    handle = lm.model.base_model.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


def with_eos(lm: LoadedModel, token_id: int) -> LoadedModel:
    """The same model with a tokenizer copy whose end-of-sequence token is ``token_id``."""
    tok = copy.deepcopy(lm.tokenizer)
    tok.eos_token = tok.convert_ids_to_tokens(token_id)
    assert tok.eos_token_id == token_id
    return LoadedModel(model=lm.model, tokenizer=tok, name=lm.name)
