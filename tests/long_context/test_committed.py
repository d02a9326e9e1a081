"""The committed long-context study (results/10_long_context), checked against a recomputation: the first
sample of the plain model's real 4k cell, and the first sample of each gap version at 16k where the folder
holds one, answered again by the package must give the stored answer, score and log-probability."""

from __future__ import annotations

from pathlib import Path

import pytest

from tempo_lab.long_context.study import load_study_model, read_long_context

pytestmark = pytest.mark.bundled
pytest.importorskip("lm_eval")
FOLDER = Path(__file__).resolve().parents[2] / "results" / "10_long_context"
MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def study():
    return read_long_context(FOLDER, allow_partial=True)


@pytest.fixture(scope="module")
def lm():
    return load_study_model(MODEL)


@pytest.mark.parametrize(("version", "length"), [("real", 4096), ("gap", 16384), ("distance", 16384)])
def test_a_committed_answer_is_a_recomputation(study, lm, version, length):
    from tempo_lab.extension.methods import Method
    from tempo_lab.long_context.passkey import Tokens, answer
    from tempo_lab.long_context.ruler import ruler_samples

    p = study.passkey
    rows = p[(p.model == MODEL) & (p.version == version) & (p.method == "plain") & (p.length == length)]
    if rows.empty:
        pytest.skip(f"the committed study holds no {version} {length} cell yet")
    row = rows.sort_values("sample").iloc[0]
    source = length if version == "real" else study.spec.gap_source
    (sample,) = [s for s in ruler_samples(lm, source, int(row["sample"]) + 1) if s.index == row["sample"]]
    tokens = Tokens.of(lm, sample)
    laid = tokens.version(version, length)
    with Method.for_length(lm, "plain", length).applied(lm):
        found = answer(lm, laid, tokens)
    assert (found.text, found.score) == (row.answer, row.score)
    assert found.logprob == pytest.approx(row.logprob, abs=2e-3)  # another CPU's float32 rounding
    assert laid.distance == row.distance and int(laid.ids.shape[1]) == row.tokens
