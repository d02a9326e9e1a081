"""Chunk reuse (:mod:`tempo_lab.caches.chunks`) against the full recompute: with no prefix it is the
recompute; layer 0's keys and values of the chunk always equal it; on a 1-layer model the whole next-token
distribution does; on two layers the gap is real, and putting back layer 1's recomputed cache closes it."""

from __future__ import annotations

import pytest
import torch

from tempo_lab.caches import concat, reuse_chunk
from tempo_lab.tiny import MATRIX, tiny_random

PREFIX, CHUNK = "In a small village by the sea, ", "there lived an old fisherman"


@pytest.mark.parametrize("family", ["llama", "qwen3", "gpt_neox"])
def test_layer_zero_of_the_chunk_equals_the_recompute_and_the_gap_starts_at_layer_one(family):
    lm = tiny_random(family, **MATRIX[family])
    reuse = reuse_chunk(lm, lm.encode(PREFIX), lm.encode(CHUNK))
    first = reuse.deviation.iloc[0]
    assert first.key_error < 1e-6 and first.value_error < 1e-6
    assert reuse.deviation.iloc[1].value_error > 1e-3  # layer 1's chunk never saw the prefix
    assert reuse.tv > 1e-3
    # two layers: layer 0 is exact already, so putting it back changes nothing, and layer 1 closes the gap
    assert abs(float(reuse.restored[0]) - reuse.tv) < 1e-6 and float(reuse.restored[1]) < 1e-6


def test_a_one_layer_model_reuses_exactly():
    lm = tiny_random("llama", num_hidden_layers=1)
    reuse = reuse_chunk(lm, lm.encode(PREFIX), lm.encode(CHUNK))
    torch.testing.assert_close(reuse.reused, reuse.recomputed, atol=1e-6, rtol=0)
    assert reuse.top1_agrees and reuse.tv < 1e-5


def test_with_no_prefix_the_reused_cache_is_the_recompute(tiny):
    reuse = reuse_chunk(tiny, tiny.encode(PREFIX)[:, :0], tiny.encode(CHUNK))
    assert reuse.tv == 0.0 and reuse.deviation[["key_error", "value_error"]].to_numpy().max() == 0.0


def test_concat_holds_both_caches_in_order(tiny):
    from tempo_lab.generators import DecodingCore

    core = DecodingCore(tiny)
    a, b = core.prefill(tiny.encode("ab")).cache, core.prefill(tiny.encode("cde")).cache
    both = concat(a, b)
    assert both.get_seq_length() == 5 and a.get_seq_length() == 2
    assert torch.equal(both.layers[1].values[:, :, 2:], b.layers[1].values)


def test_bad_input_is_refused(tiny):
    with pytest.raises(ValueError, match=r"chunk must be token ids of shape \(1, n\) with n >= 2"):
        reuse_chunk(tiny, tiny.encode(PREFIX), tiny.encode("a"))
    gemma2 = tiny_random("gemma2", **MATRIX["gemma2"])
    with pytest.raises(ValueError, match="sliding-window layers: chunk reuse is not supported"):
        reuse_chunk(gemma2, gemma2.encode(PREFIX), gemma2.encode(CHUNK))
