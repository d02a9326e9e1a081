"""Two models' studies compared claim by claim: verdicts as each study decides them alone, the paired test of
each headline against scipy on numbers read from the raw tables by hand, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tempo_lab import load_model, phenomena
from tempo_lab.studies import run_study
from tempo_lab.studies.compare import compare_claims, headlines
from tempo_lab.studies.display import compare_figure as figure
from tempo_lab.tiny import tiny_random

N = 12


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """The same 12 prompts on two tiny families (Llama and Gemma 2, other seeds, so their numbers differ)."""
    tmp = tmp_path_factory.mktemp("compare")
    llama = load_model("tiny-random")
    gemma = tiny_random("gemma2", seed=3)
    a = run_study(llama, n=N, results=tmp / "llama", batch_size=4, progress=False)
    b = run_study(gemma, n=N, results=tmp / "gemma2", batch_size=4, progress=False)
    return a, b


def test_each_side_is_the_claims_table_of_its_own_study(studies):
    a, b = studies
    table = compare_claims(a, b, SINGLE, names=("llama", "gemma2"))
    alone_a, alone_b = phenomena.claims_table(a, SINGLE), phenomena.claims_table(b, SINGLE)
    assert table.claim.tolist() == alone_a.claim.tolist() == alone_b.claim.tolist()
    assert table["llama: verdict"].tolist() == alone_a.verdict.tolist()
    assert table["gemma2: at scale"].tolist() == alone_b["at scale"].tolist()
    assert table["verdicts agree"].tolist() == (alone_a.verdict == alone_b.verdict).tolist()
    both = f"tiny-random, float64, {N} prompts; tiny-gemma2, float64, {N} prompts"
    assert set(table["decided by"]) == {both}


def test_the_paired_test_is_scipys_wilcoxon_on_the_raw_rows(studies):
    a, b = studies
    table = compare_claims(a, b, SINGLE, names=("llama", "gemma2")).set_index("claim")
    row = table.loc["re-placing a token further away changes what follows it"]
    ra, rb = a.table("retroactive"), b.table("retroactive")
    far = ra.gap.max()
    x = {r.prompt: r.tv for r in ra[ra.gap == far].itertuples()}
    y = {r.prompt: r.tv for r in rb[rb.gap == far].itertuples()}
    d = np.array([y[p] - x[p] for p in sorted(x) if p in y])
    assert row.n == len(d) == N
    assert row.p == pytest.approx(scipy_stats.wilcoxon(d[d != 0]).pvalue, rel=1e-9)
    assert row.difference.startswith(f"{d.mean():.4f} [")
    assert row.headline == "TV at the largest gap"


def test_headlines_are_one_number_per_prompt_for_every_claim_of_notebook_06(studies):
    a, _ = studies
    claims = [c for c in phenomena.CLAIMS if c.phenomenon in phenomena.DEFAULT_STUDY]
    table = headlines(a, claims)
    assert table.columns.tolist() == [c.text for c in claims]
    assert table.index.tolist() == sorted(table.index) and len(table) == N
    mask = a.table("gap_dropout").query("strategy == 'additive_4d'")
    far = mask[mask.gap == mask.gap.max()].set_index("prompt").prompt_mass
    np.testing.assert_array_equal(table[claims[1].text].to_numpy(), far.sort_index().to_numpy())


def test_studies_of_other_prompts_are_refused_naming_both(studies, tmp_path):
    a, _ = studies
    other = run_study(load_model("tiny-random"), ["ab", "cd", "ef"], results=tmp_path / "other",
                      phenomena=["fractional"], progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="different prompts.*3 in .*other"):
        compare_claims(a, other, SINGLE, phenomena.CLAIMS)


def test_the_figure_shows_both_models_per_claim(studies):
    a, b = studies
    claims = [c for c in phenomena.CLAIMS if c.phenomenon in phenomena.DEFAULT_STUDY]
    fig = figure(a, b, claims, names=("llama", "gemma2"))
    ax = fig.axes[0]
    assert "llama" in ax.get_title() and "gemma2" in ax.get_title() and ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == [c.headline[0] for c in claims]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["llama", "gemma2"]


#: the single-prompt key numbers the claims' sentences quote (the verdicts never read them)
SINGLE = {
    "01": {"max_prompt_mass_after_gap_default_no_cache": 0.0,
           "prompt_mass_additive_4d": {"0": 0.9, "20": 0.8}},
    "02": {"tv_half_step_forward": 0.05},
    "03": {"tv_by_gap": {"6": 0.2, "96": 0.9}},
    "04": {"identical_sets": True, "first_differing_step": -1, "later_mass_relative_change_mean": 0.01,
           "set_sizes": [3, 1]},
    "05": {"mean_agreement_with_first_gap": {"5": 0.5, "20": 0.4}},
}
