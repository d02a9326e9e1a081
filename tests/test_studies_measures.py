"""Batched study measurements against the same measurements made one prompt at a time (1e-4)."""

from __future__ import annotations

import math

import pytest
import torch

from tempo_lab import load_model
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.generators.lockstep import Lockstep
from tempo_lab.studies import PHENOMENA, measures, single

PROMPTS = ["Once upon a time", "The cat", "A much longer prompt about nothing in particular", "Hi there",
"Then"]
COND = measures.Conditions(mode_threshold=0.012, tempo_thresholds=(0.008, 0.012), mode_steps=5, tempo_steps=4)
KEYS = ("prompt", "strategy", "mode", "gap", "threshold")


@pytest.fixture(scope="module")
def lm():
    return load_model("tiny-random")


@pytest.fixture(scope="module")
def batch(lm):
    return [(i, lm.encode(p)) for i, p in enumerate(PROMPTS)]


def keyed(rows: list[dict]) -> dict[tuple, dict]:
    return {tuple(r.get(k) for k in KEYS): r for r in rows}


def test_prompts_are_ragged(batch):
    assert len({ids.shape[1] for _, ids in batch}) == len(batch)


def test_lockstep_prefill_equals_each_prompt_alone(lm, batch):
    retro = RetroactivePositionGenerator(lm)
    logits = Lockstep(retro.core).prefill([ids for _, ids in batch])
    for (_, ids), got in zip(batch, logits, strict=True):
        torch.testing.assert_close(got, retro.core.prefill(ids).logits[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("phenomenon", PHENOMENA)
def test_batched_rows_equal_the_single_prompt_rows(lm, batch, phenomenon):
    got = keyed(measures.MEASURES[phenomenon](lm, batch, COND))
    want = keyed(single.looped(lm, phenomenon, batch, COND))
    assert got.keys() == want.keys()
    for key, row in want.items():
        assert got[key].keys() == row.keys()
        for name, value in row.items():
            if isinstance(value, float) and not math.isnan(value):
                assert got[key][name] == pytest.approx(value, abs=1e-4), (key, name)
            elif isinstance(value, float):
                assert math.isnan(got[key][name]), (key, name)
            else:
                assert got[key][name] == value, (key, name)


def test_the_tiny_setting_exercises_parallel_sets_and_dropout(lm, batch):
    modes = measures.modes(lm, batch, COND)
    assert any(r["parallel_sets"] > 0 for r in modes) and not all(r["identical_text"] for r in modes)
    drop = measures.gap_dropout(lm, batch, COND)
    assert {r["prompt_mass"] for r in drop if r["strategy"] == "default_no_cache" and r["gap"] > 0} == {0.0}
    assert all(r["prompt_mass"] > 0.1 for r in drop if r["strategy"] == "additive_4d")


def test_conditions_refuse_gap_lists_without_zero():
    with pytest.raises(ValueError, match="retro_gaps must start at 0"):
        measures.Conditions(retro_gaps=(5, 10))
    with pytest.raises(ValueError, match=r"thresholds must be in \(0, 1\], got 1.5"):
        measures.Conditions(tempo_thresholds=(1.5,))


@pytest.mark.parametrize("phenomenon", PHENOMENA)
def test_a_sliding_window_model_runs_one_prompt_at_a_time_and_still_matches(phenomenon):
    from tempo_lab.tiny import tiny_random

    lm = tiny_random("gemma2", sliding_window=3)
    batch = [(0, lm.encode("Once upon a time"))]
    got = keyed(measures.MEASURES[phenomenon](lm, batch, COND))
    want = keyed(single.looped(lm, phenomenon, batch, COND))
    assert got.keys() == want.keys()
    for key, row in want.items():
        for name, value in row.items():
            if isinstance(value, float) and not math.isnan(value):
                assert got[key][name] == pytest.approx(value, abs=1e-4), (key, name)
            elif not isinstance(value, float):
                assert got[key][name] == value, (key, name)
