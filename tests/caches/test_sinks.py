"""Sinks and massive activations (:mod:`tempo_lab.caches.sinks`) against independent paths: the sink mass
against a full eager capture's rows, an activation planted by a hook found at its layer, slot and dimension,
each ablation against the same edit done by hand on the model's own forward."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from tempo_lab import capture_attention, masks
from tempo_lab.caches import massive_activations, massive_means, sink_ablation, sink_mass
from tempo_lab.caches.sinks import ablated
from tempo_lab.loaded import widened
from tests.helpers import assert_same

TEXT = "Once upon a time, there"


def own_probs(lm, ids, mask=None):
    n = ids.shape[1]
    mask = masks.causal_mask(n, dtype=lm.dtype) if mask is None else mask
    with torch.no_grad():
        logits = lm.model(ids, position_ids=torch.arange(n)[None], attention_mask=mask).logits
    return torch.softmax(widened(logits[0, -1]), -1)


def test_sink_mass_is_the_last_rows_mass_on_the_first_slots(tiny):
    ids = tiny.encode(TEXT)
    with capture_attention(tiny.model) as rec, torch.no_grad():
        n = ids.shape[1]
        tiny.model(ids, position_ids=torch.arange(n)[None], attention_mask=masks.causal_mask(n))
    full = rec.stacked()[:, 0, :, -1, :2].sum(-1)  # (layers, heads)
    assert_same(sink_mass(tiny, ids, sinks=2), full)


@pytest.fixture
def planted(tiny):
    """Layer 0's output gets 1000 at slot 0, dimension 5, while the fixture is active."""

    def plant(_module, _args, output):
        h = output[0] if isinstance(output, tuple) else output
        h = h.clone()
        h[:, 0, 5] = 1000.0
        return (h, *output[1:]) if isinstance(output, tuple) else h

    handle = tiny.model.base_model.layers[0].register_forward_hook(plant)
    yield tiny
    handle.remove()


def test_a_planted_activation_is_found_where_it_was_planted(planted):
    found = massive_activations(planted, planted.encode(TEXT))
    first = found.iloc[0]
    assert (first.layer, first.slot, first.dim, first.value) == (0, 0, 5, 1000.0) and first.ratio > 100
    assert set(found.slot) == {0} and set(found.dim) == {5}  # the residual carries it on: layer 1 too


def test_zero_and_mean_ablations_equal_the_edit_done_by_hand(planted):
    ids = planted.encode(TEXT)
    found = massive_activations(planted, ids)
    base = own_probs(planted, ids)
    means = {(0, 5): 7.0, (1, 5): -3.0}  # (layer, dim): the value a mean ablation sets
    assert massive_means(pd.concat([found, found.assign(value=found.value - 2)])) == {
        (int(r.layer), int(r.dim)): r.value - 1 for r in found.itertuples()
    }
    for mode in ("zero", "mean"):

        def by_hand(layer, mode=mode):
            def hook(_module, _args, output):
                h = (output[0] if isinstance(output, tuple) else output).clone()
                h[:, 0, 5] = 0.0 if mode == "zero" else means[layer, 5]
                return (h, *output[1:]) if isinstance(output, tuple) else h

            return hook

        layers = planted.model.base_model.layers
        handles = [block.register_forward_hook(by_hand(i)) for i, block in enumerate(layers)]
        try:
            want = float(0.5 * (own_probs(planted, ids) - base).abs().sum())
        finally:
            for h in handles:
                h.remove()
        assert sink_ablation(planted, ids, mode, found, means=means) == pytest.approx(want, abs=1e-6)
        assert want > 1e-4


def test_one_dimension_and_the_sink_mass_after_it_equal_the_edit_done_by_hand(tiny):
    """Two planted massive dimensions (5 and 9); ``dims=[9]`` zeroes dimension 9 alone, and the sink mass
    measured inside :func:`ablated` equals the one measured under the same edit done by hand."""

    def plant(_module, _args, output):
        h = (output[0] if isinstance(output, tuple) else output).clone()
        h[:, 0, 5], h[:, 0, 9] = 1000.0, -800.0
        return (h, *output[1:]) if isinstance(output, tuple) else h

    def zero_nine(_module, _args, output):
        h = (output[0] if isinstance(output, tuple) else output).clone()
        h[:, 0, 9] = 0.0
        return (h, *output[1:]) if isinstance(output, tuple) else h

    ids = tiny.encode(TEXT)
    layers = tiny.model.base_model.layers
    planted = layers[0].register_forward_hook(plant)
    try:
        found = massive_activations(tiny, ids)
        assert set(found.dim) == {5, 9}
        base = own_probs(tiny, ids)
        handles = [block.register_forward_hook(zero_nine) for block in layers]
        try:
            want_tv = float(0.5 * (own_probs(tiny, ids) - base).abs().sum())
            want_mass = sink_mass(tiny, ids)
        finally:
            for h in handles:
                h.remove()
        assert sink_ablation(tiny, ids, "zero", found, dims=[9]) == pytest.approx(want_tv, abs=1e-6)
        with ablated(tiny, ids, "zero", found, dims=[9]) as entries:
            assert_same(sink_mass(tiny, ids), want_mass)
        assert entries == len(found[found.dim == 9]) and want_tv > 1e-4
    finally:
        planted.remove()


def test_removing_the_sink_equals_masking_it_out_by_hand(tiny):
    ids = tiny.encode(TEXT)
    n = ids.shape[1]
    allowed = torch.ones(n, n, dtype=torch.bool).tril()
    allowed[1:, 0] = False
    mask = torch.zeros(1, 1, n, n).masked_fill(~allowed, torch.finfo(torch.float32).min)
    want = float(0.5 * (own_probs(tiny, ids, mask) - own_probs(tiny, ids)).abs().sum())
    assert sink_ablation(tiny, ids, "remove") == pytest.approx(want, abs=1e-6) and want > 1e-4


def test_moving_the_sink_equals_the_models_own_forward_at_those_positions(tiny):
    ids = tiny.encode(TEXT)
    n = ids.shape[1]
    where = torch.arange(n)[None].clone()
    where[0, 0] = 7
    causal = masks.causal_mask(n, dtype=tiny.dtype)  # explicit: a restarting position with no mask splits
    with torch.no_grad():
        moved = torch.softmax(
            widened(tiny.model(ids, position_ids=where, attention_mask=causal).logits[0, -1]), -1
        )
    want = float(0.5 * (moved - own_probs(tiny, ids)).abs().sum())
    assert sink_ablation(tiny, ids, "move", to=7) == pytest.approx(want, abs=1e-6) and want > 1e-4
    where[0, 0] = n - 2
    with torch.no_grad():
        beside = torch.softmax(
            widened(tiny.model(ids, position_ids=where, attention_mask=causal).logits[0, -1]), -1
        )
    assert sink_ablation(tiny, ids, "move") == pytest.approx(
        float(0.5 * (beside - own_probs(tiny, ids)).abs().sum()), abs=1e-6
    )


def test_nothing_to_ablate_changes_nothing_and_bad_input_is_refused(tiny):
    ids = tiny.encode(TEXT)
    empty = massive_activations(tiny, ids, ratio=1e9)
    assert empty.empty and sink_ablation(tiny, ids, "zero", empty) == 0.0
    with pytest.raises(ValueError, match="mode must be one of zero, mean, remove, move, got 'drop'"):
        sink_ablation(tiny, ids, "drop")
    with pytest.raises(
        ValueError, match=r"mode 'mean' sets each massive entry to its mean over many prompts"
    ):
        sink_ablation(tiny, ids, "mean")
    with pytest.raises(ValueError, match=r"sinks must be an integer in 1\.\.22, got 0"):
        sink_mass(tiny, ids, sinks=0)
    with pytest.raises(ValueError, match=r"ratio must be > 1"):
        massive_activations(tiny, ids, ratio=0.5)
