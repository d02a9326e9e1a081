"""Rolling caches (:mod:`tempo_lab.caches.rolling`): with room for the whole text they are the plain model;
on a 1-layer model (whose cached keys and values depend only on their token and position) every variant's
log-probabilities equal its reference, the kept tokens recomputed from scratch each step; on a deeper model
re-positioning is closer to its reference than not moving the window is to the re-positioned reference."""

from __future__ import annotations

import pytest
import torch

from tempo_lab.caches import Rolling, kept_slots, rolling_logprobs
from tempo_lab.tiny import MATRIX, tiny_random

TEXT = "Once upon a time, in a small village by the sea"  # 47 byte tokens
VARIANTS = [Rolling(2, 6), Rolling(0, 8), Rolling(2, 6, reposition=False)]


def plain_logprobs(lm, ids):
    with torch.no_grad():
        logits = lm.model(ids).logits[0]
    return torch.log_softmax(logits.float(), -1)[:-1].gather(1, ids[0, 1:, None])[:, 0]


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
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS, ids=["streaming", "window", "sinks-unmoved"])
@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_a_one_layer_model_equals_its_recomputed_window_at_every_step(family, variant):
    lm = tiny_random(family, **MATRIX[family], num_hidden_layers=1)
    ids = lm.encode(TEXT)
    got = rolling_logprobs(lm, ids, variant, progress=False)
    want = rolling_logprobs(lm, ids, variant, recompute=True, progress=False)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (got - plain_logprobs(lm, ids)).abs().max() > 1e-3  # eviction changed the predictions


def test_on_two_layers_the_deviation_from_the_reference_is_real_and_starts_at_the_first_eviction(tiny):
    ids = tiny.encode(TEXT)
    rolling = Rolling(2, 6)
    got = rolling_logprobs(tiny, ids, rolling, progress=False)
    want = rolling_logprobs(tiny, ids, rolling, recompute=True, progress=False)
    first = rolling.size  # token t = size is fed after the first eviction
    torch.testing.assert_close(got[:first], want[:first], atol=1e-5, rtol=0)
    assert (got[first:] - want[first:]).abs().max() > 1e-4  # deeper keys/values remember evicted tokens


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"sinks must be an integer >= 0, got -1"):
        Rolling(-1, 4)
    with pytest.raises(ValueError, match=r"window must be an integer >= 1, got 0"):
        Rolling(4, 0)
    gemma2 = tiny_random("gemma2", **MATRIX["gemma2"])
    with pytest.raises(ValueError, match="sliding-window layers: rolling caches are not supported"):
        rolling_logprobs(gemma2, gemma2.encode(TEXT), Rolling(2, 6))
