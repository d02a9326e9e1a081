"""RetroactivePositionGenerator: one batched forward equals one full recomputation per position."""

from __future__ import annotations

import math

import pytest
import torch

from tempo_lab import positions, reference
from tempo_lab.forward import DecodingCore
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.generators.retroactive import DEFAULT_GAPS
from tempo_lab.layout import Layout
from tests.generators.helpers import record_forwards
from tests.helpers import assert_same

PROMPT = "Once upon a time, there"


def _full_next_logits(lm, ids, token_id, position):
    """Prompt + token at ``position``, recomputed from scratch without cache: the token's logits."""
    seq = torch.cat([ids, torch.tensor([[token_id]])], 1)
    return reference.next_logits(lm, seq, Layout(positions.appended(ids.shape[1], position)))


def test_every_position_equals_a_full_recomputation(tiny):
    ids = tiny.encode(PROMPT)
    t = ids.shape[1]
    wanted = [t, t + 0.5, t + 3, t + 3.25, t + 40, t + 401.75]
    res = RetroactivePositionGenerator(tiny).explore(PROMPT, wanted, token="w")
    assert res.positions == wanted and res.gaps == [p - t for p in wanted]
    assert res.prompt_len == t and res.token_id == tiny.token_id("w") and res.token == "w"
    assert res.probs.shape == res.logits.shape == (len(wanted), tiny.model.config.vocab_size)
    for i, p in enumerate(wanted):
        ref = _full_next_logits(tiny, ids, res.token_id, p)
        assert_same(res.logits[i], ref)
        assert_same(res.probs[i], torch.softmax(ref, -1))
    # positions really matter: the fractional and gapped rows differ from gap 0
    assert (res.tv[1:] > 1e-3).all()


def test_reference_is_gap_zero_and_divergences_match_an_independent_computation(tiny):
    ids = tiny.encode(PROMPT)
    t = ids.shape[1]
    res = RetroactivePositionGenerator(tiny).explore(PROMPT, gaps=[2, 7.5, 30])  # gap 0 not requested
    ref = torch.softmax(_full_next_logits(tiny, ids, res.token_id, t), -1)
    assert_same(res.reference, ref)
    for i, p in enumerate(res.positions):
        row = torch.softmax(_full_next_logits(tiny, ids, res.token_id, p), -1).double()
        tv = 0.5 * sum(abs(a - b) for a, b in zip(row.tolist(), ref.double().tolist(), strict=True))
        kl = sum(
            a * math.log(a / b) for a, b in zip(row.tolist(), ref.double().tolist(), strict=True) if a > 0
        )
        assert res.tv[i].item() == pytest.approx(tv, abs=1e-4)
        assert res.kl[i].item() == pytest.approx(kl, abs=1e-4)
    with_zero = RetroactivePositionGenerator(tiny).explore(PROMPT, gaps=[0, 2])
    assert with_zero.tv[0].item() < 1e-5 and abs(with_zero.kl[0].item()) < 1e-5


def test_one_prefill_and_one_batched_forward_over_views_of_the_prompt_cache(tiny):
    ids = tiny.encode(PROMPT)
    t = ids.shape[1]
    gaps = [float(g) for g in range(16)] + [0.5]
    with record_forwards(tiny) as calls:
        res = RetroactivePositionGenerator(tiny).explore(PROMPT, gaps=gaps)
    assert len(calls) == 2
    prefill, batched = calls
    assert tuple(prefill.input_ids.shape) == (1, t) and prefill.cached == 0
    n = len(gaps) + 1  # + the gap-0 reference branch
    assert tuple(batched.input_ids.shape) == (n, 1) and batched.causal and batched.mask_shape == (n, t + 1)
    assert batched.cached == t
    assert batched.key_batch_stride == 0  # the branches read expanded views of the prompt cache: no copies
    assert batched.position_ids[:, 0].tolist() == [t + g for g in gaps] + [t]
    assert (batched.input_ids == res.token_id).all()


def test_token_choices(tiny):
    ids = tiny.encode(PROMPT)
    gen = RetroactivePositionGenerator(tiny)
    greedy = gen.explore(PROMPT, gaps=[1])
    full_prompt = DecodingCore(tiny).full(ids, Layout(positions.contiguous(ids.shape[1])))[0, -1]
    assert greedy.token_id == int(full_prompt.argmax())
    by_text = gen.explore(PROMPT, gaps=[1, 2.5], token="q")
    by_id = gen.explore(PROMPT, positions=[ids.shape[1] + 1, ids.shape[1] + 2.5], token=tiny.token_id("q"))
    assert by_text.token_id == by_id.token_id and by_text.token == "q"
    torch.testing.assert_close(by_text.probs, by_id.probs, atol=0, rtol=0)
    default = gen.explore(ids)  # token ids as prompt, default gaps
    assert default.gaps == [float(g) for g in DEFAULT_GAPS] and default.prompt == PROMPT


def test_frame_and_top_k(tiny):
    res = RetroactivePositionGenerator(tiny).explore(PROMPT, gaps=[0, 3], top_k=3)
    frame = res.to_frame()
    assert list(frame.columns[:2]) == ["position", "gap"]
    assert {"top1", "p1", "top3", "p3", "tv", "kl", "entropy"} <= set(frame.columns)
    assert len(frame) == 2 and all(len(row) == 3 for row in res.top)
    for i in range(2):
        p, idx = res.probs[i].topk(3)
        assert [tok for tok, _ in res.top[i]] == [tiny.token_str(j) for j in idx.tolist()]
        assert frame.loc[i, "p1"] == pytest.approx(p[0].item())


def test_non_rotary_model_takes_integer_positions_and_refuses_fractional(tiny_gpt2):
    gen = RetroactivePositionGenerator(tiny_gpt2)
    ids = tiny_gpt2.encode("abc")
    res = gen.explore("abc", gaps=[0, 4], token="d")
    ref = _full_next_logits(tiny_gpt2, ids, res.token_id, 3 + 4)
    assert_same(res.logits[1], ref)
    with pytest.raises(ValueError, match="fractional, but this model takes integer positions only: it has"):
        gen.explore("abc", gaps=[0, 1.5])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"positions": [30], "gaps": [1]}, "either positions .* or gaps"),
        ({"gaps": [1, -1]}, r"gaps\[1\] must be a finite number >= 0, got -1"),
        ({"gaps": [float("nan")]}, r"gaps\[0\] must be a finite number >= 0, got nan"),
        ({"positions": [3]}, r"positions\[0\] = 3 is inside the prompt"),
        ({"positions": [float("inf")]}, r"positions\[0\] must be a finite number"),
        ({"gaps": [1, 600]}, r"gaps\[1\] = 600 reaches position 623, past the model's context .*512"),
        ({"gaps": []}, "no positions to explore"),
        ({"top_k": 0}, "top_k must be an integer >= 1, got 0"),
        ({"token": "two"}, "encodes to 3 tokens"),
        ({"token": 999}, "outside the vocabulary"),
    ],
)
def test_bad_input_is_refused_before_any_model_work(tiny, kwargs, match):
    args = {"prompt": PROMPT, **kwargs}
    with record_forwards(tiny) as calls, pytest.raises(ValueError, match=match):
        RetroactivePositionGenerator(tiny).explore(**args)
    assert calls == []
