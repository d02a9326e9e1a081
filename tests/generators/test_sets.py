"""TEMPO's further mechanisms: sets hidden from later tokens, retroactive pruning by attention (mask-only and
recompute), threshold schedules and a top-p cap. Every mode is checked against one uncached full
recomputation whose additive mask is built here, slot by slot, from the run's own record (labels, the
``later`` mode, when each slot was hidden), independently of ``tempo_lab.masks``.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from tempo_lab import masks
from tempo_lab.capture import capture_attention
from tempo_lab.forward import DecodingCore
from tempo_lab.generators import ParallelTokenGenerator, Pruning, schedules
from tempo_lab.layout import Layout
from tempo_lab.loaded import widened
from tempo_lab.tiny import tiny_random
from tests.helpers import assert_same

PROMPT = "The cat sat on"
FAST = {"progress": False}


def visibility(result) -> torch.Tensor:
    """``(N, N)`` bool: may query slot q see key slot k, from the result alone, in plain Python."""
    labels, hidden = result.labels.tolist(), result.hidden_after.tolist()
    size = Counter(x for x in labels if x >= 0)
    first = {}
    for slot, lab in enumerate(labels):
        first.setdefault(lab, slot)
    n = len(labels)
    out = [[False] * n for _ in range(n)]
    for q in range(n):
        for k in range(q + 1):
            lq, lk = labels[q], labels[k]
            ok = not (result.mode == "isolated" and lq >= 0 and lq == lk and q != k)
            if lk >= 0 and size[lk] >= 2 and lq > lk:  # a later step looking at a parallel set
                ok = ok and result.later == "all" or (ok and result.later == "first" and k == first[lk])
            out[q][k] = ok and not lq > hidden[k]
    return torch.tensor(out)


def full_rows(lm, result, capture: bool = False):
    """Next-token probabilities of every slot ``(N, vocab)`` from one uncached pass with the mask above (and
    the attention record, with ``capture``)."""
    mask = masks.to_additive(visibility(result), lm.dtype)[None, None]
    core = DecodingCore(lm)
    if not capture:
        return torch.softmax(core.full(result.input_ids, Layout(result.positions, mask))[0], -1), None
    with capture_attention(lm.model) as rec:
        logits = core.full(result.input_ids, Layout(result.positions, mask))[0]
    return torch.softmax(logits, -1), rec


def expected_distribution(result, rows: torch.Tensor, k: int) -> torch.Tensor:
    """The distribution step ``k`` selected from: the last prompt row, or the mixture of set ``k - 1``'s
    rows (its kept members') weighted by their renormalised probabilities."""
    if k == 0:
        return rows[result.prompt_len - 1]
    prev = result.steps[k - 1]
    kept = [p for p, cut in zip(prev.probs, prev.pruned or [False] * prev.size, strict=True) if not cut]
    members = rows[result.labels == k - 1]
    if members.shape[0] != len(kept):  # mask-only pruning keeps the rows of pruned members
        kept = prev.probs
    w = torch.tensor(kept, dtype=members.dtype)
    return (w / w.sum()) @ members


@pytest.fixture(scope="module")
def lm():
    return tiny_random()


@pytest.mark.parametrize("later", ["all", "first", "none"])
@pytest.mark.parametrize("intraset", ["isolated", "visible"])
def test_hidden_sets_equal_a_full_recomputation(lm, later, intraset):
    res = ParallelTokenGenerator(lm).generate(
        PROMPT, threshold=0.05, max_steps=8, intraset=intraset, later=later, **FAST
    )
    assert res.later == later and max(res.set_sizes) >= 2, "the run needs parallel sets to test anything"
    rows, _ = full_rows(lm, res)
    for k, step in enumerate(res.steps):
        assert_same(step.distribution, expected_distribution(res, rows, k))


def test_hiding_changes_what_later_tokens_see(lm):
    runs = {
        later: ParallelTokenGenerator(lm).generate(
            PROMPT, forced_sets=[["a", "b", "c"], ["d"], ["e"]], later=later, capture=True, **FAST
        )
        for later in ("all", "first", "none")
    }
    t = runs["all"].prompt_len
    for later, res in runs.items():
        attention = res.attention_map()
        later_rows = attention[t + 3 :, t : t + 3]  # queries of steps 1, 2 on the set's three slots
        seen = (later_rows > 0).any(0).tolist()
        assert seen == {"all": [True] * 3, "first": [True, False, False], "none": [False] * 3}[later]


def test_pruning_scores_decisions_and_mask_equal_a_full_recomputation(lm):
    prune = Pruning(threshold=0.3, window=2)
    res = ParallelTokenGenerator(lm).generate(PROMPT, threshold=0.04, max_steps=9, prune=prune, **FAST)
    decided = [k for k, s in enumerate(res.steps) if s.attention_scores is not None]
    assert decided and any(any(s.pruned) for s in res.steps if s.pruned), "no member was pruned"
    rows, rec = full_rows(lm, res, capture=True)
    for k, step in enumerate(res.steps):
        assert_same(step.distribution, expected_distribution(res, rows, k))
    weights = widened(torch.stack(rec.weights)).mean(dim=(0, 1, 2))  # (N, N): mean over layers and heads
    labels = res.labels
    for k in decided:
        step = res.steps[k]
        queries = ((labels > k) & (labels <= k + prune.window)).nonzero()[:, 0]
        share = weights[queries][:, step.slots].mean(0)
        share = share / share.sum()
        assert step.attention_scores == pytest.approx(share.tolist(), abs=1e-5)
        expected = [s < prune.threshold and i != int(share.argmax()) for i, s in enumerate(share.tolist())]
        assert step.pruned == expected
        if any(expected):
            assert step.pruned_at == k + prune.window
            hidden = [res.hidden_after[s].item() for s, cut in zip(step.slots, expected, strict=True) if cut]
            assert hidden == [k + prune.window] * sum(expected)
    assert "~" in res.text and "~" not in res.pruned_text


def test_pruning_recompute_continues_as_if_the_members_had_never_been_there(lm):
    base = {"threshold": 0.04, "max_steps": 9, **FAST}
    masked = ParallelTokenGenerator(lm).generate(PROMPT, prune=Pruning(threshold=0.3, window=2), **base)
    rebuilt = ParallelTokenGenerator(lm).generate(
        PROMPT, prune=Pruning(threshold=0.3, window=2, recompute=True), **base
    )
    first_cut = min(s.pruned_at for s in rebuilt.steps if s.pruned_at is not None)
    # the pruned members are gone from the rebuilt sequence; every step after the first rebuild equals a full
    # recomputation of that sequence, in which the pruned members never existed
    n_pruned = sum(sum(s.pruned) for s in rebuilt.steps if s.pruned)
    assert (
        rebuilt.input_ids.shape[1]
        == rebuilt.prompt_len + sum(s.size for s in rebuilt.steps if s.fed) - n_pruned
    )
    rows, _ = full_rows(lm, rebuilt)
    last_cut = max(s.pruned_at for s in rebuilt.steps if s.pruned_at is not None)
    for k in range(last_cut + 1, len(rebuilt.steps)):
        assert_same(rebuilt.steps[k].distribution, expected_distribution(rebuilt, rows, k))
    # up to the first pruning decision both runs are the same run
    for a, b in zip(masked.steps[: first_cut + 1], rebuilt.steps[: first_cut + 1], strict=True):
        assert a.token_ids == b.token_ids


def test_threshold_schedules_and_top_p_select_what_they_say(lm):
    curve = schedules.bezier(0.02, 0.4, steps=8)
    assert curve(0) == pytest.approx(0.02) and curve(8) == pytest.approx(0.4) and curve(4) > curve(2)
    relu = schedules.relu(0.05, 0.5, steps=8, activation=0.5)
    assert relu(3) == pytest.approx(0.05) and relu(8) == pytest.approx(0.5) and 0.05 < relu(6) < 0.5
    for threshold in (curve, relu, lambda k: 0.02 + 0.01 * k):
        res = ParallelTokenGenerator(lm).generate(
            PROMPT, threshold=threshold, max_steps=8, max_set_size=9, **FAST
        )
        for k, step in enumerate(res.steps):
            assert step.threshold == pytest.approx(threshold(k))
            above = (step.distribution >= threshold(k)).sum().item()
            assert step.size == max(1, min(above, 9)), k
    capped = ParallelTokenGenerator(lm).generate(PROMPT, threshold=0.01, top_p=0.5, max_steps=6, **FAST)
    for step in capped.steps:
        probs = step.probs
        assert sum(probs[:-1]) < 0.5 and (len(probs) == 1 or probs[-1] >= 0.01)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prune": "0.2"}, "prune must be a tempo_lab.generators.Pruning"),
        ({"later": "some"}, "later must be one of 'all', 'first', 'none'; got 'some'"),
        (
            {"threshold": lambda k: 0.1 if k < 3 else 1.5},
            r"the threshold schedule at step 3 must be a probability in \(0, 1\], got 1.5",
        ),
        ({"threshold": lambda k: 0.0}, "the threshold schedule at step 0 must be a probability"),
        ({"top_p": 0}, r"top_p must be a probability in \(0, 1\], got 0"),
    ],
)
def test_bad_input_is_refused_before_any_model_work(lm, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ParallelTokenGenerator(lm).generate(PROMPT, max_steps=5, **FAST, **kwargs)


def test_bad_pruning_options_are_refused():
    with pytest.raises(ValueError, match=r"the pruning threshold must be in \[0, 1\], got 1.2"):
        Pruning(threshold=1.2)
    with pytest.raises(ValueError, match=r"the pruning threshold must be in \[0, 1\], got -0.1"):
        Pruning(threshold=-0.1)
    with pytest.raises(ValueError, match="the pruning window W must be an integer >= 1, got 0"):
        Pruning(threshold=0.2, window=0)
    with pytest.raises(ValueError, match=r"schedules.bezier|p1 must be in \[0, 1\], got 2"):
        schedules.bezier(0.1, 0.5, steps=5, p1=2)


def test_combined_exploration_equals_full_recomputations(lm):
    from tempo_lab import positions, reference
    from tempo_lab.phenomena.compressed import combined_exploration

    res, table = combined_exploration(lm, PROMPT, 4, [0, 4, 9.5], threshold=0.02, path_length=4)
    ids = lm.encode(PROMPT)
    t = ids.shape[1]
    assert len(table) == 3 * len(res.paths)
    for row, (path, g) in zip(
        table.itertuples(), [(p, g) for p in res.paths for g in (0, 4, 9.5)], strict=True
    ):
        seq = torch.cat([ids, torch.tensor([[path.candidate.token_id]])], 1)
        probs = torch.softmax(reference.next_logits(lm, seq, Layout(positions.appended(t, t + g))), -1)
        assert row.p1 == pytest.approx(float(probs.max()), abs=1e-5) and row.position == t + g
        if g == 4:  # the candidate at its own path's gap: the distribution that chose the path's next token
            assert row.tv_vs_path == pytest.approx(0.0, abs=1e-5) and row.continues_path


def test_entropy_gap_follows_the_model_uncertainty(lm):
    from tempo_lab import reference
    from tempo_lab.generators import CompressedThoughtGenerator
    from tempo_lab.summaries import entropy

    ids = lm.encode(PROMPT)
    h = float(
        entropy(torch.softmax(reference.next_logits(lm, ids, Layout.contiguous(ids.shape[1])), -1))
    )
    gen = CompressedThoughtGenerator(lm)
    for slope, cap in ((2.0, 20.0), (5.0, 3.0)):
        res = gen.generate(PROMPT, gap="entropy", gap_per_nat=slope, max_gap=cap, path_length=3, **FAST)
        assert res.entropy == pytest.approx(h, abs=1e-4) and res.gap == min(cap, round(slope * h))
        fixed = gen.generate(PROMPT, gap=res.gap, path_length=3, **FAST)
        assert [p.token_ids for p in res.paths] == [p.token_ids for p in fixed.paths]
    with pytest.raises(ValueError, match="gap_per_nat must be a finite number >= 0, got -1"):
        gen.generate(PROMPT, gap="entropy", gap_per_nat=-1, **FAST)
