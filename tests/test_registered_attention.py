"""tempo_lab's registered attention functions (per-head position edits, Self-Extend, row captures) on a bare
``model(input_ids)`` call, with no mask given: transformers then builds the mask a name asks for, and each
must attend causally. In a setting that moves nothing, each pass must equal the plain eager forward (computed
before the block); the captured rows must equal the eager capture's."""

from __future__ import annotations

import pytest
import torch

from tempo_lab.capture import capture_attention
from tempo_lab.extension.self_extend import self_extended
from tempo_lab.interventions import PositionEdit, intervene
from tempo_lab.tiny import tiny_random
from tests.helpers import assert_same

# gemma2: no SDPA, soft-capping, sliding layers (window 4 here); gpt_neox: partial rotary
FAMILIES = ["llama", "gemma2", "gpt_neox"]


@pytest.fixture(scope="module", params=FAMILIES)
def lm(request):
    return tiny_random(request.param, seed=5, **({"sliding_window": 4} if request.param == "gemma2" else {}))


def ids() -> torch.Tensor:
    return torch.randint(0, 200, (2, 12), generator=torch.Generator().manual_seed(0))


def plain(lm) -> torch.Tensor:
    return lm.model(input_ids=ids()).logits


def test_a_head_edit_of_zero_is_the_plain_forward(lm):
    want = plain(lm)
    with intervene(lm, PositionEdit(torch.zeros(12), heads=[0])):
        assert lm.model.config._attn_implementation != "eager"  # the registered function attends
        got = lm.model(input_ids=ids()).logits
    assert_same(got, want)


def test_self_extend_with_group_one_is_the_plain_forward(lm):
    want = plain(lm)
    with self_extended(lm, window=4, group=1):
        got = lm.model(input_ids=ids()).logits
    assert_same(got, want)


def test_a_row_capture_is_the_plain_forward_and_the_eager_rows(lm):
    with capture_attention(lm.model) as full:
        want = lm.model(input_ids=ids()).logits
    with capture_attention(lm.model, queries=[0, 5, -1]) as rows:
        got = lm.model(input_ids=ids()).logits
    assert_same(got, want)
    for got, every in zip(rows.weights, full.weights, strict=True):
        assert_same(got, every[:, :, [0, 5, 11]])
