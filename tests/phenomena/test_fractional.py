"""The fractional-position slice on the tiny model: the sweep against full recomputation, its tables and
figure, and the replay view and live explorer against independent numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tempo_lab import positions as pos
from tempo_lab import reference
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.generators.retroactive import TOP_KEPT
from tempo_lab.layout import Layout
from tempo_lab.live.session import LiveSession
from tempo_lab.phenomena import fractional
from tempo_lab.phenomena.fractional import display as fractional_display
from tests.helpers import assert_same, check_figure, check_view, first_control_values

PROMPT = "The cat sat"


def full_next_probs(lm, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Next-token probabilities of a whole sequence by one uncached pass with an explicit causal mask."""
    return torch.softmax(reference.next_logits(lm, ids, Layout(positions)), -1)


def test_sweep_positions_includes_stop_and_rejects_bad_ranges():
    assert pos.grid(1, 2, 0.25) == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert pos.grid(3.0, 6.0, 0.1)[-1] == 6.0
    assert len(pos.grid(3.0, 6.0, 0.1)) == 31
    with pytest.raises(ValueError, match="step"):
        pos.grid(0, 1, 0)
    with pytest.raises(ValueError, match="stop"):
        pos.grid(2, 1, 0.1)
    with pytest.raises(ValueError, match="start"):
        pos.grid(float("nan"), 1, 0.1)


def test_position_sweep_matches_full_recomputation_at_every_position(tiny):
    ids = tiny.encode(PROMPT)
    t = ids.shape[1]
    sweep = RetroactivePositionGenerator(tiny).sweep(PROMPT, [t - 2 + 0.5, t - 1 + 0.25, t + 1.5])
    # the integer neighbours are added
    assert {float(t - 2), float(t - 1), float(t), float(t + 1), float(t + 2)} <= set(sweep.positions)
    assert sweep.natural == t - 1 and sweep.token_id == int(ids[0, -1])
    for i, p in enumerate(sweep.positions):
        positions = torch.cat([torch.arange(t - 1, dtype=torch.float32), torch.tensor([p])])[None]
        expected = full_next_probs(tiny, ids, positions)
        assert_same(sweep.probs[i], expected)
    # at the natural position the sweep equals the ordinary forward pass
    assert_same(sweep.probs[sweep.index(t - 1)], full_next_probs(tiny, ids, pos.contiguous(t)))


def test_position_sweep_rejects_bad_input_before_model_work(tiny):
    t = tiny.encode(PROMPT).shape[1]
    with pytest.raises(ValueError, match="precedes"):
        RetroactivePositionGenerator(tiny).sweep(PROMPT, [t - 2.5])
    with pytest.raises(ValueError, match="finite"):
        RetroactivePositionGenerator(tiny).sweep(PROMPT, [float("inf")])
    with pytest.raises(ValueError, match="two"):
        RetroactivePositionGenerator(tiny).sweep("a", [0.5])
    with pytest.raises(ValueError, match="context"):
        RetroactivePositionGenerator(tiny).sweep(PROMPT, [10_000.5])


def test_position_sweep_refuses_fractional_positions_without_rotary(tiny_gpt2):
    with pytest.raises(ValueError, match="fractional"):
        RetroactivePositionGenerator(tiny_gpt2).sweep(PROMPT, [10.5])


def test_neighbour_divergence_and_curves_agree_with_the_distributions(tiny):
    t = tiny.encode(PROMPT).shape[1]
    sweep = RetroactivePositionGenerator(tiny).sweep(PROMPT, pos.grid(t - 1, t + 1, 0.5))
    div = fractional.neighbour_divergence(sweep)
    probs = sweep.probs.double()
    for row in div.itertuples():
        p = probs[sweep.index(row.position)]
        lo, hi = probs[sweep.index(math.floor(row.position))], probs[sweep.index(math.ceil(row.position))]
        assert row.tv_floor == pytest.approx(0.5 * float((p - lo).abs().sum()), abs=1e-9)
        assert row.tv_ceil == pytest.approx(0.5 * float((p - hi).abs().sum()), abs=1e-9)
        assert row.kl_floor == pytest.approx(float((p * (p.log() - lo.log())).sum()), abs=1e-6)
        if float(row.position).is_integer():
            assert row.tv_floor == row.tv_ceil == 0.0
        assert row.p1 == pytest.approx(float(p.max()))
    frac = div[div["floor"] != div["ceil"]]
    assert (frac["tv_floor"] > 0).all() and (frac["tv_ceil"] > 0).all()  # a fractional position is new

    curves = fractional.top_token_curves(sweep, 3)
    nat_ids = probs[sweep.index(sweep.natural)].topk(3).indices.tolist()
    assert list(curves.columns) == [repr(tiny.token_str(i)) for i in nat_ids]
    np.testing.assert_allclose(curves.to_numpy(), probs[:, nat_ids].numpy())

    table = fractional.compare_positions(sweep, [sweep.natural, sweep.natural + 0.5], 3)
    assert table.loc["max |diff| vs natural", f"{sweep.natural:g}"] == 0.0
    expected = float(
        (probs[sweep.index(sweep.natural + 0.5)] - probs[sweep.index(sweep.natural)]).abs().max()
    )
    assert table.loc["max |diff| vs natural", f"{sweep.natural + 0.5:g}"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="k must"):
        sweep.top_ids(TOP_KEPT + 1)


def test_decimal_position_view_compares_neighbours(tiny):
    t = tiny.encode(PROMPT).shape[1]
    sweep = RetroactivePositionGenerator(tiny).sweep(PROMPT, pos.grid(t - 1, t + 1, 0.25))
    view = fractional_display.view(sweep)
    check_view(view)
    assert view.defaults()["position"] == sweep.natural + 0.5
    div = fractional.neighbour_divergence(sweep).set_index("position")
    for position in first_control_values(view):
        text = view(position=position, top_k=4).text
        lo, hi = math.floor(position), math.ceil(position)
        assert f"TV to {lo:g} = {div.loc[position, 'tv_floor']:.4f}" in text
        assert f"TV to {hi:g} = {div.loc[position, 'tv_ceil']:.4f}" in text
        assert f"{div.loc[position, 'p1']:.4f}" in text
        assert len(view(position=position, top_k=4).figure.axes[0].get_xticklabels()) == 4
    with pytest.raises(ValueError, match="not in the sweep"):
        view(position=t + 0.3)


def test_position_sweep_plot(tiny):
    t = tiny.encode(PROMPT).shape[1]
    sweep = RetroactivePositionGenerator(tiny).sweep(PROMPT, pos.grid(t - 1, t + 1, 0.5))
    fig = fractional_display.position_sweep_plot(
        fractional.neighbour_divergence(sweep), fractional.top_token_curves(sweep, 3), sweep.natural,
        sweep.token,
    )
    check_figure(fig, n_axes_with_labels=2)
    assert len(fig.axes[1].get_lines()) == 3 + 1  # three token curves and the natural-position marker


def test_live_explorer_moves_the_last_token_on_one_held_prefix(tiny):
    session = LiveSession(tiny)
    explorer = fractional_display.explorer(session)
    ids = tiny.encode(PROMPT)
    t = ids.shape[1]
    for shift in (-1.0, -0.5, 0.0, 1.3):
        shown = explorer(prompt=PROMPT, shift=shift, top_k=3)
        position = round(t - 1 + shift, 6)
        where = torch.cat([torch.arange(t - 1, dtype=torch.float32), torch.tensor([position])])[None]
        expected = full_next_probs(tiny, ids, where)
        p, i = expected.topk(3)
        assert shown.state["position"] == position
        assert [tok for tok, _ in shown.state["top"]] == [tiny.token_str(int(x)) for x in i]
        assert [v for _, v in shown.state["top"]] == pytest.approx(p.tolist(), abs=1e-5)
    assert session.prefills == 1  # every move is one cached step on the prompt without its last token
    assert "has one token" in explorer(prompt="a", shift=0.5, top_k=3).state["error"]
