"""Chunk reuse (:mod:`tempo_lab.caches.chunks`) against the full recompute: with no prefix it is the
recompute; layer 0's keys and values of the chunk always equal it; on a 1-layer model the whole next-token
distribution does; on two layers the gap is real, and putting back layer 1's recomputed cache closes it.
Partial recompute (EPIC, CacheBlend) equals an independent path: the whole prefix + chunk run once, with the
reused tokens' key and value projections replaced by the chunk-alone run's (forward hooks); recomputing every
token is the full recompute, recomputing none the reuse."""

from __future__ import annotations

import pytest
import torch

from tempo_lab.caches import concat, reuse_chunk, selected
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.tiny import MATRIX, tiny_random
from tests.helpers import assert_same

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
    assert_same(reuse.reused, reuse.recomputed)
    assert reuse.top1_agrees and reuse.tv < 1e-5


def test_with_no_prefix_the_reused_cache_is_the_recompute(tiny):
    reuse = reuse_chunk(tiny, tiny.encode(PREFIX)[:, :0], tiny.encode(CHUNK))
    assert reuse.tv == 0.0 and reuse.deviation[["key_error", "value_error"]].to_numpy().max() == 0.0


def test_concat_holds_both_caches_in_order(tiny):
    from tempo_lab.forward import DecodingCore

    core = DecodingCore(tiny)
    a, b = core.prefill(tiny.encode("ab")).cache, core.prefill(tiny.encode("cde")).cache
    both = concat(a, b)
    assert both.get_seq_length() == 5 and a.get_seq_length() == 2
    assert torch.equal(both.layers[1].values[:, :, 2:], b.layers[1].values)


def hooked_reference(lm, prefix, chunk, chosen):
    """The query's next-token probabilities from one uncached run of prefix + chunk in which every chunk
    token not in ``chosen`` (and not the query) gets, in every layer, the key and value projections it had
    in the chunk-alone run: the reused cache, built without any cache surgery."""
    p, m = prefix.shape[1], chunk.shape[1]
    layers = lm.model.model.layers
    alone: dict[tuple[int, str], torch.Tensor] = {}

    def keep(layer, name):
        def hook(_module, _args, output):
            alone[layer, name] = output.detach()

        return hook

    def swap(layer, name):
        def hook(_module, _args, output):
            output = output.clone()
            rows = [i for i in range(m - 1) if i not in chosen]
            output[:, [p + i for i in rows]] = alone[layer, name][:, rows]
            return output

        return hook

    def run(ids, make):
        handles = [getattr(block.self_attn, name).register_forward_hook(make(i, name))
                   for i, block in enumerate(layers) for name in ("k_proj", "v_proj")]  # fmt: skip
        try:
            n = ids.shape[1]
            return DecodingCore(lm).full(ids, Layout(torch.arange(n, dtype=torch.float32)[None]))
        finally:
            for h in handles:
                h.remove()

    run(chunk[:, :-1], keep)
    logits = run(torch.cat([prefix, chunk], 1), swap)
    return torch.softmax(logits[0, -1], -1)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_partial_recompute_equals_the_hooked_reference(family):
    lm = tiny_random(family, **({} if family == "llama" else {"num_key_value_heads": 2}), num_hidden_layers=3)
    prefix, chunk = lm.encode(PREFIX), lm.encode(CHUNK)
    m = chunk.shape[1]
    asked = [("first", 0), ("first", 4), ("deviating", 5), ("first", m - 1)]
    reuse = reuse_chunk(lm, prefix, chunk, partial=asked)
    per_token = reuse_deviation_of_layer_one(lm, prefix, chunk)
    for row, (kind, k) in zip(reuse.partial.itertuples(), asked, strict=True):
        want = hooked_reference(lm, prefix, chunk, selected(kind, k, per_token))
        assert abs(row.tv - 0.5 * float((want - reuse.recomputed).abs().sum())) < 1e-5
    assert abs(reuse.partial.tv[0] - reuse.tv) < 1e-6  # none recomputed: the reuse
    assert reuse.partial.tv.iloc[-1] < 1e-5  # all recomputed: the full recompute


def reuse_deviation_of_layer_one(lm, prefix, chunk):
    """Each chunk token's layer-1 value deviation, from two plain prefills (moving leaves values alone)."""
    core, p = DecodingCore(lm), prefix.shape[1]
    alone = core.prefill(chunk[:, :-1]).cache.layers[1].values[0]
    full = core.prefill(torch.cat([prefix, chunk[:, :-1]], 1)).cache.layers[1].values[0, :, p:]
    return (alone - full).norm(dim=(0, 2)) / full.norm(dim=(0, 2))


def test_deviating_selection_takes_the_largest_deviations_in_chunk_order():
    assert selected("deviating", 2, torch.tensor([0.1, 0.9, 0.2, 0.8])) == [1, 3]
    assert selected("first", 3, torch.zeros(5)) == [0, 1, 2]


@pytest.mark.parametrize("family", ["gemma2", "gemma3_text"])
def test_sliding_window_families_reuse_while_prefix_and_chunk_fit_the_window(family):
    one = {"layer_types": ["sliding_attention"]} if "layer_types" in MATRIX[family] else {}
    lm = tiny_random(family, **{**MATRIX[family], "sliding_window": 64, **one}, num_hidden_layers=1)
    prefix, chunk = lm.encode(PREFIX), lm.encode(CHUNK)
    reuse = reuse_chunk(lm, prefix, chunk, partial=[("first", 3)])
    assert reuse.tv < 1e-5 and reuse.partial.tv[0] < 1e-5  # one layer: exact
    n = prefix.shape[1] + chunk.shape[1]
    want = torch.softmax(
        DecodingCore(lm).full(torch.cat([prefix, chunk], 1), Layout(torch.arange(n)[None].float()))[0, -1], -1
    )
    assert_same(reuse.recomputed, want)
    narrow = tiny_random(family, **{**MATRIX[family], "sliding_window": 32, **one}, num_hidden_layers=1)
    with pytest.raises(
        ValueError,
        match=r"over 32 tokens; prefix \(31\) and chunk \(28\) hold 59: chunk reuse needs them to fit in 31",
    ):
        reuse_chunk(narrow, prefix, chunk)


def test_bad_input_is_refused(tiny):
    with pytest.raises(ValueError, match=r"chunk must be token ids of shape \(1, n\) with n >= 2"):
        reuse_chunk(tiny, tiny.encode(PREFIX), tiny.encode("a"))
    with pytest.raises(ValueError, match=r"partial selection must be one of first, deviating, got 'last'"):
        reuse_chunk(tiny, tiny.encode(PREFIX), tiny.encode(CHUNK), partial=[("last", 2)])
    with pytest.raises(ValueError, match=r"the chunk has 27 cached tokens: recompute 0..27 of them, not 28"):
        reuse_chunk(tiny, tiny.encode(PREFIX), tiny.encode(CHUNK), partial=[("first", 28)])
