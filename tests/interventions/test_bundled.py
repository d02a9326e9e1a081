"""Interventions on the bundled SmolLM2 (30 layers, 9 heads over 3 key heads): per-layer positions against the
layer-by-layer forward, every head against the plain shift, patching against the loop, a gradient against
finite differences."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import positions as pos
from tempo_lab.forward import DecodingCore
from tempo_lab.interventions import (
    PositionEdit,
    intervene,
    logit_diff,
    patch,
    patch_naively,
    position_gradients,
)
from tempo_lab.layout import Layout
from tests.helpers import real_atol
from tests.interventions.reference import layer_by_layer
from tests.interventions.test_patching import _sites

pytestmark = pytest.mark.bundled
PROMPT = "The capital of France is Paris. The capital of Italy is"


def test_late_layers_moved_equal_the_layer_by_layer_forward_and_every_head_the_plain_shift(bundled):
    ids = bundled.encode(PROMPT)
    n = ids.shape[1]
    positions = pos.contiguous(n)
    shift = torch.zeros(n)
    shift[-1] = 12.5
    core = DecodingCore(bundled)
    per_layer = positions[0].repeat(30, 1)
    per_layer[20:] += shift
    with intervene(bundled, PositionEdit(shift, layers=range(20, 30))):
        got = core.full(ids, Layout(positions))[0]
    reference = layer_by_layer(bundled, ids, per_layer)
    torch.testing.assert_close(got, reference, atol=real_atol(bundled, reference), rtol=0)
    with intervene(bundled, PositionEdit(shift, heads=list(range(9)))):
        heads = core.full(ids, Layout(positions))[0, -1]
    shifted = core.full(ids, Layout(positions + shift))[0, -1]
    torch.testing.assert_close(heads, shifted, atol=real_atol(bundled, shifted), rtol=0)


def test_head_patching_and_a_position_gradient_against_their_independent_paths(bundled):
    ids = bundled.encode(PROMPT)
    n = ids.shape[1]
    clean, corrupt = Layout.contiguous(n), Layout.gapped(n, n - 1, 20.0)
    metric = logit_diff(bundled, " Rome", " Paris")
    result = patch(bundled, ids, clean, corrupt, metric, kinds=("head",), layers=[0, 14, 29])
    assert result.frame.ran.sum() == 3 * 9  # the moved read-out slot only
    checked = result.frame[result.frame.ran | (result.frame.slot == n - 2)]  # and the slot before it
    naive = patch_naively(bundled, ids, clean, corrupt, metric, _sites(checked))
    torch.testing.assert_close(torch.tensor(checked.metric.tolist()), torch.tensor(naive),
                               atol=real_atol(bundled, naive), rtol=0)
    grads = position_gradients(bundled, ids, corrupt, metric)
    core = DecodingCore(bundled)
    for slot in (n - 1, n - 4):
        values = []
        for h in (0.05, -0.05):
            p = corrupt.positions.clone()
            p[0, slot] += h
            values.append(float(metric(core.full(ids, Layout(p))[:, -1])[0]))
        fd = (values[0] - values[1]) / 0.1
        assert float(grads.gradient[slot]) == pytest.approx(fd, abs=0.02 * max(1.0, abs(fd)))
