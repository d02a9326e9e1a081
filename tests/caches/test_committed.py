"""Notebook 11 reads results/11_caches: its bundled-model rows, recomputed now through the functions called
directly (two prompts' sinks, chunk reuse and partial recompute; the rolling stream before its first eviction
and the recomputed window at one sampled step), equal what the study stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tempo_lab.caches import read_cache_study, reuse_chunk, rolling_logprobs, sink_mass, study_spec
from tempo_lab.caches.study import _long_text
from tempo_lab.prompts import bundled_prompts, encode
from tests.helpers import real_atol

FOLDER = Path(__file__).resolve().parents[2] / "results" / "11_caches"
MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def study():
    tables = read_cache_study(FOLDER)
    return {name: t[t.model == MODEL] for name, t in tables.items()}, study_spec(FOLDER)


@pytest.mark.bundled
@pytest.mark.parametrize("i", [0, 301])
def test_the_committed_prompt_rows_are_a_recomputation(bundled, study, i):
    tables, spec = study
    prompts = bundled_prompts()
    n = spec.prompt_count()
    assert n == len(prompts.prompts) == 302
    ids, prefix = encode(bundled, prompts, i), encode(bundled, prompts, (i + 1) % n)
    stored = tables["sinks"][tables["sinks"].prompt == i].sort_values(["layer", "head"])
    tol = real_atol(bundled, 1.0)  # masses, TVs and restored fractions: probabilities' scale
    np.testing.assert_allclose(stored.mass, sink_mass(bundled, ids).flatten().numpy(), atol=tol)
    asked = [(kind, k) for kind in ("first", "deviating") for k in spec.partial if k <= ids.shape[1] - 1]
    reuse = reuse_chunk(bundled, prefix, ids, partial=asked)
    chunks = tables["chunks"][tables["chunks"].prompt == i].sort_values("layer")
    np.testing.assert_allclose(chunks.value_error, reuse.deviation.value_error,
                               atol=real_atol(bundled, chunks.value_error))
    np.testing.assert_allclose(chunks.restored, reuse.restored.numpy(), atol=tol)
    assert chunks.tv.iloc[0] == pytest.approx(reuse.tv, abs=tol)
    partial = tables["partial"][tables["partial"].prompt == i]
    np.testing.assert_allclose(partial.tv, reuse.partial.tv, atol=tol)


@pytest.mark.bundled
def test_the_committed_rolling_stream_is_a_recomputation(bundled, study):
    tables, spec = study
    ids = _long_text(bundled, spec.length)
    rolling = tables["rolling"]
    variants = list(spec.variants.values())
    first = rolling_logprobs(bundled, ids[:, :65], variants, progress=False)  # before any eviction
    step = spec.reference_every - 1
    reference = rolling_logprobs(bundled, ids[:, : step + 2], variants, recompute=True, steps=[step],
                                 progress=False)  # fmt: skip
    for v, name in enumerate(spec.variants):
        rows = rolling[rolling.variant == name].sort_values("step")
        tol = real_atol(bundled, first[v])
        np.testing.assert_allclose(rows.logprob.iloc[:64], first[v].numpy(), atol=tol)
        assert rows.reference.iloc[step] == pytest.approx(
            float(reference[v, step]), abs=real_atol(bundled, reference[v, step]))
        assert torch.isnan(torch.tensor(rows.reference.iloc[:step].to_numpy())).all()
