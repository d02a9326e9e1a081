"""Notebook 11's study (:mod:`tempo_lab.caches.study`) on a tiny model: every row equals the function it comes
from called directly (the rolling stream against one unsegmented run, the reference against the recomputed
window at its steps, chunk reuse, sinks and ablations prompt by prompt); an interrupted run resumes from its
saved rolling state and ends with the same tables; a folder of another spec and an incomplete one are
refused, naming what to do."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from tempo_lab.caches import (
    CacheSpec,
    Rolling,
    massive_activations,
    massive_means,
    read_cache_study,
    reuse_chunk,
    rolling_logprobs,
    run_cache_study,
    sink_ablation,
    sink_mass,
)
from tempo_lab.caches import study as study_module
from tempo_lab.loaded import widened
from tempo_lab.prompts import bundled_prompts, encode
from tempo_lab.results import IncompleteResults
from tempo_lab.tiny import tiny_random
from tests.helpers import assert_same

SPEC = CacheSpec(models=("llama",), prompts=5, per_part=2, ablate=2, ratio=3.0, partial=(1, 3), sinks=2,
                 window=10, length=70, segment=25, reference_every=16)  # fmt: skip


def load(name: str):
    return tiny_random(name)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return run_cache_study(tmp_path_factory.mktemp("c11") / "study", SPEC, progress=False, load=load)


def test_the_rolling_rows_are_one_unsegmented_run_and_the_reference_its_recompute(tables):
    lm = load("llama")
    ids = study_module._long_text(lm, SPEC.length)
    variants = list(SPEC.variants.values())
    rolling = tables["rolling"]
    assert len(rolling) == 2 * (SPEC.length - 1)
    want = rolling_logprobs(lm, ids, variants, progress=False)
    steps = sorted(rolling[rolling.reference.notna()].step.unique())
    assert steps == [15, 31, 47, 63]
    reference = rolling_logprobs(lm, ids, variants, recompute=True, steps=steps, progress=False)
    for v, name in enumerate(SPEC.variants):
        rows = rolling[rolling.variant == name].sort_values("step")
        assert_same(torch.tensor(rows.logprob.to_numpy()), want[v].double())
        got_ref = torch.tensor(rows.reference.to_numpy())[steps]
        assert_same(got_ref, reference[v, steps].double())


def test_the_prompt_rows_are_the_functions_called_prompt_by_prompt(tables):
    lm, prompts = load("llama"), bundled_prompts()
    i = 3
    ids, prefix = encode(lm, prompts, i), encode(lm, prompts, 4)
    sinks = tables["sinks"][tables["sinks"].prompt == i]
    mass = sink_mass(lm, ids)
    assert_same(widened(torch.tensor(sinks.mass.to_numpy()).reshape(mass.shape)), mass)
    reuse = reuse_chunk(
        lm, prefix, ids, partial=[("first", 1), ("first", 3), ("deviating", 1), ("deviating", 3)]
    )
    chunks = tables["chunks"][tables["chunks"].prompt == i]
    assert chunks.tv.iloc[0] == pytest.approx(reuse.tv, abs=1e-6)
    assert_same(widened(torch.tensor(chunks.restored.to_numpy())), reuse.restored)
    partial = tables["partial"][tables["partial"].prompt == i]
    assert partial.tv.to_numpy() == pytest.approx(reuse.partial.tv.to_numpy(), abs=1e-6)
    last = tables["chunks"][tables["chunks"].prompt == 4]  # the last prompt is reused behind the first
    assert last.tv.iloc[0] == pytest.approx(
        reuse_chunk(lm, encode(lm, prompts, 0), encode(lm, prompts, 4)).tv
    )
    ablation = tables["ablation"]
    assert sorted(ablation.prompt.unique()) == [0, 1]  # ablate=2: the first part only
    first = ablation[ablation.prompt == 1].set_index("mode").tv
    ids1 = encode(lm, prompts, 1)
    assert first["remove"] == pytest.approx(sink_ablation(lm, ids1, "remove"), abs=1e-6)
    means = massive_means(tables["massive"])  # over every prompt's massive entries at the first token
    assert means and first["zero"] > 0
    found = massive_activations(lm, ids1, SPEC.ratio)
    assert first["mean"] == pytest.approx(sink_ablation(lm, ids1, "mean", found, means=means), abs=1e-6)


def test_an_interrupted_run_resumes_from_its_state_and_ends_the_same(tmp_path, tables, monkeypatch):
    folder = tmp_path / "study"
    real = study_module._rolling_part
    calls: list[int] = []

    def once_then_stop(lm, model, spec, ids, start, cache):
        calls.append(start)
        if start == 25 and len(calls) == 2:
            raise KeyboardInterrupt
        return real(lm, model, spec, ids, start, cache)

    monkeypatch.setattr(study_module, "_rolling_part", once_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_cache_study(folder, SPEC, progress=False, load=load)
    with pytest.raises(IncompleteResults, match=r"rolling.*llama-t00025.*run_cache_study"):
        read_cache_study(folder)
    again = run_cache_study(folder, SPEC, progress=False, load=load)
    assert calls == [0, 25, 25, 50]  # resumed at the segment it stopped in, from the saved cache
    for name, table in tables.items():
        pd.testing.assert_frame_equal(again[name], table, atol=1e-6, rtol=0)


def test_a_folder_of_another_spec_is_refused(tmp_path):
    folder = tmp_path / "study"
    small = CacheSpec(models=("llama",), prompts=2, per_part=2, ablate=0, partial=(1,), sinks=1, window=4,
                      length=12, segment=12, reference_every=8)  # fmt: skip
    run_cache_study(folder, small, progress=False, load=load)
    with pytest.raises(ValueError, match=r"holds results with another spec"):
        run_cache_study(folder, CacheSpec(models=("llama",), prompts=3), progress=False, load=load)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"segment must be an integer >= 1, got 0"):
        CacheSpec(segment=0)
    lm = load("llama")
    with pytest.raises(ValueError, match=r"fewer than length=10000000"):
        study_module._long_text(lm, 10_000_000)
    assert Rolling(2, 10) == SPEC.variants["streaming"]
