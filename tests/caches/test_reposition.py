"""Re-positioned caches (:func:`tempo_lab.caches.reposition`) against a recompute at the new positions: the
keys of layer 0 on every rotary family of the matrix (each layer type's own base in layer 0 on Gemma 3), a
1-layer model's whole next-token distribution, and a shift of 0 leaving every key bit-identical."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import masks
from tempo_lab.caches import reposition
from tempo_lab.families import ARCHITECTURES
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.tiny import MATRIX, tiny_random
from tests.helpers import EXACT, assert_same

ROTARY = [f for f in MATRIX if ARCHITECTURES[f].has_bands]
PROMPT = "Once upon a time"  # 16 byte tokens


def shift_of(n: int) -> torch.Tensor:
    """``(n,)``: every slot moved, fractional and uneven, order kept."""
    return 7.5 + 0.25 * torch.arange(n, dtype=torch.float32)


def prefill(lm, positions: torch.Tensor):
    core = DecodingCore(lm)
    ids = lm.encode(PROMPT)
    return core, ids, core.prefill(ids, Layout(positions[None]))


def layer0_keys_equal_a_recompute(lm) -> None:
    n = len(lm.encode(PROMPT)[0])
    p = torch.arange(n, dtype=torch.float32)
    _, _, old = prefill(lm, p)
    _, _, new = prefill(lm, p + shift_of(n))
    moved = reposition(lm, old.cache, shift_of(n))
    assert_same(moved.layers[0].keys, new.cache.layers[0].keys)
    assert (old.cache.layers[0].keys - new.cache.layers[0].keys).abs().max() > 100 * EXACT  # it moved
    torch.testing.assert_close(moved.layers[0].values, new.cache.layers[0].values, atol=0, rtol=0)


@pytest.mark.parametrize("family", ROTARY)
def test_layer_zero_keys_equal_a_recompute_at_the_new_positions(family):
    layer0_keys_equal_a_recompute(tiny_random(family, **MATRIX[family]))


def test_each_gemma3_layer_type_moves_with_its_own_base():
    """Layer 0 global (base 1e6) here; the matrix's Gemma 3 has it local (base 1e4)."""
    lm = tiny_random("gemma3_text", sliding_window=4, layer_types=["full_attention", "sliding_attention"])
    layer0_keys_equal_a_recompute(lm)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma2", "gpt_neox"])
def test_a_one_layer_model_predicts_from_a_moved_cache_as_from_a_recompute(family):
    overrides = {**MATRIX[family], "num_hidden_layers": 1}
    if "layer_types" in MATRIX[family] or family in ("qwen2", "gemma2"):
        overrides["layer_types"] = ["full_attention"]
    lm = tiny_random(family, **overrides)
    n = len(lm.encode(PROMPT)[0])
    p = torch.arange(n, dtype=torch.float32)
    core, ids, old = prefill(lm, p)
    moved = reposition(lm, old.cache, shift_of(n))
    token = lm.encode("!")
    at = float((p + shift_of(n))[-1]) + 1.5
    step = core.forward(token, Layout(torch.tensor([[at]])), moved)
    everything = torch.cat([ids, token], 1)
    whole = torch.cat([p + shift_of(n), torch.tensor([at])])[None]
    full = core.forward(everything, Layout(whole, masks.causal_mask(n + 1, dtype=lm.dtype)))
    assert_same(step[0, -1], full[0, -1])


def test_a_shift_of_zero_is_bit_identical_and_the_given_cache_is_untouched(tiny):
    n = len(tiny.encode(PROMPT)[0])
    _, _, old = prefill(tiny, torch.arange(n, dtype=torch.float32))
    before = [layer.keys.clone() for layer in old.cache.layers]
    same = reposition(tiny, old.cache, torch.zeros(n))
    assert all(torch.equal(a.keys, b) for a, b in zip(same.layers, before, strict=True))
    reposition(tiny, old.cache, 3.0, slots=[2, 5])
    assert all(torch.equal(a.keys, b) for a, b in zip(old.cache.layers, before, strict=True))


def test_bad_input_is_refused_naming_the_value(tiny, tiny_gpt2):
    n = len(tiny.encode(PROMPT)[0])
    p = torch.arange(n, dtype=torch.float32)
    _, _, old = prefill(tiny, p)
    with pytest.raises(ValueError, match=rf"slots\[1\] = {n} is outside the cache \(slots 0..{n - 1}\)"):
        reposition(tiny, old.cache, 2.0, slots=[0, n])
    with pytest.raises(ValueError, match=rf"shift has shape \(3,\); the cache holds {n} slots"):
        reposition(tiny, old.cache, torch.zeros(3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        reposition(tiny, old.cache, float("nan"))
    with pytest.raises(ValueError, match="no rotary position embedding"):
        reposition(tiny_gpt2, prefill(tiny_gpt2, p)[2].cache, 1.0)
    other = tiny_random("llama", num_hidden_layers=3)
    with pytest.raises(ValueError, match="is it another model's cache"):
        reposition(other, old.cache, 1.0)
    with pytest.warns(UserWarning, match=r"puts slots 3 and 4 on one position \(4\)"):
        reposition(tiny, old.cache, 1.0, slots=[3], positions=p[None])


def test_evicting_no_slot_is_refused_not_a_silent_copy(tiny):
    """Found by tests/test_properties.py, shrunk: ``evict(cache, [])`` returned the cache unchanged."""
    from transformers import DynamicCache

    from tempo_lab.caches.slots import evict

    cache = DynamicCache(config=tiny.model.config)
    ids = tiny.encode("The cat sat")
    DecodingCore(tiny).forward(ids, Layout.contiguous(ids.shape[1]), cache)
    with pytest.raises(ValueError, match="got none"):
        evict(cache, [])
