"""Position builders and validation; integral vs fractional positions on the model; non-rotary refusal."""

from __future__ import annotations

import math

import pytest
import torch

from tempo_lab import masks, positions
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tests.helpers import assert_same


def test_contiguous_and_with_gap():
    assert positions.contiguous(4).tolist() == [[0.0, 1.0, 2.0, 3.0]]
    assert positions.contiguous(2, start=3).tolist() == [[3.0, 4.0]]
    assert positions.contiguous(3).dtype == torch.float32
    assert positions.with_gap(3, 2, gap=5).tolist() == [[0, 1, 2, 8, 9]]
    assert torch.equal(positions.with_gap(6, 1, 0), positions.contiguous(7))
    assert positions.with_gap(2, 1, 0.5).tolist() == [[0.0, 1.0, 2.5]]


def test_placed_and_shared():
    assert positions.appended(3, 4.5).tolist() == [[0.0, 1.0, 2.0, 4.5]]
    # a set of size k at start+j for the j-th set, i.e. members repeat one position
    sizes = [3, 1, 2]
    got = positions.shared(5, sizes)[0].tolist()
    expected = [5.0 + j for j, size in enumerate(sizes) for _ in range(size)]
    assert got == expected and len(got) == sum(sizes)


@pytest.mark.parametrize(
    "bad, name, index",
    [(float("nan"), "NaN", 2), (float("inf"), "infinite", 2), (-1.0, "negative", 2)],
)
def test_validate_rejects_non_finite_and_negative(bad, name, index):
    p = torch.tensor([[0.0, 1.0, bad, 5.0]])
    with pytest.raises(ValueError, match=rf"position_ids\[0, {index}\] is {name}"):
        positions.validate(p)


def test_validate_rejects_decreasing_and_names_the_index():
    with pytest.raises(
        ValueError, match=r"position_ids\[0, 3\] = 1\.0 decreases from position_ids\[0, 2\] = 2\.0"
    ):
        positions.validate(torch.tensor([[0.0, 1.0, 2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"position_ids\[1, 1\]"):
        positions.validate(torch.tensor([[0.0, 1.0, 2.0], [3.0, 2.0, 4.0]]))
    # equal neighbours (a parallel set) are fine
    positions.validate(torch.tensor([[0.0, 1.0, 1.0, 1.0, 2.0]]))


def test_validate_after_and_shape():
    with pytest.raises(ValueError, match=r"position_ids\[0, 0\] = 3\.0 precedes the last cached position 4"):
        positions.validate(torch.tensor([[3.0, 5.0]]), after=4)
    positions.validate(torch.tensor([[4.0, 5.0]]), after=4)
    with pytest.raises(ValueError, match=r"shape \(batch, n\), got \(3,\)"):
        positions.validate(torch.tensor([0.0, 1.0, 2.0]))


def test_position_past_context_warns_and_strict_raises():
    p = torch.tensor([[0.0, 1.0, 600.0]])
    past = r"position_ids\[0, 2\] reaches position 600, past the model's context"
    with pytest.warns(UserWarning, match=past):
        positions.validate(p, max_positions=512)
    with pytest.raises(ValueError, match=r"max_position_embeddings = 512"):
        positions.validate(p, max_positions=512, strict_context=True)


def test_builders_refuse_bad_numbers():
    with pytest.raises(ValueError, match="gap must be a finite number >= 0, got -1"):
        positions.with_gap(3, 1, -1)
    with pytest.raises(ValueError, match="gap must be a finite number >= 0, got nan"):
        positions.with_gap(3, 1, math.nan)
    with pytest.raises(ValueError, match="position must be a finite number, got inf"):
        positions.appended(3, math.inf)
    with pytest.raises(ValueError, match=r"position_ids\[0, 3\] = 1\.5 decreases"):
        positions.appended(3, 1.5)
    with pytest.raises(ValueError, match="at least one member"):
        positions.shared(0, [2, 0])
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        positions.contiguous(0)


def _logits(lm, ids, pos):
    with torch.no_grad():
        return lm.model(
            ids, position_ids=pos, attention_mask=masks.causal_mask(ids.shape[1], dtype=lm.dtype)
        ).logits


def test_integral_float_positions_equal_integer_positions(tiny):
    ids = tiny.encode("gap test")
    pos_float = positions.with_gap(ids.shape[1] - 1, 1, 7)
    torch.testing.assert_close(
        _logits(tiny, ids, pos_float), _logits(tiny, ids, pos_float.long()), atol=0, rtol=0
    )


def test_fractional_position_differs_from_both_neighbours(tiny):
    ids = tiny.encode("abcde")
    at = {p: _logits(tiny, ids, positions.appended(4, p))[0, -1] for p in (4.0, 4.5, 5.0)}
    assert (at[4.5] - at[4.0]).abs().max() > 1e-3
    assert (at[4.5] - at[5.0]).abs().max() > 1e-3
    # the prompt rows do not depend on where the last token sits
    half, whole = (_logits(tiny, ids, positions.appended(4, p))[0, :-1] for p in (4.5, 5.0))
    assert_same(half, whole)


def test_integer_positions_are_refused_fractional_and_given_as_int64():
    frac = torch.tensor([[0.0, 1.0, 2.5]])
    with pytest.raises(ValueError, match=r"position_ids\[0, 2\] = 2\.5 is fractional.*: a learned table"):
        positions.as_model_positions(frac, "a learned table")
    as_int = positions.as_model_positions(torch.tensor([[0.0, 4.0]]), "a learned table")
    assert as_int.dtype == torch.int64 and as_int.tolist() == [[0, 4]]
    assert positions.as_model_positions(frac, "") is frac


def test_non_rotary_model_takes_integer_positions_and_refuses_fractional(tiny_gpt2):
    core = DecodingCore(tiny_gpt2)
    ids = tiny_gpt2.encode("gpt2")
    n = ids.shape[1]
    with torch.no_grad():
        reference = tiny_gpt2.model(ids).logits
    assert_same(core.full(ids, Layout(positions.contiguous(n))), reference)
    gapped = core.full(ids, Layout(positions.with_gap(n - 1, 1, 3)))
    assert_same(gapped[:, :-1], reference[:, :-1])
    assert (gapped[0, -1] - reference[0, -1]).abs().max() > 1e-3  # the learned table row for n+2 is used
    with pytest.raises(ValueError, match=r"position_ids\[0, 3\] = 3\.5 is fractional"):
        core.full(ids, Layout(positions.with_gap(n - 1, 1, 0.5)))
    prefix = core.prefill(ids[:, :-1])
    with pytest.raises(ValueError, match="is fractional"):
        core.step(prefix.cache, ids[:, -1:], Layout(torch.tensor([[n - 0.5]])))


def test_decoding_core_refuses_positions_past_the_context(tiny):
    core = DecodingCore(tiny)
    ids = tiny.encode("ab")
    past = r"position_ids\[0, 1\] reaches position 512, past the model's context"
    with pytest.raises(ValueError, match=past):
        core.full(ids, Layout(positions.appended(1, 512)))
    core.full(ids, Layout(positions.appended(1, 511)))
