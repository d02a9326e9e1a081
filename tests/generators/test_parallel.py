"""TEMPO parallel tokens: every member fed at one shared position; each step equals a recomputation."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import load_model, masks, reference
from tempo_lab.forward import cache_length
from tempo_lab.generators import ParallelTokenGenerator, bracket_text
from tests.generators.helpers import record_forwards, with_eos
from tests.helpers import assert_same

PROMPT = "hello there"
FAST = {"progress": False}
RUN = {"threshold": 0.05, "max_steps": 8, "max_set_size": 4, **FAST}


def _multi(res):
    return [s for s in res.steps if s.size >= 2]


@pytest.mark.parametrize("next_dist", ["mixture", "last"])
@pytest.mark.parametrize("intraset", ["isolated", "visible"])
def test_every_step_equals_a_full_recomputation(tiny, intraset, next_dist):
    res = ParallelTokenGenerator(tiny).generate(PROMPT, intraset=intraset, next_dist=next_dist, **RUN)
    assert len(res.steps) == 8 and res.stop == "max_steps"
    assert len(_multi(res)) >= 2  # the check is only meaningful with real sets
    for step, expected in zip(res.steps, reference.parallel_distributions(tiny, res), strict=True):
        assert_same(step.distribution, expected)
        p, i = expected.topk(step.size)
        assert step.token_ids == i.tolist()
        assert step.probs == pytest.approx(p.tolist(), abs=1e-5)


def test_modes_and_next_distributions_really_differ(tiny):
    gen = ParallelTokenGenerator(tiny)
    runs = {
        (m, d): gen.generate(PROMPT, intraset=m, next_dist=d, **RUN)
        for m in ("isolated", "visible")
        for d in ("mixture", "last")
    }
    for a, b in [
        (("isolated", "mixture"), ("visible", "mixture")),
        (("isolated", "mixture"), ("isolated", "last")),
    ]:
        first_multi = next(k for k, s in enumerate(runs[a].steps) if s.size >= 2)
        assert (
            runs[a].steps[first_multi + 1].distribution - runs[b].steps[first_multi + 1].distribution
        ).abs().max() > 1e-3


def test_selection_threshold_cap_and_fallback(tiny):
    gen = ParallelTokenGenerator(tiny)
    res = gen.generate(PROMPT, **RUN)
    for s in res.steps:
        above = int((s.distribution >= 0.05).sum())
        assert s.size == min(max(above, 1), 4)
        assert all(p >= 0.05 for p in s.probs) or (s.size == 1 and above == 0)
    capped = gen.generate(PROMPT, threshold=0.001, max_steps=3, max_set_size=3, **FAST)
    assert [s.size for s in capped.steps] == [3, 3, 3]
    single = gen.generate(PROMPT, threshold=1.0, max_steps=4, **FAST)
    assert all(s.size == 1 and s.token_ids[0] == int(s.distribution.argmax()) for s in single.steps)


def test_members_share_one_position_and_all_occupy_cache_slots(tiny):
    with record_forwards(tiny) as calls:
        res = ParallelTokenGenerator(tiny).generate(PROMPT, **RUN)
    t = res.prompt_len
    sizes = [s.size for s in res.steps]
    n = t + sum(sizes)
    assert res.set_sizes == sizes and res.input_ids.shape == (1, n) and res.positions.shape == (1, n)
    # one forward per set, every member fed (q = set size) on top of everything before it
    assert len(calls) == 1 + len(sizes)
    slot = t
    for k, (step, call) in enumerate(zip(res.steps, calls[1:], strict=True)):
        assert tuple(call.input_ids.shape) == (1, step.size) and call.input_ids[0].tolist() == step.token_ids
        assert call.cached == slot and call.mask_shape == (1, 1, step.size, slot + step.size)
        assert (call.position_ids == t + k).all() and step.position == t + k
        assert step.slots == list(range(slot, slot + step.size))
        assert (res.labels[step.slots] == k).all() and (res.positions[0, step.slots] == t + k).all()
        slot += step.size
    assert cache_length(calls[-1].cache) == n  # the cache holds one slot per fed member
    assert (res.labels[:t] == -1).all() and res.positions[0, :t].tolist() == list(range(t))


def test_isolated_members_do_not_see_each_other_and_visible_ones_do(tiny):
    for mode in ("isolated", "visible"):
        res = ParallelTokenGenerator(tiny).generate(PROMPT, intraset=mode, capture=True, **RUN)
        assert len(res.attention.passes) == 1 + len(res.steps)
        assert len(_multi(res)) >= 2
        for k, step in enumerate(res.steps):
            w = res.attention.stacked(1 + k)[:, 0]  # (layers, heads, size, kv) of the pass that fed set k
            assert w.shape[-2:] == (step.size, step.slots[-1] + 1)
            own = w[..., step.slots]  # (layers, heads, size, size): members on members
            off_diagonal = ~torch.eye(step.size, dtype=torch.bool)
            earlier = torch.ones(step.size, step.size, dtype=torch.bool).tril(-1)
            if mode == "isolated":
                assert (own[..., off_diagonal] == 0).all()
            elif step.size >= 2:
                assert (own[..., earlier] > 0).all()
            # later sets attend to earlier sets in both modes
            if k > 0:
                assert (w[..., res.steps[k - 1].slots].sum(-1) > 0).all()


def test_attention_map_equals_output_attentions_of_the_full_sequence(tiny):
    res = ParallelTokenGenerator(tiny).generate(PROMPT, intraset="isolated", capture=True, **RUN)
    fresh = load_model(
        "tiny-random"
    )  # output_attentions installs hooks for good: keep the session model clean
    mask = masks.parallel_mask(res.labels, "isolated", dtype=fresh.dtype)
    with torch.no_grad():
        ref = fresh.model(
            res.input_ids, position_ids=res.positions, attention_mask=mask, output_attentions=True
        )
    for layer in range(2):
        assert_same(res.attention_map(layer=layer), ref.attentions[layer][0].mean(0))
    assert_same(res.attention_map(layer=1, head=2), ref.attentions[1][0, 2])
    assert ParallelTokenGenerator(tiny).generate(PROMPT, **RUN).attention is None
    with pytest.raises(ValueError, match="capture=True"):
        ParallelTokenGenerator(tiny).generate(PROMPT, **RUN).attention_map()


def test_capture_layers_and_sdpa_model(tiny, tiny_sdpa):
    eager = ParallelTokenGenerator(tiny).generate(PROMPT, **RUN)
    res = ParallelTokenGenerator(tiny_sdpa).generate(PROMPT, capture=True, capture_layers=[1], **RUN)
    assert res.attention.layers == [1] and len(res.attention.passes[0]) == 1
    assert tiny_sdpa.model.config._attn_implementation == "sdpa"
    plain = ParallelTokenGenerator(tiny_sdpa).generate(PROMPT, **RUN)
    for a, b, c in zip(eager.steps, res.steps, plain.steps, strict=True):
        assert a.token_ids == b.token_ids == c.token_ids
        assert_same(a.distribution, c.distribution)


def test_eos_set_is_recorded_not_fed_and_stops(tiny):
    base = ParallelTokenGenerator(tiny).generate(PROMPT, **RUN)
    k = next(k for k, s in enumerate(base.steps) if k >= 2 and s.size >= 2)
    eos = base.steps[k].token_ids[-1]  # a non-first member of a later set becomes EOS
    assert all(eos not in s.token_ids for s in base.steps[:k])
    lm = with_eos(tiny, eos)
    with record_forwards(tiny) as calls:
        res = ParallelTokenGenerator(lm).generate(PROMPT, **RUN)
    assert res.stop == "eos" and len(res.steps) == k + 1
    assert res.steps[-1].token_ids == base.steps[k].token_ids and res.steps[-1].slots == []
    assert len(calls) == 1 + k  # the EOS set is not fed
    assert res.input_ids.shape[1] == res.prompt_len + sum(s.size for s in res.steps[:k])
    assert res.set_sizes == [s.size for s in res.steps[:k]]
    assert res.text.endswith("]")  # the EOS set is still rendered


def test_bracket_notation():
    assert bracket_text("The cat", [[" sat", " jumped"], [" on"]]) == "The cat [sat/jumped] on"
    assert bracket_text("a", [["b"], [",", "."], [" x", "y"]]) == "ab[,/.][ x/y]"
    assert bracket_text("p", []) == "p"


def test_text_and_frame(tiny):
    res = ParallelTokenGenerator(tiny).generate(PROMPT, threshold=1.0, max_steps=5, **FAST)
    assert res.text == PROMPT + "".join(s.tokens[0] for s in res.steps)  # all singletons: plain greedy text
    ids = tiny.encode(PROMPT)
    greedy = tiny.model.generate(ids, max_new_tokens=5, do_sample=False, attention_mask=torch.ones_like(ids))
    assert [s.token_ids[0] for s in res.steps] == greedy[0, ids.shape[1] :].tolist()
    frame = ParallelTokenGenerator(tiny).generate(PROMPT, **RUN).to_frame()
    assert list(frame.columns) == ["step", "position", "size", "tokens", "probs", "mass", "slots"]
    assert len(frame) == 8 and (frame["position"] == frame["step"] + len(PROMPT)).all()


def test_sampling_fallback_is_seeded(tiny):
    gen = ParallelTokenGenerator(tiny)
    kw = {"threshold": 0.3, "max_steps": 10, "sample": True, "temperature": 2.0, **FAST}
    state = torch.random.get_rng_state()
    a, b, c = (
        gen.generate(PROMPT, seed=1, **kw),
        gen.generate(PROMPT, seed=1, **kw),
        gen.generate(PROMPT, seed=2, **kw),
    )
    assert torch.equal(torch.random.get_rng_state(), state)
    ids = lambda r: [s.token_ids for s in r.steps]  # noqa: E731
    assert ids(a) == ids(b) and ids(a) != ids(c)
    assert ids(a) != ids(gen.generate(PROMPT, threshold=0.3, max_steps=10, **FAST))
    for s in a.steps:  # reported probabilities are the model's, whatever was drawn
        assert s.probs == pytest.approx(s.distribution[s.token_ids].tolist(), abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"threshold": 0.0}, r"threshold must be a probability in \(0, 1\], got 0.0"),
        ({"threshold": -0.1}, r"threshold must be a probability in \(0, 1\], got -0.1"),
        ({"threshold": 1.01}, r"threshold must be a probability in \(0, 1\], got 1.01"),
        ({"threshold": float("nan")}, r"threshold must be a probability in \(0, 1\], got nan"),
        ({"threshold": "0.1"}, r"threshold must be a probability in \(0, 1\], got '0.1'"),
        ({"max_steps": 0}, "max_steps must be an integer >= 1, got 0"),
        ({"max_set_size": 0}, "max_set_size must be an integer >= 1, got 0"),
        ({"intraset": "both"}, "intraset must be one of 'isolated', 'visible'; got 'both'"),
        ({"next_dist": "mean"}, "next_dist must be one of 'mixture', 'last'; got 'mean'"),
        ({"temperature": -1.0}, "temperature must be a finite number > 0"),
        ({"max_steps": 502}, "reaches position 512, past the model's context"),
    ],
)
def test_bad_input_is_refused_before_any_model_work(tiny, kwargs, match):
    args = {"prompt": PROMPT, **FAST, **kwargs}
    with record_forwards(tiny) as calls, pytest.raises(ValueError, match=match):
        ParallelTokenGenerator(tiny).generate(**args)
    assert calls == []


def test_forced_sets_replay_a_run_exactly_and_in_the_other_mode(tiny):
    gen = ParallelTokenGenerator(tiny)
    iso = gen.generate(PROMPT, intraset="isolated", **RUN)
    sets = [s.token_ids for s in iso.steps]
    again = gen.generate(PROMPT, intraset="isolated", forced_sets=sets, max_steps=1, **FAST)
    assert [s.token_ids for s in again.steps] == sets and torch.equal(again.input_ids, iso.input_ids)
    for a, b in zip(iso.steps, again.steps, strict=True):
        torch.testing.assert_close(a.distribution, b.distribution, atol=0, rtol=0)
    vis = gen.generate(PROMPT, intraset="visible", forced_sets=sets, **FAST)
    assert [s.token_ids for s in vis.steps] == sets and torch.equal(vis.input_ids, iso.input_ids)
    for step, expected in zip(vis.steps, reference.parallel_distributions(tiny, vis), strict=True):
        assert_same(step.distribution, expected)
        assert step.probs == pytest.approx(expected[step.token_ids].tolist(), abs=1e-5)
    texts = gen.generate(PROMPT, forced_sets=[["a", "b"], ["c"]], **FAST)
    assert [s.tokens for s in texts.steps] == [["a", "b"], ["c"]] and texts.text == PROMPT + "[a/b]c"


@pytest.mark.parametrize(
    ("sets", "match"),
    [
        ([], "forced_sets must be a non-empty list"),
        ([["a"], []], r"forced_sets\[1\] must be a non-empty list of tokens"),
        ([["a", "a"]], r"forced_sets\[0\] repeats a member"),
        ([["ab"]], "encodes to 2 tokens"),
        ([[999]], "outside the vocabulary"),
    ],
)
def test_bad_forced_sets_are_refused_before_any_model_work(tiny, sets, match):
    with record_forwards(tiny) as calls, pytest.raises(ValueError, match=match):
        ParallelTokenGenerator(tiny).generate(PROMPT, forced_sets=sets, **FAST)
    assert calls == []
