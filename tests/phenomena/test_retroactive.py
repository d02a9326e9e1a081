"""The retroactive slice on the tiny model: the heat table and figure against the exploration's own numbers,
the replay view, and the live explorer: every move equals the generator, one prefill per prompt, one cached
step per move, bad input shown as its message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.live.session import LiveSession
from tempo_lab.phenomena import retroactive
from tempo_lab.phenomena.retroactive import display as retroactive_display
from tests.helpers import check_figure, check_view, first_control_values

PROMPT = "Once upon a time"


def top_of(lm, probs: torch.Tensor, k: int = 5) -> list[list]:
    p, i = probs.topk(k)
    return [[lm.token_str(int(t)), pytest.approx(float(v), abs=1e-5)] for t, v in zip(i, p, strict=True)]


def forward_shapes(lm, run) -> list[tuple[int, int]]:
    """The ``(batch, q)`` of every forward pass of ``lm`` while ``run()`` runs."""
    calls = []
    hook = lm.model.base_model.register_forward_pre_hook(
        lambda _m, _a, kw: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        run()
    finally:
        hook.remove()
    return calls


def test_retro_heat_table_tracks_top_tokens_with_their_probabilities(tiny):
    res = RetroactivePositionGenerator(tiny).explore("The cat sat", gaps=list(range(0, 40, 4)), token="!")
    heat = retroactive.heat_table(tiny, res, 3)
    table = heat.table
    assert list(table.columns) == list(range(0, 40, 4))
    top1 = [tiny.token_str(int(i)) for i in res.probs.argmax(-1)]
    assert heat.top1 == top1
    assert table.index.is_unique
    assert set(heat.token_ids) >= set(res.probs.argmax(-1).tolist())
    for label, tid in zip(table.index, heat.token_ids, strict=True):
        assert label.startswith(repr(tiny.token_str(tid)))
        np.testing.assert_allclose(table.loc[label].to_numpy(), res.probs[:, tid].double().numpy())
    changes = retroactive.top1_changes(heat)
    assert changes[0] == (0, top1[0])
    assert all(top1[list(table.columns).index(g)] == tok for g, tok in changes)
    assert len(changes) == 1 + sum(a != b for a, b in zip(top1, top1[1:], strict=False))


def test_heatmap(tiny):
    res = RetroactivePositionGenerator(tiny).explore("The cat sat", gaps=list(range(0, 30, 3)), token="!")
    heat = retroactive.heat_table(tiny, res, 3)
    fig = retroactive_display.heatmap(heat)
    check_figure(fig)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(heat.table.index)


def test_replay_view_follows_the_top_token_over_the_range(tiny):
    res = RetroactivePositionGenerator(tiny).explore("The cat sat", gaps=list(range(0, 21, 2)), token="!")
    view = retroactive_display.view(res, tiny)
    check_view(view)
    c = view.controls["max_gap"]
    assert (c.lo, c.hi, c.step, c.value) == (0, 20, 2, 20)
    probs = res.probs.double()
    lead = int(res.reference.argmax())
    for gap in first_control_values(view):
        for max_gap in (4, 12, 20):
            shown = view(gap=gap, max_gap=max_gap)
            cols = [i for i, g in enumerate(res.gaps) if g <= max_gap]
            curve = probs[cols, lead]
            at = res.gaps.index(gap)
            assert f"p at gap 0 = {float(curve[0]):.4f}" in shown.text
            assert f"highest {float(curve.max()):.4f}" in shown.text
            leads = int((probs[cols].argmax(-1) == lead).sum())
            assert f"top prediction at {leads} of {len(cols)} gaps" in shown.text
            assert shown.state["tv_from_gap0"] == pytest.approx(float(res.tv[at]), abs=1e-6)
            assert shown.state["top"] == top_of(tiny, res.probs[at])
            assert [line.get_xdata()[-1] for line in shown.figure.axes[1].get_lines()[:5]] == [
                res.gaps[cols[-1]]] * 5  # fmt: skip
    with pytest.raises(ValueError, match="gap 3 was not explored"):
        view(gap=3)


def test_position_moves_reuse_the_prefix_and_equal_the_generator(tiny):
    session = LiveSession(tiny)
    explorer = retroactive_display.explorer(session)
    t = tiny.encode(PROMPT).shape[1]
    for gap in (0.0, 2.5, 7.3, 30.0):
        view = explorer(prompt=PROMPT, token="x", gap=gap, gap_range=10)
        expected = RetroactivePositionGenerator(tiny).explore(PROMPT, positions=[t + gap], token="x")
        assert view.state["position"] == t + gap and view.state["top"] == top_of(tiny, expected.probs[0])
        assert view.state["tv_from_gap0"] == pytest.approx(float(expected.tv[0]), abs=1e-5)
        assert view.figure is not None and f"at gap {gap:g} (position {t + gap:g})" in view.text
    assert session.prefills == 1  # four moves, one prefill
    explorer(prompt="Another prompt", token="x", gap=1.0, gap_range=10)
    assert session.prefills == 2


def test_a_prompt_change_costs_one_prefill_and_one_step(tiny):
    session = LiveSession(tiny)
    explorer = retroactive_display.explorer(session)
    explorer(prompt=PROMPT, token="x", gap=1.0, gap_range=10)
    calls = forward_shapes(tiny, lambda: explorer(prompt="The cat sat", token="x", gap=1.0, gap_range=10))
    # the prefill, then one step: the chosen position, gap 0 and the new prompt's curve as branches of it
    assert calls == [(1, 11), (calls[1][0], 1)] and calls[1][0] > 2 and session.prefills == 2
    calls = forward_shapes(tiny, lambda: explorer(prompt="The cat sat", token="x", gap=4.2, gap_range=10))
    assert calls == [(2, 1)]  # a move: one step of two branches


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"prompt": ""}, "the prompt is empty"),
        ({"prompt": "a" * 600}, "the prompt (600 tokens) reaches position 599, past the model's context"),
        ({"token": "xy"}, "'xy' encodes to 2 tokens"),
        ({"gap": -1.0}, "positions[0] = 15 is inside the prompt (length 16); the token must be placed at"),
    ],
)
def test_bad_input_shows_our_message_and_the_next_valid_input_works(tiny, values, message):
    explorer = retroactive_display.explorer(LiveSession(tiny))
    good = {"prompt": PROMPT, "token": "x", "gap": 1.0, "gap_range": 10}
    view = explorer(**{**good, **values})
    assert view.figure is None and message in view.state["error"] and view.text.startswith("⚠")
    assert "error" not in explorer(**good).state


def test_position_inside_the_prompt_is_refused(tiny):
    session = LiveSession(tiny)
    session.use_prompt(PROMPT)
    with pytest.raises(ValueError, match="position 3 is inside the prompt"):
        session.place("x", [3.0])




def test_a_kept_live_figure_draws_the_pixels_of_a_fresh_one(tiny):
    """The live explorer keeps its figure and updates the artists on each move: the PNG of the kept figure
    after several moves equals, byte for byte, the PNG of the same render built from nothing."""
    from tempo_lab.plots import LiveFigure
    from tempo_lab.views.panel import png

    res = RetroactivePositionGenerator(tiny).explore(PROMPT, gaps=[0, 0.5, 2, 3.5, 7, 12, 20], token="x")
    kept = LiveFigure()
    for gap, max_gap in ((0.5, 20), (7, 20), (3.5, 12), (20, 20), (2, 7)):
        moved = retroactive_display.render(res, tiny, gap, max_gap, kept=kept)
        fresh = retroactive_display.render(res, tiny, gap, max_gap)
        assert moved.text == fresh.text and moved.state == fresh.state
        assert png(moved.figure) == png(fresh.figure), (gap, max_gap)
    assert kept.builds == 1  # the same token and curve tokens: one figure, updated four times
    retroactive_display.render(res, tiny, 2, 7, top_k=3, kept=kept)
    assert kept.builds == 2  # fewer curves: built anew


def test_live_moves_keep_one_figure(tiny):
    explorer = retroactive_display.explorer(LiveSession(tiny))
    figures = {id(explorer(prompt=PROMPT, token="x", gap=g, gap_range=10).figure) for g in (0.5, 3.0, 8.5)}
    assert len(figures) == 1
    assert id(explorer(prompt=PROMPT, token="y", gap=1.0, gap_range=10).figure) not in figures
