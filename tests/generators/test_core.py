"""DecodingCore as the generators use it: its logits are the model's own, and the shared helpers."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import load_model, masks, positions
from tempo_lab.forward import DecodingCore, branch
from tempo_lab.generators.selection import choose_next, select_tokens
from tempo_lab.layout import Layout
from tempo_lab.loaded import widened
from tempo_lab.tiny import tiny_random
from tests.helpers import assert_same, real_atol


def _plain_logits(lm, ids, pos, mask, cache=None):
    """Logits of a plain ``model(...)`` call (positions as the model takes them)."""
    with torch.no_grad():
        return widened(lm.model(
            input_ids=ids,
            position_ids=positions.as_model_positions(pos, lm.family.position_reason()),
            attention_mask=mask,
            cache=cache,
            use_cache=cache is not None,
        ).logits)


@pytest.mark.parametrize("fixture", ["tiny", "tiny_gpt2"])
def test_core_logits_equal_a_plain_model_call(fixture, request):
    lm = request.getfixturevalue(fixture)
    core = DecodingCore(lm)
    assert core.split_head is not None  # the fast head path is the one under test
    ids = lm.encode("Once upon a time")
    t = ids.shape[1]
    pos = positions.contiguous(t)
    mask = masks.causal_mask(t, dtype=lm.dtype)
    assert_same(core.full(ids, Layout(pos)), _plain_logits(lm, ids, pos, mask))
    # a cached step of 3 tokens sharing one position, in 2 branches, against the same step done plainly
    prefix = core.prefill(ids)
    new = torch.tensor([[5, 6, 7], [8, 9, 10]])
    new_pos = torch.full((2, 3), float(t + 2))
    step_mask = masks.parallel_mask(masks.set_labels([3], t), "isolated", q_len=3, dtype=lm.dtype)
    ours = core.step(branch(prefix.cache, 2), new, Layout(new_pos, step_mask))
    plain_cache = branch(core.prefill(ids).cache, 2)
    ref = _plain_logits(lm, new, new_pos, step_mask.expand(2, -1, -1, -1), plain_cache)
    assert_same(ours, ref)


def test_families_without_a_plain_head_go_through_the_model_and_unknown_ones_are_refused():
    lm = tiny_random("gemma")  # its logits are scaled and soft-capped: not lm_head(hidden) alone
    core = DecodingCore(lm)
    assert not lm.family.architecture.plain_head and core.split_head is None
    ids = lm.encode("abc")
    pos = positions.contiguous(3)
    plain = _plain_logits(lm, ids, pos, masks.causal_mask(3, dtype=lm.dtype))
    assert_same(core.full(ids, Layout(pos)), plain)
    other = load_model("tiny-random")  # a private copy: its config is changed below
    other.model.config.model_type = "some-new-arch"
    with pytest.raises(ValueError, match="does not know the family 'some-new-arch'"):
        DecodingCore(other)


@pytest.mark.parametrize("model_type", ["llama", "gemma"])
def test_last_only_logits_equal_the_last_row_of_a_plain_model_call(model_type):
    """``forward(..., last=True)`` on a batch of 2: through the core's own head (llama) and through the
    model's ``logits_to_keep`` (a family the core does not split)."""
    lm = tiny_random(model_type)
    core = DecodingCore(lm)
    assert (core.split_head is not None) == (model_type == "llama") and core.keeps_logits
    ids = torch.randint(0, lm.model.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    t = ids.shape[1]
    pos = positions.contiguous(t).expand(2, -1)
    mask = masks.causal_mask(t, dtype=lm.dtype, batch=2)
    got = core.forward(ids, Layout(pos, mask), last=True)
    assert got.shape == (2, 1, lm.model.config.vocab_size)
    assert_same(got, _plain_logits(lm, ids, pos, mask)[:, -1:])


@pytest.mark.parametrize(("model_type", "chunk"), [("llama", 3), ("llama", 1024), ("gemma", 3)])
def test_token_logprobs_equal_the_log_softmax_of_a_plain_model_call(model_type, chunk):
    """The loss by position, through the core's head in blocks of ``chunk`` slots (llama) or the model's
    own logits (gemma), against log_softmax of a plain call, on a gapped layout."""
    lm = tiny_random(model_type)
    ids = torch.randint(0, lm.model.config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(1))
    layout = Layout.gapped(11, 6, 40.0)
    got = DecodingCore(lm).token_logprobs(ids, layout, chunk=chunk)
    causal = masks.causal_mask(11, dtype=lm.dtype, batch=2)
    logits = _plain_logits(lm, ids, layout.positions.expand(2, -1), causal)
    want = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
    assert got.shape == (2, 10) and got.dtype == torch.float64
    assert_same(got, want)


@pytest.mark.bundled
def test_bundled_core_logits_equal_a_plain_model_call(bundled):
    core = DecodingCore(bundled)
    assert core.split_head is not None
    ids = bundled.encode("The cat sat on the mat")
    t = ids.shape[1]
    prefix = core.prefill(ids)
    new, new_pos = torch.tensor([[253, 3233]]), torch.full((1, 2), float(t))
    ours = core.step(branch(prefix.cache, 1), new, Layout(new_pos))
    ref = _plain_logits(
        bundled, new, new_pos, masks.causal_mask(2, t + 2), branch(core.prefill(ids).cache, 1)
    )
    torch.testing.assert_close(ours, ref, atol=real_atol(bundled, ref), rtol=0)


def test_select_tokens():
    probs = torch.tensor([0.05, 0.4, 0.1, 0.3, 0.15])
    ids, p = select_tokens(probs, 0.1, 5)
    assert ids.tolist() == [1, 3, 4, 2] and p.tolist() == pytest.approx([0.4, 0.3, 0.15, 0.1])
    assert select_tokens(probs, 0.1, 2)[0].tolist() == [1, 3]
    assert select_tokens(probs, 0.9, 5)[0].tolist() == [1]  # nothing reaches it: the argmax alone


def test_choose_next_greedy_and_seeded():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    assert choose_next(logits).tolist() == logits.argmax(-1).tolist()
    a = choose_next(logits, sample=True, generator=torch.Generator().manual_seed(1))
    b = choose_next(logits, sample=True, generator=torch.Generator().manual_seed(1))
    assert a.tolist() == b.tolist()
    cold = choose_next(logits, sample=True, temperature=1e-4, generator=torch.Generator().manual_seed(2))
    assert cold.tolist() == logits.argmax(-1).tolist()


def test_decode_loop_feeds_until_the_policy_stops(tiny):
    """The shared loop: each proposed feed is one cached step whose logits go back to the policy; ``None``
    stops before feeding; the logits equal a plain full recomputation of the same slots."""
    from tempo_lab.generators.loop import Feed, decode

    core = DecodingCore(tiny)
    ids = tiny.encode("abc")
    prefix = core.prefill(ids)
    fed, seen = [], []

    class Policy:
        def propose(self, step):
            if step == 2:
                return None
            token = torch.tensor([[100 + step]])
            fed.append(token)
            return Feed(token, Layout(torch.tensor([[3.0 + 2 * step]])))

        def accept(self, step, logits):
            seen.append((step, logits.shape, logits))

    assert decode(core, prefix.cache, Policy(), max_steps=5, desc="test", progress=False) == 2
    assert [(s, shape) for s, shape, _ in seen] == [(0, (1, 1, 257)), (1, (1, 1, 257))]
    assert prefix.cache.get_seq_length() == 5
    full = core.full(torch.cat([ids, *fed], 1), Layout(torch.tensor([[0.0, 1, 2, 3, 5]])))
    assert_same(seen[1][2][0, -1], full[0, -1])
