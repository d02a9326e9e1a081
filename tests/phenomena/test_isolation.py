"""The isolation slice on the tiny model: both modes on the same layout, the tables against the attention
maps, the figures, and the replay view against the maps' own numbers."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from tempo_lab.phenomena import isolation
from tempo_lab.phenomena.isolation import display as isolation_display
from tempo_lab.summaries import set_spans
from tests.helpers import check_figure, check_view, first_control_values


@pytest.fixture(scope="module")
def pairs(tiny):
    return isolation.parallel_pairs(tiny, "ab", [0.02, 0.05], max_steps=6, max_set_size=3)


def test_parallel_pairs_replay_shares_the_isolated_layout(pairs):
    assert sorted(pairs) == [0.02, 0.05]
    for th, pair in pairs.items():
        assert (
            pair.isolated.mode == "isolated"
            and pair.replay.mode == "visible"
            and pair.visible.mode == "visible"
        )
        assert pair.isolated.threshold == th
        assert torch.equal(pair.isolated.input_ids, pair.replay.input_ids)
        assert torch.equal(pair.isolated.positions, pair.replay.positions)
        assert len(pair.slot_tokens) == pair.isolated.input_ids.shape[1]
        assert pair.run("visible") is pair.replay
    assert any(s > 1 for p in pairs.values() for s in p.isolated.set_sizes), "no parallel set to test with"


def test_later_mass_and_isolation_inside_sets(pairs):
    for pair in pairs.values():
        iso, vis = pair.isolated.attention_map(), pair.replay.attention_map()
        spans = set_spans(pair.isolated)
        assert spans == [(k, s.slots[0], s.slots[-1] + 1) for k, s in enumerate(pair.isolated.steps) if s.fed]
        for _, a, b in spans:
            for q in range(a, b):
                for k in range(a, b):
                    if k != q:
                        assert float(iso[q, k]) == 0.0  # isolated members never see each other
                    if k < q:
                        assert float(vis[q, k]) > 0.0  # visible members see earlier members
        table = isolation.mode_mass_table(pair)
        n = iso.shape[0]
        later = [(k, a, b) for k, a, b in spans if b < n]
        assert list(table["step"]) == [k for k, _, _ in later]
        for (_, a, b), row in zip(later, table.to_dict("records"), strict=True):
            assert row["isolated"] == pytest.approx(float(iso[b:, a:b].sum(-1).mean()))
            assert row["visible"] == pytest.approx(float(vis[b:, a:b].sum(-1).mean()))
            assert row["relative change"] == pytest.approx(
                (row["isolated"] - row["visible"]) / row["visible"]
            )


def test_mode_sets_table_compares_the_free_runs(pairs):
    pair = pairs[0.05]
    table = isolation.mode_sets_table(pair)
    assert len(table) == max(len(pair.isolated.steps), len(pair.visible.steps))
    for row, a, b in zip(table.to_dict("records"), pair.isolated.steps, pair.visible.steps, strict=False):
        assert row["same set"] == (sorted(a.token_ids) == sorted(b.token_ids))
        assert row["same order"] == (a.token_ids == b.token_ids)
        assert row["isolated"] == "/".join(repr(t) for t in a.tokens)


def test_mode_texts_table(pairs):
    table = isolation.mode_texts_table(pairs)
    assert list(table["threshold"]) == list(pairs)
    for row, pair in zip(table.to_dict("records"), pairs.values(), strict=True):
        assert row["isolated"] == pair.isolated.text and row["visible"] == pair.visible.text
        assert row["identical"] == (pair.isolated.text == pair.visible.text)
        sets = isolation.mode_sets_table(pair)
        differing = sets[~sets["same set"]]["step"]
        if len(differing):
            assert row["first differing step"] == differing.iloc[0]
        else:
            assert row["first differing step"] is pd.NA


def test_replay_view_draws_each_mode_with_the_other_beside(tiny):
    pairs = isolation.parallel_pairs(tiny, "ab", [0.02, 0.05], max_steps=5, max_set_size=3)
    view = isolation_display.view(pairs)
    check_view(view)
    assert list(view.controls) == ["threshold", "step", "layer", "head", "mode"]
    for threshold in first_control_values(view):
        pair = pairs[threshold]
        spans = set_spans(pair.isolated)
        k, a, b = spans[0]
        for mode, run, other in (
            ("isolated", pair.isolated, pair.replay),
            ("visible", pair.replay, pair.isolated),
        ):
            text = view(threshold=threshold, step=0, layer=-1, head=-1, mode=mode).text
            n = run.input_ids.shape[1]
            mass = float(run.attention_map()[b:, a:b].sum(-1).mean())
            twin = float(other.attention_map()[b:, a:b].sum(-1).mean())
            assert f"later tokens' attention on it {mass:.4f} (other mode {twin:.4f})" in text and b < n
            one = view(threshold=threshold, step=0, layer=1, head=2, mode=mode).text
            m1 = float(run.attention_map(1, 2)[b:, a:b].sum(-1).mean())
            assert "layer 1, head 2: set 0" in one and f"{m1:.4f}" in one
        # a step past the last set is clamped to the last set
        last = view(threshold=threshold, step=99, layer=-1, head=-1, mode="isolated").text
        assert f"set {spans[-1][0]} " in last
    with pytest.raises(ValueError, match="threshold"):
        view(threshold=0.5)
    with pytest.raises(ValueError, match="layer"):
        view(layer=2)


def test_figures(tiny):
    pairs = isolation.parallel_pairs(tiny, "ab", [0.02], max_steps=5, max_set_size=3)
    pair = pairs[0.02]
    spans = set_spans(pair.isolated)
    fig = isolation_display.mode_maps(
        pair.isolated.attention_map(), pair.replay.attention_map(), pair.slot_tokens, spans, "t"
    )
    check_figure(fig, n_axes_with_labels=3)
    n_outlined = sum(1 for _, a, b in spans if b - a > 1)
    assert len(fig.axes[0].patches) == n_outlined
    bars = isolation_display.mode_mass_bars(isolation.mode_mass_table(pair))
    check_figure(bars)

