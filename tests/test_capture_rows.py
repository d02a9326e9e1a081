"""``capture_attention(queries=...)``: only the requested query rows are recorded, through SDPA for the
layer's output (eager where a family has no SDPA), and they equal the same rows of a full eager capture; the
logits are the model's own; the model is left as found."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import capture_attention, masks
from tempo_lab.extension import self_extended
from tempo_lab.families import family_of
from tempo_lab.tiny import MATRIX, tiny_random
from tests.helpers import assert_same

PROMPT = "Once upon a time"  # 16 byte tokens


def run(lm, ids, positions, **capture):
    mask = family_of(lm.model).layer_masks(masks.causal_mask(ids.shape[1], dtype=lm.dtype))
    with capture_attention(lm.model, **capture) as rec, torch.no_grad():
        logits = lm.model(ids, position_ids=positions, attention_mask=mask).logits
    return logits, rec


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma2", "gemma3_text"])
def test_the_requested_rows_equal_a_full_eager_capture(family):
    lm = tiny_random(family, **MATRIX[family])
    ids = lm.encode(PROMPT)
    positions = torch.arange(ids.shape[1], dtype=torch.float32)[None] + torch.tensor([0.0] * 12 + [9.5] * 4)
    full_logits, full = run(lm, ids, positions)
    rows_logits, rows = run(lm, ids, positions, queries=[-1, 3], heads=[0, 1], layers=[-1])
    assert_same(rows_logits, full_logits)
    (got,) = rows.weights
    want = full.weights[-1][:, [0, 1]][:, :, [15, 3]]
    assert got.shape == (1, 2, 2, want.shape[-1])
    assert_same(got, want)
    assert lm.model.config._attn_implementation == "eager"


def test_rows_inside_self_extend_are_its_rows():
    lm = tiny_random()
    ids = lm.encode(PROMPT)
    positions = torch.arange(ids.shape[1], dtype=torch.float32)[None]
    with self_extended(lm, window=4, group=3):
        _, full = run(lm, ids, positions)
        _, rows = run(lm, ids, positions, queries=[-1])
    for a, b in zip(rows.weights, full.weights, strict=True):
        torch.testing.assert_close(a, b[:, :, -1:], atol=0, rtol=0)


def test_nested_captures_each_keep_their_own_rows():
    """A row capture inside a row capture, a full capture inside a row capture and a row capture inside a
    full one: each records its own rows of every pass it sees, and the outer one keeps working after the
    inner one exits."""
    lm = tiny_random()
    ids = lm.encode(PROMPT)
    positions = torch.arange(ids.shape[1], dtype=torch.float32)[None]
    _, full = run(lm, ids, positions)
    want = full.weights[-1]
    mask = masks.causal_mask(ids.shape[1], dtype=lm.dtype)
    with capture_attention(lm.model, queries=[-1], layers=[-1]) as outer, torch.no_grad():
        with capture_attention(lm.model, queries=[2], layers=[-1]) as inner:
            lm.model(ids, position_ids=positions, attention_mask=mask)
        with capture_attention(lm.model, layers=[-1]) as everything:
            lm.model(ids, position_ids=positions, attention_mask=mask)
        lm.model(ids, position_ids=positions, attention_mask=mask)  # the outer capture alone again
    assert_same(inner.weights[0], want[:, :, [2]])
    assert_same(everything.weights[0], want)
    assert len(outer.passes) == 3
    for seen in outer.passes:
        assert_same(seen[0], want[:, :, [-1]])
    assert lm.model.config._attn_implementation == "eager"
    with capture_attention(lm.model, layers=[-1]) as everything, torch.no_grad():
        with capture_attention(lm.model, queries=[-1], layers=[-1]) as last:
            lm.model(ids, position_ids=positions, attention_mask=mask)
    assert_same(everything.weights[0], want)  # every row, not the last's
    assert_same(last.weights[0], want[:, :, [-1]])


@pytest.mark.parametrize(("queries", "message"), [([], "queries is empty"), ([1.5], r"queries\[0\] = 1\.5")])
def test_bad_queries_are_refused(tiny, queries, message):
    with pytest.raises(ValueError, match=message), capture_attention(tiny.model, queries=queries):
        pass
