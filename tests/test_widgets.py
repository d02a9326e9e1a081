"""The notebook views (tempo_lab.widgets factories): pure render functions called with slider values.

Each render is checked against numbers computed independently from the same data, over every value of the
first control (the one the browser test moves), and bad slider values are refused.
"""

from __future__ import annotations

import json
import math

import pytest

from tempo_lab import experiments, metrics, positions, tables, views, widgets
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.probe import gap_probe

PROMPT = "The cat sat"


def first_control_values(view: widgets.View) -> list:
    name, c = next(iter(view.controls.items()))
    if c.options is not None:
        return list(c.options)
    n = int(round((c.hi - c.lo) / c.step))
    return [c.lo + i * c.step for i in range(n + 1)]


def check_view(view: widgets.View) -> None:
    """Defaults are JSON (as the page prints them), render gives text + figure, the state is JSON."""
    defaults = view.defaults()
    json.dumps(defaults)
    for name, c in view.controls.items():
        if c.options is not None:
            assert c.value in c.options, name
            json.dumps(list(c.options))
        else:
            assert c.lo <= c.value <= c.hi, name
    rendered = view(**defaults)
    assert rendered.text and "\n" not in rendered.text
    assert rendered.figure is not None and rendered.figure.axes[0].get_title()
    state = json.loads(widgets.view_state(view.name, defaults, rendered))
    assert state == {"view": view.name, "values": defaults, "text": rendered.text}


def test_show_is_a_no_op_without_a_kernel(tiny):
    view = views.gap_dropout_view(gap_probe(tiny, PROMPT, "!", [0, 2], top_k=2))
    assert widgets.show(view) is None


def test_gap_dropout_view_reports_the_probe_rows(tiny):
    frame = gap_probe(tiny, PROMPT, "!", [0, 2, 7], top_k=3)
    view = views.gap_dropout_view(frame)
    check_view(view)
    assert list(view.controls) == ["gap", "strategy", "layer"]
    assert view.controls["gap"].options == [0, 2, 7] and view.defaults()["gap"] == 2
    for gap in first_control_values(view):
        for strategy in ("default_no_cache", "additive_4d"):
            row = frame[(frame["strategy"] == strategy) & (frame["gap"] == gap)].iloc[0]
            text = view(gap=gap, strategy=strategy, layer=1).text
            assert f"prompt mass {row.prompt_mass:.4f}" in text
            assert f"(layer 1: {float(row.layer_mass[1]):.4f})" in text
            assert f"top {row.top1!r} {row.p1:.4f}" in text
    assert "prompt mass 0.0000" in view(gap=7, strategy="default_no_cache", layer=0).text
    with pytest.raises(ValueError, match="gap"):
        view(gap=3)
    with pytest.raises(ValueError, match="layer"):
        view(layer=99)


def test_decimal_position_view_compares_neighbours(tiny):
    t = tiny.encode(PROMPT).shape[1]
    sweep = RetroactivePositionGenerator(tiny).sweep(PROMPT, positions.grid(t - 1, t + 1, 0.25))
    view = views.decimal_position_view(sweep)
    check_view(view)
    assert view.defaults()["position"] == sweep.natural + 0.5
    div = metrics.neighbour_divergence(sweep).set_index("position")
    for position in first_control_values(view):
        text = view(position=position, top_k=4).text
        lo, hi = math.floor(position), math.ceil(position)
        assert f"TV to {lo:g} = {div.loc[position, 'tv_floor']:.4f}" in text
        assert f"TV to {hi:g} = {div.loc[position, 'tv_ceil']:.4f}" in text
        assert f"{div.loc[position, 'p1']:.4f}" in text
        assert len(view(position=position, top_k=4).figure.axes[0].get_xticklabels()) == 4
    with pytest.raises(ValueError, match="not in the sweep"):
        view(position=t + 0.3)


def test_retroactive_view_follows_one_token(tiny):
    res = RetroactivePositionGenerator(tiny).explore(PROMPT, gaps=list(range(0, 21, 2)), token="!")
    table = tables.retro_heat_table(tiny, res, 3)
    view = views.retroactive_view(table)
    check_view(view)
    c = view.controls["max_gap"]
    assert (c.lo, c.hi, c.step, c.value) == (0, 20, 2, 20)
    token = table.index[1]
    tid = table.attrs["token_ids"][1]
    for max_gap in first_control_values(view):
        text = view(max_gap=max_gap, token=token).text
        cols = [g for g in table.columns if g <= max_gap]
        probs = res.probs[: len(cols), tid].double()
        assert f"p at gap 0 = {float(probs[0]):.4f}" in text
        assert f"highest {float(probs.max()):.4f}" in text
        leads = int((res.probs[: len(cols)].argmax(-1) == tid).sum())
        assert f"top prediction at {leads} of {len(cols)} gaps" in text
    with pytest.raises(ValueError, match="not tracked"):
        view(token="'nope'")


def test_parallel_attention_view(tiny):
    pairs = experiments.parallel_pairs(tiny, "ab", [0.02, 0.05], max_steps=5, max_set_size=3)
    view = views.parallel_attention_view(pairs)
    check_view(view)
    assert list(view.controls) == ["threshold", "step", "layer", "head", "mode"]
    for threshold in first_control_values(view):
        pair = pairs[threshold]
        spans = metrics.set_spans(pair.isolated)
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


def test_compressed_view_cuts_paths(tiny):
    runs = experiments.compressed_runs(
        tiny, PROMPT, [0, 3, 9], threshold=0.01, max_candidates=4, path_length=5
    )
    view = views.compressed_view(runs)
    check_view(view)
    assert view.controls["gap"].options == [0, 3, 9] and view.defaults()["path_length"] == 5
    for gap in first_control_values(view):
        best = runs[gap].paths[0]
        text = view(gap=gap, threshold=0.01, path_length=2).text
        assert f"{best.candidate.token!r} {best.candidate.prob:.4f} -> {''.join(best.tokens[:3])!r}" in text
        n = sum(p.candidate.prob >= 0.01 for p in runs[gap].paths)
        assert f"{n} paths" in text
    assert "1 paths" in view(gap=3, threshold=0.99, path_length=5).text  # at least the most probable
    with pytest.raises(ValueError, match="gap"):
        view(gap=4)


def test_pruning_view_shows_each_run(tiny):
    runs = experiments.pruning_runs(tiny, PROMPT, [0.3, 0.45], window=2, threshold=0.04, max_steps=8)
    view = views.pruning_view(runs)
    check_view(view)
    for th in (0.3, 0.45):
        for run in ("mask-only", "recompute"):
            result = runs[th][0 if run == "mask-only" else 1]
            rendered = view(threshold=th, run=run)
            assert repr(result.pruned_text) in rendered.text and rendered.figure is not None
    with pytest.raises(ValueError, match="was not run"):
        view(threshold=0.9, run="mask-only")
    table = tables.pruning_table(runs[0.45][0])
    decided = [s for s in runs[0.45][0].steps if s.attention_scores]
    assert list(table["attention shares"])[: len(decided)] == [
        " / ".join(f"{x:.4f}" for x in s.attention_scores) for s in decided
    ]
    drift = tables.pruning_drift(runs)
    assert list(drift["members pruned"]) == [
        sum(sum(s.pruned) for s in runs[th][0].steps if s.pruned) for th in (0.3, 0.45)
    ]
