"""The compressed-thought slice on the tiny model: runs over gaps cut like real runs, their tables,
agreement and figures, seed 000's combined exploration against the retroactive generator, the replay view and
the live explorer against the generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tempo_lab.generators import CompressedThoughtGenerator, RetroactivePositionGenerator
from tempo_lab.live.session import LiveSession
from tempo_lab.phenomena import compressed
from tempo_lab.phenomena.compressed import display as compressed_display
from tests.helpers import check_figure, check_view, first_control_values

PROMPT = "The cat sat"


def test_compressed_runs_share_candidates_and_cut_paths_like_real_runs(tiny):
    runs = compressed.compressed_runs(tiny, PROMPT, [0, 7], threshold=0.01, max_candidates=4, path_length=6)
    assert list(runs) == [0, 7]
    assert [c.token_id for c in runs[0].candidates] == [c.token_id for c in runs[7].candidates]
    gen = CompressedThoughtGenerator(tiny)
    probs = sorted(c.prob for c in runs[7].candidates)
    higher = (probs[0] + probs[1]) / 2 if len(probs) > 1 else probs[0]
    cut = runs[7].paths_within(higher, 3)
    real = gen.generate(PROMPT, gap=7, threshold=higher, max_candidates=4, path_length=3, progress=False)
    assert [p.token_ids for p in cut] == [p.token_ids for p in real.paths]
    assert [p.positions for p in cut] == [p.positions for p in real.paths]
    np.testing.assert_allclose([p.step_probs for p in cut], [p.step_probs for p in real.paths], atol=1e-5)

    table = compressed.paths_table(runs)
    assert len(table) == 2 * len(runs[0].paths)
    assert set(table["gap"]) == {0, 7}
    assert table.iloc[0]["path"] == repr(runs[0].paths[0].text)

    agree = compressed.path_agreement(runs)
    assert (agree["same@0"] == 1.0).all() and agree["differs from@0"].isna().all()
    assert str(agree["differs from@7"].dtype) == "Int64"
    for k, row in enumerate(agree.to_dict("records")):
        a, b = runs[0].paths[k].token_ids, runs[7].paths[k].token_ids
        n = max(len(a), len(b))
        expected = sum(i < len(a) and i < len(b) and a[i] == b[i] for i in range(n)) / n
        assert row["same@7"] == pytest.approx(expected)


def test_compressed_view_cuts_paths(tiny):
    runs = compressed.compressed_runs(
        tiny, PROMPT, [0, 3, 9], threshold=0.01, max_candidates=4, path_length=5
    )
    view = compressed_display.view(runs)
    check_view(view)
    assert view.controls["gap"].options == [0, 3, 9] and view.defaults()["path_length"] == 5
    for gap in first_control_values(view):
        best = runs[gap].paths[0]
        text = view(gap=gap, threshold=0.01, path_length=2).text
        cut = tiny.tokenizer.decode(best.token_ids[:3])
        assert f"{best.candidate.token!r} {best.candidate.prob:.4f} -> {cut!r}" in text
        n = sum(p.candidate.prob >= 0.01 for p in runs[gap].paths)
        assert f"{n} paths" in text
    assert "1 paths" in view(gap=3, threshold=0.99, path_length=5).text  # at least the most probable
    with pytest.raises(ValueError, match="gap"):
        view(gap=4)


def test_figures(tiny):
    runs = compressed.compressed_runs(tiny, PROMPT, [0, 4], threshold=0.01, max_candidates=3, path_length=4)
    fig = compressed_display.thought_paths_by_gap(runs, PROMPT)
    check_figure(fig, n_axes_with_labels=2)
    n_boxes = sum(len(p.tokens) for p in runs[0].paths)
    assert len(fig.axes[0].patches) == n_boxes


def test_compressed_explorer_equals_the_generator_without_a_new_prefill(tiny):
    session = LiveSession(tiny)
    explorer = compressed_display.explorer(session)
    for gap in (0.0, 3.5, 9.0):
        view = explorer(prompt="Once upon a time", gap=gap, threshold=0.05, path_length=5)
        res = CompressedThoughtGenerator(tiny).generate(
            "Once upon a time", gap=gap, threshold=0.05, path_length=5, progress=False
        )
        assert view.state["paths"] == [p.text for p in res.paths]
        assert view.state["candidates"] == [
            [c.token, pytest.approx(c.prob, abs=1e-6)] for c in res.candidates
        ]
    assert session.prefills == 1


def test_combined_exploration_places_each_candidate_at_every_regap(tiny):
    res, table = compressed.combined_exploration(tiny, PROMPT, 4, [0, 3], threshold=0.01, max_candidates=3,
                                                 path_length=3)  # fmt: skip
    assert len(table) == 2 * len(res.paths)
    retro = RetroactivePositionGenerator(tiny)
    for path, (_, row) in zip([p for p in res.paths for _ in (0, 3)], table.iterrows(), strict=True):
        alone = retro.explore(PROMPT, gaps=[row.regap], token=path.candidate.token_id)
        assert row.p1 == pytest.approx(float(alone.probs[0].max()), abs=1e-5)
        own = torch.softmax(path.logits[1], -1)
        assert row.tv_vs_path == pytest.approx(0.5 * float((alone.probs[0] - own).abs().sum()), abs=1e-5)
