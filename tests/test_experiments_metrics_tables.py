"""tempo_lab.analysis and tempo_lab.timing on the tiny random Llama, checked against independent paths."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from tempo_lab import experiments, metrics, notebook, probe, reference, tables, timing
from tempo_lab import positions as pos
from tempo_lab.generators import CompressedThoughtGenerator, RetroactivePositionGenerator
from tempo_lab.generators.retroactive import TOP_KEPT
from tempo_lab.probe import gap_probe

PROMPT = "The cat sat"


def full_next_probs(lm, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Next-token probabilities of a whole sequence by one uncached pass with an explicit causal mask."""
    return torch.softmax(reference.next_logits(lm, ids, positions), -1)


# --- key numbers ---


def test_key_numbers_prints_json_with_rounded_native_values(capsys):
    notebook.print_key_numbers(
        {"a": np.float32(0.123456), "b": [np.int64(3), 1.0e-7], "c": {"x": -0.00001}, "d": "t"}
    )
    out = json.loads(capsys.readouterr().out)
    assert out == {"a": 0.1235, "b": [3, 0.0], "c": {"x": 0.0}, "d": "t"}
    assert str(out["c"]["x"]) == "0.0"  # no "-0.0"


# --- the fractional-position sweep ---


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
        torch.testing.assert_close(sweep.probs[i], expected, atol=1e-5, rtol=1e-4)
    # at the natural position the sweep equals the ordinary forward pass
    torch.testing.assert_close(
        sweep.probs[sweep.index(t - 1)], full_next_probs(tiny, ids, pos.contiguous(t)), atol=1e-5, rtol=1e-4
    )


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
    div = metrics.neighbour_divergence(sweep)
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

    curves = tables.top_token_curves(sweep, 3)
    nat_ids = probs[sweep.index(sweep.natural)].topk(3).indices.tolist()
    assert list(curves.columns) == [repr(tiny.token_str(i)) for i in nat_ids]
    np.testing.assert_allclose(curves.to_numpy(), probs[:, nat_ids].numpy())

    table = tables.compare_positions(sweep, [sweep.natural, sweep.natural + 0.5], 3)
    assert table.loc["max |diff| vs natural", f"{sweep.natural:g}"] == 0.0
    expected = float(
        (probs[sweep.index(sweep.natural + 0.5)] - probs[sweep.index(sweep.natural)]).abs().max()
    )
    assert table.loc["max |diff| vs natural", f"{sweep.natural + 0.5:g}"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="k must"):
        sweep.top_ids(TOP_KEPT + 1)


# --- notebook 01 helpers ---


def test_packed_split_evidence_shows_the_token_alone_after_a_gap(tiny):
    at_zero = probe.packed_split_evidence(tiny, PROMPT, "!", 0)
    assert at_zero["segments"] is None
    assert at_zero["logit_diff_vs_explicit_mask"] == 0.0  # no gap: no detection, same as the explicit mask
    gapped = probe.packed_split_evidence(tiny, PROMPT, "!", 3)
    t = len(tiny.encode(PROMPT)[0])
    assert gapped["segments"] == [0] * t + [1]
    assert gapped["positions"][-1] == t + 3
    assert gapped["logit_diff_vs_alone"] < 1e-4  # the token behaves as if the prompt did not exist
    assert gapped["logit_diff_vs_explicit_mask"] > 1e-2


def test_top_token_table_formats_the_probe(tiny):
    frame = gap_probe(tiny, PROMPT, "!", [0, 2], top_k=3)
    table = tables.top_token_table(frame)
    assert list(table.index) == [0, 2]
    row = frame[(frame["strategy"] == "additive_4d") & (frame["gap"] == 2)].iloc[0]
    assert table.loc[2, "additive_4d"] == f"{row.top1!r} {row.p1:.4f}"


# --- notebook 03 helpers ---


def test_retro_heat_table_tracks_top_tokens_with_their_probabilities(tiny):
    res = RetroactivePositionGenerator(tiny).explore(PROMPT, gaps=list(range(0, 40, 4)), token="!")
    table = tables.retro_heat_table(tiny, res, 3)
    assert list(table.columns) == list(range(0, 40, 4))
    top1 = [tiny.token_str(int(i)) for i in res.probs.argmax(-1)]
    assert table.attrs["top1"] == top1
    assert table.index.is_unique
    assert set(table.attrs["token_ids"]) >= set(res.probs.argmax(-1).tolist())
    for label, tid in zip(table.index, table.attrs["token_ids"], strict=True):
        assert label.startswith(repr(tiny.token_str(tid)))
        np.testing.assert_allclose(table.loc[label].to_numpy(), res.probs[:, tid].double().numpy())
    changes = metrics.top1_changes(table)
    assert changes[0] == (0, top1[0])
    assert all(top1[list(table.columns).index(g)] == tok for g, tok in changes)
    assert len(changes) == 1 + sum(a != b for a, b in zip(top1, top1[1:], strict=False))


# --- notebook 04 helpers ---


@pytest.fixture(scope="module")
def pairs(tiny):
    return experiments.parallel_pairs(tiny, "ab", [0.02, 0.05], max_steps=6, max_set_size=3)


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
        spans = metrics.set_spans(pair.isolated)
        assert spans == [(k, s.slots[0], s.slots[-1] + 1) for k, s in enumerate(pair.isolated.steps) if s.fed]
        for _, a, b in spans:
            for q in range(a, b):
                for k in range(a, b):
                    if k != q:
                        assert float(iso[q, k]) == 0.0  # isolated members never see each other
                    if k < q:
                        assert float(vis[q, k]) > 0.0  # visible members see earlier members
        table = tables.mode_mass_table(pair)
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
    table = tables.mode_sets_table(pair)
    assert len(table) == max(len(pair.isolated.steps), len(pair.visible.steps))
    for row, a, b in zip(table.to_dict("records"), pair.isolated.steps, pair.visible.steps, strict=False):
        assert row["same set"] == (sorted(a.token_ids) == sorted(b.token_ids))
        assert row["same order"] == (a.token_ids == b.token_ids)
        assert row["isolated"] == "/".join(repr(t) for t in a.tokens)


# --- notebook 05 helpers ---


def test_compressed_runs_share_candidates_and_cut_paths_like_real_runs(tiny):
    runs = experiments.compressed_runs(tiny, PROMPT, [0, 7], threshold=0.01, max_candidates=4, path_length=6)
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

    table = tables.paths_table(runs)
    assert len(table) == 2 * len(runs[0].paths)
    assert set(table["gap"]) == {0, 7}
    assert table.iloc[0]["path"] == repr(runs[0].paths[0].text)

    agree = metrics.path_agreement(runs)
    assert (agree["same@0"] == 1.0).all() and agree["differs from@0"].isna().all()
    assert str(agree["differs from@7"].dtype) == "Int64"
    for k, row in enumerate(agree.to_dict("records")):
        a, b = runs[0].paths[k].token_ids, runs[7].paths[k].token_ids
        n = max(len(a), len(b))
        expected = sum(i < len(a) and i < len(b) and a[i] == b[i] for i in range(n)) / n
        assert row["same@7"] == pytest.approx(expected)


# --- timing baselines compute what the generators compute ---


def test_naive_baselines_equal_the_generators(tiny):
    res = RetroactivePositionGenerator(tiny).explore(PROMPT, gaps=[0, 3, 9], token="!")
    naive = reference.retroactive_naive(tiny, PROMPT, res.token_id, res.gaps)
    torch.testing.assert_close(naive, res.logits, atol=1e-4, rtol=1e-4)

    comp = CompressedThoughtGenerator(tiny).generate(
        PROMPT, gap=5, threshold=0.01, max_candidates=3, path_length=4, progress=False
    )
    seq = reference.compressed_naive(tiny, PROMPT, [c.token_id for c in comp.candidates], 5, 4)
    assert seq == [p.token_ids for p in comp.paths]


def test_side_by_side_calls_each_function_and_reports_medians():
    calls = {"a": 0, "b": 0}

    def count(name):
        def fn():
            calls[name] += 1

        return fn

    seconds = timing.side_by_side({"a": count("a"), "b": count("b")}, repeats=3).medians
    assert calls == {"a": 4, "b": 4} and set(seconds) == {"a", "b"} and all(s >= 0 for s in seconds.values())
    timing.side_by_side({"a": count("a")}, repeats=2, warm_up=False)
    assert calls["a"] == 6
    with pytest.raises(ValueError, match="repeats"):
        timing.side_by_side({"a": count("a")}, repeats=0)
    table = timing.timing_table({"fast": 1.0, "slow": 4.0}, {"fast": 2, "slow": 8}, "slow")
    assert table.loc["fast", "slow / this"] == 4.0 and table.loc["slow", "forward passes"] == 8


def test_mode_texts_table(pairs):
    table = tables.mode_texts_table(pairs)
    assert list(table["threshold"]) == list(pairs)
    for row, pair in zip(table.to_dict("records"), pairs.values(), strict=True):
        assert row["isolated"] == pair.isolated.text and row["visible"] == pair.visible.text
        assert row["identical"] == (pair.isolated.text == pair.visible.text)
        sets = tables.mode_sets_table(pair)
        differing = sets[~sets["same set"]]["step"]
        if len(differing):
            assert row["first differing step"] == differing.iloc[0]
        else:
            assert row["first differing step"] is pd.NA
