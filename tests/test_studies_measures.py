"""Batched study measurements against the single-prompt generators and probe, prompt by prompt (1e-4)."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import load_model, metrics, probe
from tempo_lab.generators import (
    CompressedThoughtGenerator,
    ParallelTokenGenerator,
    RetroactivePositionGenerator,
)
from tempo_lab.generators.lockstep import Lockstep
from tempo_lab.studies import measures

PROMPTS = ["Once upon a time", "The cat", "A much longer prompt about nothing in particular", "Hi there"]
COND = measures.Conditions(mode_threshold=0.012, tempo_thresholds=(0.008, 0.012), mode_steps=5, tempo_steps=4)


@pytest.fixture(scope="module")
def lm():
    return load_model("tiny-random")


@pytest.fixture(scope="module")
def batch(lm):
    return [(i, lm.encode(p)) for i, p in enumerate(PROMPTS)]


def test_prompts_are_ragged(batch):
    assert len({ids.shape[1] for _, ids in batch}) == len(batch)


def test_lockstep_prefill_equals_each_prompt_alone(lm, batch):
    retro = RetroactivePositionGenerator(lm)
    logits = Lockstep(retro.core).prefill([ids for _, ids in batch])
    for (_, ids), got in zip(batch, logits, strict=True):
        torch.testing.assert_close(got, retro.core.prefill(ids).logits[0], atol=1e-4, rtol=1e-4)


def test_gap_dropout_equals_the_probe(lm, batch):
    rows = measures.gap_dropout(lm, batch + [(9, lm.encode("Then"))], COND)
    for i, prompt in enumerate(PROMPTS):
        ref = probe.gap_probe(lm, prompt, gaps=COND.dropout_gaps, strategies=COND.dropout_strategies)
        mine = [r for r in rows if r["prompt"] == i]
        assert len(mine) == len(ref)
        for r in mine:
            want = ref[(ref.strategy == r["strategy"]) & (ref.gap == r["gap"])].iloc[0]
            first = ref[(ref.strategy == r["strategy"]) & (ref.gap == 0)].iloc[0]
            assert r["prompt_mass"] == pytest.approx(want.prompt_mass, abs=1e-4)
            assert r["top1_changed"] == (want.top_ids[0] != first.top_ids[0])
    assert {r["prompt_mass"] for r in rows if r["strategy"] == "default_no_cache" and r["gap"] > 0} == {0.0}


def test_fractional_and_retroactive_equal_place(lm, batch):
    retro = RetroactivePositionGenerator(lm)
    frac = {r["prompt"]: r for r in measures.fractional(lm, batch, COND)}
    back = measures.retroactive(lm, batch, COND)
    for i, ids in batch:
        t = ids.shape[1]
        low, mid, high = torch.softmax(retro.place(retro.core.prefill(ids[:, :-1]), int(ids[0, -1]),
                                                   [t - 2.0, t - 1.5, t - 1.0]), -1)  # fmt: skip
        tv = [float(metrics.divergences(a[None], b)[0][0]) for a, b in ((mid, low), (mid, high), (low, high))]
        mine = [frac[i]["tv_low"], frac[i]["tv_high"], frac[i]["tv_neighbours"]]
        assert mine == pytest.approx(tv, abs=1e-4)
        prefix = retro.core.prefill(ids)
        tok = int(prefix.next_logits.argmax())
        probs = torch.softmax(retro.place(prefix, tok, [t + g for g in COND.retro_gaps]), -1)
        mine = [r for r in back if r["prompt"] == i]
        for r, p in zip(mine, probs, strict=True):
            assert r["tv"] == pytest.approx(float(metrics.divergences(p[None], probs[0])[0][0]), abs=1e-4)
            assert r["p1"] == pytest.approx(float(p.max()), abs=1e-4)


def test_modes_and_tempo_equal_the_generator(lm, batch):
    gen = ParallelTokenGenerator(lm)
    rows = measures.modes(lm, batch, COND)
    sizes = measures.tempo(lm, batch, COND)
    for i, ids in batch:
        runs = {}
        for mode in ("isolated", "visible"):
            res = gen.generate(ids, threshold=COND.mode_threshold, max_steps=COND.mode_steps, intraset=mode,
                               capture=True, progress=False)  # fmt: skip
            runs[mode] = res
            row = next(r for r in rows if r["prompt"] == i and r["mode"] == mode)
            assert row["text"] == res.text
            table = metrics.later_mass(res, res.attention_map())
            parallel = table[[res.steps[k].size >= 2 for k in table.step]]
            assert parallel["mass"].mean() == pytest.approx(row["later_mass"], abs=1e-4, nan_ok=True)
        assert row["identical_text"] == (runs["isolated"].text == runs["visible"].text)
        for t in COND.tempo_thresholds:
            res = gen.generate(ids, threshold=t, max_steps=COND.tempo_steps, progress=False)
            row = next(r for r in sizes if r["prompt"] == i and r["threshold"] == t)
            assert row["max_set_size"] == max(res.set_sizes)
            assert row["mean_set_size"] == pytest.approx(sum(res.set_sizes) / len(res.set_sizes))
    assert any(r["parallel_sets"] > 0 for r in rows)


def test_compressed_equals_the_generator(lm, batch):
    gen = CompressedThoughtGenerator(lm)
    rows = measures.compressed(lm, batch, COND)
    opts = {"threshold": COND.compressed_threshold, "max_candidates": COND.compressed_candidates,
            "path_length": COND.path_length, "progress": False}  # fmt: skip
    for i, ids in batch:
        runs = {g: gen.generate(ids, gap=g, **opts) for g in COND.compressed_gaps}
        agree = metrics.path_agreement(runs, reference_gap=0)
        for g, res in runs.items():
            row = next(r for r in rows if r["prompt"] == i and r["gap"] == g)
            assert row["agreement"] == pytest.approx(float(agree[f"same@{g:g}"].mean()))
            rep = [1 - len(set(p.token_ids)) / len(p.token_ids) for p in res.paths]
            assert row["repetition"] == pytest.approx(sum(rep) / len(rep))


def test_conditions_refuse_gap_lists_without_zero():
    with pytest.raises(ValueError, match="retro_gaps must start at 0"):
        measures.Conditions(retro_gaps=(5, 10))
    with pytest.raises(ValueError, match=r"thresholds must be in \(0, 1\], got 1.5"):
        measures.Conditions(tempo_thresholds=(1.5,))
