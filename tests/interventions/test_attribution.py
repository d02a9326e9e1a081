"""Position gradients against central finite differences (float64 models), integrated-gradient completeness,
and position search against the grid it is checked on."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import masks
from tempo_lab.forward import DecodingCore
from tempo_lab.interventions import (
    PositionEdit,
    integrated_gradients,
    intervene,
    log_prob,
    logit_diff,
    moved,
    position_gradients,
    prompt_mass,
    search_positions,
)
from tempo_lab.interventions.display import search_figure
from tempo_lab.layout import Layout
from tests.helpers import assert_same, check_figure
from tests.test_families import PROMPT, build

STEP = 5e-3  # finite-difference step, in positions (the rotary modules compute angles in float32)


def _float64(name: str):
    lm = build(name, initializer_range=0.2)
    lm.model.double()
    return lm


def _layout(n: int) -> Layout:
    """Fractional, increasing positions starting at 1 (a central difference at slot 0 stays >= 0)."""
    return Layout.of([1.0 + i + 0.25 * (i % 3) for i in range(n)], name="fractional")


@pytest.mark.parametrize("name", ["llama", "qwen2", "gemma2", "gpt_neox"])
def test_position_gradients_equal_central_finite_differences(name):
    lm = _float64(name)
    ids = lm.encode(PROMPT)
    n = ids.shape[1]
    layout = _layout(n)
    metric = logit_diff(lm, "a", "e")
    got = position_gradients(lm, ids, layout, metric)
    core = DecodingCore(lm)
    differences = []
    for i in range(n):
        values = []
        for h in (STEP, -STEP):
            p = layout.positions.double().clone()
            p[0, i] += h
            values.append(float(metric(core.full(ids, Layout(p))[:, -1])[0]))
        differences.append((values[0] - values[1]) / (2 * STEP))
    expected = torch.tensor(differences, dtype=torch.float32)
    scale = float(expected.abs().max())
    assert scale > 1e-2
    # central differences of step STEP: the gradient to their truncation error (and float32 angle noise)
    torch.testing.assert_close(got.gradient, expected, atol=2e-3 * scale + 1e-4, rtol=0)
    assert got.value == pytest.approx(float(metric(core.full(ids, layout)[:, -1])[0]), abs=1e-9)


def test_per_layer_gradients_sum_to_the_whole_and_equal_per_layer_finite_differences():
    lm = _float64("llama")
    ids = lm.encode(PROMPT)
    n = ids.shape[1]
    layout = _layout(n)
    metric = logit_diff(lm, "a", "e")
    whole = position_gradients(lm, ids, layout, metric)
    split = position_gradients(lm, ids, layout, metric, per_layer=True)
    assert split.per_layer.shape == (2, n)
    assert_same(split.per_layer.sum(0), whole.gradient)
    core = DecodingCore(lm)
    for layer in range(2):
        for slot in (n - 1, n // 2):
            values = []
            for h in (STEP, -STEP):
                with intervene(lm, moved(n, slot, h, layers=[layer])):
                    values.append(float(metric(core.full(ids, Layout(layout.positions.double()))[:, -1])[0]))
            expected = (values[0] - values[1]) / (2 * STEP)
            assert float(split.per_layer[layer, slot]) == pytest.approx(
                expected, abs=2e-3 * max(1, abs(expected))
            )


def test_integrated_gradients_are_complete_and_zero_where_nothing_moves():
    lm = _float64("llama")
    ids = lm.encode(PROMPT)
    n = ids.shape[1]
    clean, corrupt = Layout.contiguous(n), Layout.gapped(n, n - 4, 9.0)
    ig = integrated_gradients(lm, ids, clean, corrupt, logit_diff(lm, "a", "e"), steps=64)
    core = DecodingCore(lm)
    ends = [
        float(logit_diff(lm, "a", "e")(core.full(ids, layout)[:, -1])[0])
        for layout in (clean, corrupt)
    ]
    assert (ig.clean, ig.corrupt) == pytest.approx(ends, abs=1e-9)
    assert abs(ig.difference) > 0.5
    assert ig.completeness_error < 0.01
    assert (ig.attributions[: n - 4] == 0).all() and (ig.attributions[n - 4 :] != 0).all()
    assert "completeness error" in ig.summary()
    with pytest.warns(UserWarning, match="raise steps"):
        integrated_gradients(lm, ids, clean, corrupt, logit_diff(lm, "a", "e"), steps=2)


def test_attribution_refuses_a_metric_without_gradient_and_a_mask_pair(tiny):
    ids = tiny.encode(PROMPT)
    n = ids.shape[1]
    with pytest.raises(ValueError, match="'prompt mass' reads captured attention, which carries no gradient"):
        position_gradients(tiny, ids, Layout.contiguous(n), prompt_mass(4))
    labels = masks.set_labels([2], n - 2)
    isolated = Layout(Layout.contiguous(n).positions, masks.parallel_mask(labels, "isolated"), "isolated")
    with pytest.raises(ValueError, match="different masks"):
        integrated_gradients(tiny, ids, Layout.contiguous(n), isolated, logit_diff(tiny, "a", "e"))


@pytest.mark.parametrize("slots", [[15], [14, 15]])
def test_position_search_reaches_the_grid_optimum(tiny, slots):
    ids = tiny.encode(PROMPT)
    n = ids.shape[1]
    found = search_positions(
        tiny, ids, Layout.contiguous(n), slots, log_prob(tiny, "a"), bounds=(n - 2, n + 20)
    )
    assert found.agrees, found.summary()
    best_grid, grid_value = found.grid_best
    assert found.value >= grid_value - 1e-6 or (found.positions - best_grid).abs().max() <= found.grid_step
    # the reported value is the metric at the reported positions
    p = Layout.contiguous(n).positions.clone()
    p[0, slots] = found.positions
    value = float(log_prob(tiny, "a")(DecodingCore(tiny).full(ids, Layout(p))[:, -1])[0])
    assert found.value == pytest.approx(value, abs=1e-5)
    assert ((found.trajectory >= n - 2) & (found.trajectory <= n + 20)).all()
    assert (found.trajectory[..., 1:] >= found.trajectory[..., :-1]).all()  # never out of slot order
    check_figure(search_figure(found))


def test_search_bounds_that_would_reorder_positions_are_named(tiny):
    ids = tiny.encode(PROMPT)
    n = ids.shape[1]
    with pytest.raises(ValueError, match=r"slot 10 reach 12, past slot 11's position 11"):
        search_positions(tiny, ids, Layout.contiguous(n), [10], log_prob(tiny, "a"), bounds=(9, 12))
    with pytest.raises(ValueError, match=r"slot 10 start at 8, before slot 9's position 9"):
        search_positions(tiny, ids, Layout.contiguous(n), [10], log_prob(tiny, "a"), bounds=(8, 10.5))
    with pytest.raises(ValueError, match="distinct and in increasing order"):
        search_positions(tiny, ids, Layout.contiguous(n), [15, 14], log_prob(tiny, "a"), bounds=(13, 20))


def test_gradients_flow_through_a_per_layer_edit_of_float_positions(tiny):
    """The shift of an edit is itself differentiable (what per-layer attribution reads)."""
    ids = tiny.encode(PROMPT)
    n = ids.shape[1]
    shift = torch.zeros(n, requires_grad=True)
    with intervene(tiny, PositionEdit(shift, layers=[1], heads=[0])):
        logits = DecodingCore(tiny).forward(ids, Layout.contiguous(n), grad=True)
    logits[0, -1, 5].backward()
    assert shift.grad is not None and shift.grad.abs().sum() > 0
