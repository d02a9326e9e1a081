"""Rolling caches (:mod:`tempo_lab.caches.rolling`): with room for the whole text they are the plain model;
on a 1-layer model (whose cached keys and values depend only on their token and position) every variant's
log-probabilities equal its reference, the kept tokens recomputed from scratch each step; on a deeper model
the deviation from the reference starts at the first eviction. Variants run together as batch rows equal each
run alone; sliding-window families (Gemma 2/3, Mistral, Qwen2) roll exactly while the cache fits their
window."""

from __future__ import annotations

import pytest
import torch

from tempo_lab.caches import Rolling, kept_slots, rolling_logprobs
from tempo_lab.loaded import widened
from tempo_lab.tiny import MATRIX, tiny_random
from tests.helpers import assert_same

TEXT = "Once upon a time, in a small village by the sea"  # 47 byte tokens
VARIANTS = [Rolling(2, 6), Rolling(0, 8), Rolling(2, 6, reposition=False)]


def plain_logprobs(lm, ids):
    with torch.no_grad():
        logits = lm.model(ids).logits[0]
    return torch.log_softmax(widened(logits), -1)[:-1].gather(1, ids[0, 1:, None])[:, 0]


def test_kept_slots_are_the_sinks_and_the_last_window_tokens():
    assert kept_slots(Rolling(2, 3), 3) == [0, 1, 2, 3]
    assert kept_slots(Rolling(2, 3), 4) == [0, 1, 2, 3, 4]
    assert kept_slots(Rolling(2, 3), 9) == [0, 1, 7, 8, 9]
    assert kept_slots(Rolling(0, 3), 9) == [7, 8, 9]


@pytest.mark.parametrize("family", ["llama", "qwen3", "gpt_neox"])
def test_room_for_the_whole_text_is_the_plain_model(family):
    lm = tiny_random(family, **MATRIX[family])
    ids = lm.encode(TEXT)
    want = plain_logprobs(lm, ids)
    for reposition in (True, False):
        got = rolling_logprobs(lm, ids, Rolling(4, ids.shape[1], reposition), progress=False)
        assert_same(got, want)


@pytest.mark.parametrize("variant", VARIANTS, ids=["streaming", "window", "sinks-unmoved"])
@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_a_one_layer_model_equals_its_recomputed_window_at_every_step(family, variant):
    lm = tiny_random(family, **MATRIX[family], num_hidden_layers=1)
    ids = lm.encode(TEXT)
    got = rolling_logprobs(lm, ids, variant, progress=False)
    want = rolling_logprobs(lm, ids, variant, recompute=True, progress=False)
    assert_same(got, want)
    assert (got - plain_logprobs(lm, ids)).abs().max() > 1e-3  # eviction changed the predictions


def test_on_two_layers_the_deviation_from_the_reference_is_real_and_starts_at_the_first_eviction(tiny):
    ids = tiny.encode(TEXT)
    rolling = Rolling(2, 6)
    got = rolling_logprobs(tiny, ids, rolling, progress=False)
    want = rolling_logprobs(tiny, ids, rolling, recompute=True, progress=False)
    first = rolling.size  # token t = size is fed after the first eviction
    assert_same(got[:first], want[:first])
    assert (got[first:] - want[first:]).abs().max() > 1e-4  # deeper keys/values remember evicted tokens


def test_variants_run_together_equal_each_run_alone(tiny):
    ids = tiny.encode(TEXT)
    together = rolling_logprobs(tiny, ids, VARIANTS, progress=False)
    assert together.shape == (3, ids.shape[1] - 1)
    for row, variant in zip(together, VARIANTS, strict=True):
        assert_same(row, rolling_logprobs(tiny, ids, variant, progress=False))


def test_the_reference_at_chosen_steps_is_the_reference_there_and_nan_elsewhere(tiny):
    ids = tiny.encode(TEXT)
    every = rolling_logprobs(tiny, ids, VARIANTS, recompute=True, progress=False)
    some = rolling_logprobs(tiny, ids, VARIANTS, recompute=True, steps=[3, 20, 45], progress=False)
    assert_same(some[:, [3, 20, 45]], every[:, [3, 20, 45]])
    assert torch.isnan(some).sum() == 3 * (ids.shape[1] - 1 - 3)


# Gemma 2 slides in every layer, Gemma 3 and Cohere 2 mix sliding and full layers, Mistral slides everywhere:
# a window of 16 holds the rolling cache of 8 slots (plus the token fed), so no sliding layer drops one.
SLIDING = ["gemma2", "gemma3_text", "mistral", "cohere2"]


@pytest.mark.parametrize("family", SLIDING)
def test_sliding_window_families_roll_exactly_while_the_cache_fits_their_window(family):
    one = {"layer_types": ["sliding_attention"]} if "layer_types" in MATRIX[family] else {}
    lm = tiny_random(family, **{**MATRIX[family], "sliding_window": 16, **one}, num_hidden_layers=1)
    ids = lm.encode(TEXT)
    got = rolling_logprobs(lm, ids, VARIANTS, progress=False)
    want = rolling_logprobs(lm, ids, VARIANTS, recompute=True, progress=False)
    assert_same(got, want)
    with pytest.raises(ValueError, match=r"slides over 16 tokens; a rolling cache of 16 slots"):
        rolling_logprobs(lm, ids, Rolling(4, 12), progress=False)


def test_bad_input_is_refused(tiny):
    with pytest.raises(ValueError, match=r"sinks must be an integer >= 0, got -1"):
        Rolling(-1, 4)
    with pytest.raises(ValueError, match=r"window must be an integer >= 1, got 0"):
        Rolling(4, 0)
    ids = tiny.encode(TEXT)
    with pytest.raises(ValueError, match=r"one size \(sinks \+ window\), got sizes \[8, 9\]"):
        rolling_logprobs(tiny, ids, [Rolling(2, 6), Rolling(0, 9)])
    with pytest.raises(ValueError, match=r"rolling\[1\] must be a Rolling"):
        rolling_logprobs(tiny, ids, [Rolling(2, 6), 8])
    with pytest.raises(ValueError, match=r"step 46 is outside the text's steps 0..45"):
        rolling_logprobs(tiny, ids, Rolling(2, 6), recompute=True, steps=[46])
    with pytest.raises(ValueError, match="steps= chooses the reference's steps"):
        rolling_logprobs(tiny, ids, Rolling(2, 6), steps=[3])
