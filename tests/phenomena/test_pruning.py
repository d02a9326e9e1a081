"""The pruning and hidden-sets slices (notebook 07) on the tiny model: the replay view and tables against the
runs' own records, and what later tokens see of hidden sets."""

from __future__ import annotations

import math

import pytest

from tempo_lab.phenomena import hidden_sets, pruning
from tempo_lab.phenomena.hidden_sets import display as hidden_sets_display
from tempo_lab.phenomena.pruning import display as pruning_display
from tempo_lab.summaries import later_mass
from tests.helpers import check_view

PROMPT = "The cat sat"


def test_pruning_view_shows_each_run(tiny):
    runs = pruning.pruning_runs(tiny, PROMPT, [0.3, 0.45], window=2, threshold=0.04, max_steps=8)
    view = pruning_display.view(runs)
    check_view(view)
    for th in (0.3, 0.45):
        for run in ("mask-only", "recompute"):
            result = runs[th].masked if run == "mask-only" else runs[th].recompute
            rendered = view(threshold=th, run=run)
            assert repr(result.pruned_text) in rendered.text and rendered.figure is not None
    with pytest.raises(ValueError, match="was not run"):
        view(threshold=0.9, run="mask-only")
    table = pruning.pruning_table(runs[0.45].masked)
    decided = [s for s in runs[0.45].masked.steps if s.attention_scores]
    assert list(table["attention shares"])[: len(decided)] == [
        " / ".join(f"{x:.4f}" for x in s.attention_scores) for s in decided
    ]
    drift = pruning.pruning_drift(runs)
    assert list(drift["members pruned"]) == [
        sum(sum(s.pruned) for s in runs[th].masked.steps if s.pruned) for th in (0.3, 0.45)
    ]


def test_hidden_sets_table_and_maps(tiny):
    runs = hidden_sets.hidden_runs(tiny, PROMPT, threshold=0.04, max_steps=6)
    assert list(runs) == ["all", "first", "none"]
    table = hidden_sets.hidden_table(runs)
    for row, (later, run) in zip(table.to_dict("records"), runs.items(), strict=True):
        assert row["later"] == later and row["text"] == run.free.text
        assert all(a.token_ids == b.token_ids for a, b in zip(run.replay.steps, runs["all"].replay.steps,
                                                              strict=True))  # the same sets replayed
        mass = later_mass(run.replay, run.replay.attention_map())
        sizes = [run.replay.steps[k].size for k in mass["step"]]
        parallel = [m for m, size in zip(mass["mass"], sizes, strict=True) if size >= 2]
        want = sum(parallel) / len(parallel) if parallel else None
        got = row["later attention on parallel sets"]
        assert (got is None and want is None) or got == pytest.approx(want)
    none = table.set_index("later").loc["none", "later attention on parallel sets"]
    assert none is None or math.isclose(none, 0.0, abs_tol=1e-7)  # no member is seen by later tokens
    fig = hidden_sets_display.hidden_maps({k: r.replay for k, r in runs.items()},
                                  [tiny.token_str(i) for i in runs["all"].replay.input_ids[0].tolist()], "t")
    assert [a.get_title() for a in fig.axes[:3]] == ["later = 'all'", "later = 'first'", "later = 'none'"]
