"""CompressedThoughtGenerator: candidates after a real gap, all paths as one batch of cached steps."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import positions
from tempo_lab.forward import DecodingCore
from tempo_lab.generators import CompressedThoughtGenerator
from tempo_lab.layout import Layout
from tests.generators.helpers import record_forwards, with_eos
from tests.helpers import assert_same

PROMPT = "hello there"
FAST = {"progress": False}


def _full_rows(lm, ids, path_ids, gap):
    """Prompt + the whole path at ``prompt_len + gap + j``, recomputed without cache: logits ``(L, vocab)``
    where row ``j`` is the distribution over path token ``j`` (row 0 = the prompt's last row)."""
    t = ids.shape[1]
    seq = torch.cat([ids, torch.tensor([path_ids])], 1)
    pos = positions.with_gap(t, len(path_ids), gap)
    return DecodingCore(lm).full(seq, Layout(pos))[0, t - 1 : -1]


def _prompt_probs(lm, ids):
    return torch.softmax(DecodingCore(lm).full(ids, Layout(positions.contiguous(ids.shape[1])))[0, -1], -1)


@pytest.mark.parametrize("gap", [7, 2.5])
def test_every_path_step_equals_a_full_recomputation(tiny, gap):
    ids = tiny.encode(PROMPT)
    t = ids.shape[1]
    res = CompressedThoughtGenerator(tiny).generate(
        PROMPT, gap=gap, threshold=0.04, max_candidates=4, path_length=6, keep_logits=True, **FAST
    )
    assert len(res.paths) == 4 and res.gap == gap and res.prompt_len == t
    for path in res.paths:
        assert len(path.token_ids) == 7 and path.positions == [t + gap + j for j in range(7)]
        ref = _full_rows(tiny, ids, path.token_ids, gap)
        assert_same(path.logits, ref)
        ref_probs = torch.softmax(ref, -1)
        for j, tok in enumerate(path.token_ids):
            assert path.step_probs[j] == pytest.approx(ref_probs[j, tok].item(), abs=1e-5)
            if j > 0:  # greedy continuation
                assert tok == int(ref[j].argmax())
        assert path.tokens == [tiny.token_str(i) for i in path.token_ids]
        assert (
            path.text == tiny.tokenizer.decode(path.token_ids)
            and path.token_ids[0] == path.candidate.token_id
        )


def test_gap_is_really_applied(tiny):
    gen = CompressedThoughtGenerator(tiny)
    kw = {"threshold": 0.04, "max_candidates": 3, "path_length": 2, "keep_logits": True, **FAST}
    at_gap = gen.generate(PROMPT, gap=20, **kw)
    no_gap = gen.generate(PROMPT, gap=0, **kw)
    t = at_gap.prompt_len
    assert [c.token_id for c in at_gap.candidates] == [c.token_id for c in no_gap.candidates]
    for a, b in zip(at_gap.paths, no_gap.paths, strict=True):
        assert a.positions == [t + 20, t + 21, t + 22] and b.positions == [t, t + 1, t + 2]
        # the distribution after the candidate depends on where the candidate sits ...
        assert (a.logits[1] - b.logits[1]).abs().max() > 1e-2
        # ... and is the full recomputation at the gapped positions, not at contiguous ones
        ids = tiny.encode(PROMPT)
        assert_same(a.logits[1], _full_rows(tiny, ids, a.token_ids[:2], 20)[1])


def test_all_paths_advance_as_one_batch_of_cached_steps(tiny):
    ids = tiny.encode(PROMPT)
    t = ids.shape[1]
    with record_forwards(tiny) as calls:
        res = CompressedThoughtGenerator(tiny).generate(
            PROMPT, gap=5, threshold=0.04, max_candidates=5, path_length=4, **FAST
        )
    n = len(res.paths)
    assert n == 5
    assert len(calls) == 1 + 4 and tuple(calls[0].input_ids.shape) == (1, t)
    for j, call in enumerate(calls[1:]):
        assert tuple(call.input_ids.shape) == (n, 1)
        assert call.cached == t + j and call.causal and call.mask_shape == (n, t + j + 1)
        assert (call.position_ids == t + 5 + j).all()
        assert call.input_ids[:, 0].tolist() == [p.token_ids[j] for p in res.paths]
    assert calls[1].key_batch_stride == 0  # the first step reads expanded views of the prompt cache


def test_candidates_follow_threshold_and_cap(tiny):
    ids = tiny.encode(PROMPT)
    probs = _prompt_probs(tiny, ids)
    gen = CompressedThoughtGenerator(tiny)
    res = gen.generate(PROMPT, threshold=0.05, max_candidates=10, path_length=1, **FAST)
    above = sorted(((p, i) for i, p in enumerate(probs.tolist()) if p >= 0.05), reverse=True)
    assert [c.token_id for c in res.candidates] == [i for _, i in above] and len(above) >= 2
    for c in res.candidates:
        assert c.prob == pytest.approx(probs[c.token_id].item(), abs=1e-5) and c.token == tiny.token_str(
            c.token_id
        )
    capped = gen.generate(PROMPT, threshold=0.01, max_candidates=2, path_length=1, **FAST)
    assert [c.token_id for c in capped.candidates] == probs.topk(2).indices.tolist()
    only_argmax = gen.generate(PROMPT, threshold=1.0, max_candidates=5, path_length=1, **FAST)
    assert [c.token_id for c in only_argmax.candidates] == [int(probs.argmax())]
    frame = res.to_frame()
    assert len(frame) == len(res.paths) and {"candidate", "p_candidate", "text", "first_position"} <= set(
        frame
    )


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(tiny):
    gen = CompressedThoughtGenerator(tiny)
    kw = {
        "threshold": 0.04,
        "path_length": 8,
        "sample": True,
        "temperature": 1.5,
        "keep_logits": True,
        **FAST,
    }
    state = torch.random.get_rng_state()
    a = gen.generate(PROMPT, seed=3, **kw)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = gen.generate(PROMPT, seed=3, **kw)
    c = gen.generate(PROMPT, seed=4, **kw)
    assert [p.token_ids for p in a.paths] == [p.token_ids for p in b.paths]
    assert [p.token_ids for p in a.paths] != [p.token_ids for p in c.paths]
    greedy = gen.generate(PROMPT, threshold=0.04, path_length=8, **FAST)
    assert [p.token_ids for p in a.paths] != [p.token_ids for p in greedy.paths]
    # sampled paths are still exact: each row is the full recomputation of the sampled sequence
    ids = tiny.encode(PROMPT)
    for path in a.paths:
        assert_same(path.logits, _full_rows(tiny, ids, path.token_ids, 5))


def test_a_path_ends_at_eos_and_the_batch_stops_when_all_have(tiny):
    base = CompressedThoughtGenerator(tiny).generate(
        PROMPT, threshold=0.04, max_candidates=3, path_length=6, **FAST
    )
    eos = base.paths[0].token_ids[2]  # make the third token of the first path the end-of-sequence token
    lm = with_eos(tiny, eos)
    res = CompressedThoughtGenerator(lm).generate(
        PROMPT, threshold=0.04, max_candidates=3, path_length=6, **FAST
    )
    first = res.paths[0]
    assert first.token_ids == base.paths[0].token_ids[:3] and first.ended_by_eos
    assert len(first.positions) == len(first.step_probs) == 3
    for path, ref in zip(res.paths, base.paths, strict=True):
        cut = ref.token_ids.index(eos) + 1 if eos in ref.token_ids else len(ref.token_ids)
        assert path.token_ids == ref.token_ids[:cut] and path.ended_by_eos == (eos in ref.token_ids)
    # a candidate that is EOS itself ends at once; with every path ended no step runs at all
    lone = with_eos(tiny, base.candidates[0].token_id)
    with record_forwards(tiny) as calls:
        res = CompressedThoughtGenerator(lone).generate(PROMPT, threshold=1.0, path_length=6, **FAST)
    assert (
        len(calls) == 1
        and res.paths[0].token_ids == [base.candidates[0].token_id]
        and res.paths[0].ended_by_eos
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"threshold": 0}, r"threshold must be a probability in \(0, 1\], got 0"),
        ({"threshold": 1.5}, r"threshold must be a probability in \(0, 1\], got 1.5"),
        ({"threshold": float("nan")}, r"threshold must be a probability in \(0, 1\], got nan"),
        ({"max_candidates": 0}, "max_candidates must be an integer >= 1, got 0"),
        ({"path_length": 0}, "path_length must be an integer >= 1, got 0"),
        ({"path_length": 2.5}, "path_length must be an integer >= 1, got 2.5"),
        ({"gap": -1}, "gap must be a finite number >= 0, got -1"),
        ({"gap": float("nan")}, "gap must be a finite number >= 0, got nan"),
        ({"temperature": 0}, "temperature must be a finite number > 0, got 0"),
        ({"seed": "x"}, "seed must be an integer"),
        (
            {"gap": 495},
            r"gap 495 after a prompt of 11 tokens with paths of 10 more tokens reaches position 516, "
            r"past the model's context",
        ),
    ],
)
def test_bad_input_is_refused_before_any_model_work(tiny, kwargs, match):
    args = {"prompt": PROMPT, "path_length": 10, **FAST, **kwargs}
    with record_forwards(tiny) as calls, pytest.raises(ValueError, match=match):
        CompressedThoughtGenerator(tiny).generate(**args)
    assert calls == []


def test_fractional_gap_refused_on_a_non_rotary_model(tiny_gpt2):
    with record_forwards(tiny_gpt2) as calls, pytest.raises(ValueError, match="fractional, but this model"):
        CompressedThoughtGenerator(tiny_gpt2).generate("abc", gap=1.5, **FAST)
    assert calls == []
