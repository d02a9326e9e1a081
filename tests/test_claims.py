"""The claims registry and the statistics its rules read: every registered rule can return each verdict it
names (confirmed and refuted among them) on synthetic evidence, with no exemption; a rule's fingerprint
follows its words, margins and decisions; a study's recorded rules decide whether a verdict is registered
or post hoc; and each interval or test against an independent reference (scipy, published examples)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from tempo_lab import stats
from tempo_lab.claims import (
    CHANGED,
    REGISTERED,
    UNITS,
    WITH_DATA,
    Claim,
    Evidence,
    Rule,
    claims_table,
    fingerprints,
    standing,
)
from tempo_lab.long_context.rules import RULES as LC_RULES
from tempo_lab.phenomena import ALL_CLAIMS

NAN = float("nan")


def every_rule():
    for claim in ALL_CLAIMS:
        for i, rule in enumerate(([claim.rule] if claim.rule else []) + list(claim.post_hoc)):
            yield pytest.param(claim, rule, id=f"{claim.key}{'*' * (i > 0 or claim.rule is None)}")


def test_claim_keys_are_unique_and_every_claim_has_a_source():
    keys = [c.key for c in ALL_CLAIMS]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    for claim in ALL_CLAIMS:
        assert claim.source and claim.original and claim.sources and claim.text, claim.key


@pytest.mark.parametrize("key", sorted(LC_RULES))
def test_the_long_context_rules_were_registered_as_written(key):
    """LC1-LC7 as the claims file states them (2026-12-07), before any data: each returns each verdict it
    names, and the margins are delta = 0.2 and epsilon = 0.1."""
    rule = LC_RULES[key]
    assert {"confirmed", "refuted", "undecided"} <= set(rule.verdicts)
    for values, verdict in rule.cases:
        assert rule(values) == verdict, (key, values)
    assert set(rule.margins.values()) <= {0.2, 0.1}


@pytest.mark.parametrize(("claim", "rule"), list(every_rule()))
def test_every_rule_returns_each_verdict_it_names_on_its_cases(claim, rule):
    """No exemption: every rule in the package confirms and refutes some evidence, and returns each verdict
    it names on the case that shows it."""
    assert {"confirmed", "refuted"} <= set(rule.verdicts), claim.key
    for values, verdict in rule.cases:
        assert rule(values) == verdict, (claim.key, values)
    assert rule.unit in UNITS and rule.statistic and rule.text and rule.written


def test_only_descriptive_claims_go_without_a_rule():
    descriptive = [c.key for c in ALL_CLAIMS if c.descriptive]
    assert descriptive == ["05.tradeoff"]  # the gap trade-off of 05 describes; every other claim is decided


def _rule(**change):
    base = {"statistic": "mean of x", "unit": "prompt", "margins": {"m": 0.5}, "text": "lo > 0.5",
            "decide": lambda v: "confirmed" if v["lo"] > 0.5 else "refuted",
            "cases": (({"lo": 0.9}, "confirmed"), ({"lo": 0.1}, "refuted"))}  # fmt: skip
    return Rule(**{**base, **change})


def test_a_rule_that_cannot_refute_is_refused():
    with pytest.raises(ValueError, match="must be able to confirm and to refute"):
        _rule(decide=lambda v: "refined", cases=(({}, "refined"),))
    with pytest.raises(ValueError, match="must be able to confirm and to refute"):
        _rule(cases=(({"lo": 0.9}, "confirmed"),))
    with pytest.raises(ValueError, match="unit must be one of"):
        _rule(unit="token")
    with pytest.raises(ValueError, match="not among"):
        _rule(cases=(({"lo": 0.9}, "confirmed"), ({"lo": 0.1}, "refuted"), ({"lo": 0.5}, "maybe")))


def test_a_verdict_the_rule_does_not_name_is_an_error():
    rule = _rule(
        decide=lambda v: "undecided" if math.isnan(v["lo"]) else "confirmed" if v["lo"] > 0.5 else "refuted"
    )
    with pytest.raises(ValueError, match="not one of the verdicts it names"):
        rule({"lo": NAN})


def test_the_fingerprint_follows_words_margins_and_decisions():
    base = _rule().fingerprint()
    assert _rule().fingerprint() == base
    assert _rule(margins={"m": 0.4}).fingerprint() != base
    assert _rule(text="lo > 0.4").fingerprint() != base
    assert _rule(unit="prompt kind").fingerprint() != base
    # the same words with another decision on a case: the code changed
    flipped = _rule(
        decide=lambda v: "confirmed" if v["lo"] > 0.05 else "refuted",
        cases=(({"lo": 0.9}, "confirmed"), ({"lo": 0.01}, "refuted"), ({"lo": 0.1}, "refuted")),
    )
    same_cases = _rule(cases=flipped.cases)
    assert flipped.fingerprint() != same_cases.fingerprint()


def _claim(key, rule, post_hoc=(), p=NAN, lo=0.9):
    def measure(study, single):
        return Evidence({"lo": lo, "p": p}, "one", "many")

    return Claim(key, "x", f"claim {key}", "a paper", "1.0", ("study:x",), measure, rule, post_hoc)


def test_standing_reads_the_rules_the_study_recorded():
    rule = _rule()
    claim = _claim("k", rule)
    assert standing(claim, {"rules": fingerprints([claim])}) == REGISTERED
    assert standing(claim, {"rules": {"k": "0" * 16}}) == CHANGED
    assert standing(claim, {}) == WITH_DATA
    assert fingerprints([_claim("k", rule, post_hoc=(rule,))]) == {
        "k": rule.fingerprint(),
        "k*": rule.fingerprint(),
    }


def test_the_table_counts_decisions_and_adjusts_p_values_by_holm():
    rule = _rule(p="p")
    claims = [
        _claim("a", rule, p=0.01),
        _claim("b", rule, post_hoc=(_rule(),), p=0.04, lo=0.2),
        _claim("c", None, p=0.03),
        _claim("d", None, post_hoc=(_rule(),), lo=0.7),  # post-hoc rules alone (LC4.positions)
    ]
    study = SimpleNamespace(manifest={"rules": {"a": rule.fingerprint(), "b": "0" * 16}}, decided_by="tiny")
    table = claims_table(study, {}, claims)
    assert table.attrs["decisions"] == 4
    assert table.verdict.tolist() == ["confirmed", "refuted", "", ""]
    assert table["rule stands"].tolist() == [REGISTERED, CHANGED, "", ""]
    assert table["post hoc"].iloc[1].startswith("refuted (")
    assert table["post hoc"].iloc[3].startswith("confirmed (")
    np.testing.assert_allclose(table["p (Holm)"].iloc[:2], [0.02, 0.04])
    assert math.isnan(table["p"].iloc[2]) and table.rule.iloc[2].startswith("descriptive")
    assert table.rule.iloc[3] == "none registered: post-hoc rules only"
    assert [c.descriptive for c in claims] == [False, False, True, False]
    assert claims[1].deciding_rule is rule and claims[2].deciding_rule is None
    assert claims[3].deciding_rule is claims[3].post_hoc[0]


# --- the statistics, against independent references ---


def test_wilson_equals_scipy():
    for k, n in [(0, 20), (7, 20), (20, 20), (1, 3), (481, 500)]:
        want = sps.binomtest(k, n).proportion_ci(0.95, method="wilson")
        _, lo, hi = stats.wilson(k, n)
        assert lo == pytest.approx(want.low, abs=1e-12) and hi == pytest.approx(want.high, abs=1e-12)


def test_newcombe_equals_the_published_example():
    # Newcombe (1998), Table II, example (a): 56/70 against 48/80, method 10: 0.0524 to 0.3339
    d, lo, hi = stats.newcombe(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def test_tost_equals_two_one_sided_scipy_t_tests():
    x = np.random.default_rng(1).normal(0.02, 0.1, 40)
    got = stats.tost(x, 0.1)
    upper = sps.ttest_1samp(x, 0.1, alternative="less").pvalue
    lower = sps.ttest_1samp(x, -0.1, alternative="greater").pvalue
    assert got["p"] == pytest.approx(max(upper, lower), rel=1e-10)
    ci90 = sps.t.interval(0.90, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert (got["lo"], got["hi"]) == pytest.approx(ci90, rel=1e-10)


def test_mcnemar_equals_the_exact_binomial_test_of_the_discordant_pairs():
    a = [1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1]
    b = [1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1]
    got = stats.mcnemar(np.array(a, bool), np.array(b, bool))
    assert (got["b01"], got["b10"]) == (1, 5)
    assert got["p"] == pytest.approx(sps.binomtest(1, 6, 0.5).pvalue, rel=1e-12)


def test_holm_equals_the_step_down_by_hand():
    got = stats.holm([0.01, 0.04, NAN, 0.03, 0.005])
    # sorted: 0.005 (x4), 0.01 (x3), 0.03 (x2), 0.04 (x1), running maximum
    assert got[0] == pytest.approx(0.03) and got[4] == pytest.approx(0.02)
    assert got[3] == pytest.approx(0.06) and got[1] == pytest.approx(0.06) and math.isnan(got[2])


def test_t_interval_equals_scipy():
    x = [0.3, 0.5, 0.1, 0.7, 0.4, 0.45, 0.2]
    mean, lo, hi = stats.t_interval(x)
    assert (lo, hi) == pytest.approx(sps.t.interval(0.95, 6, loc=np.mean(x), scale=sps.sem(x)), rel=1e-12)


def test_resampling_units_of_one_value_each_equal_the_plain_bootstrap():
    x = np.random.default_rng(2).normal(size=50)
    plain = stats.bootstrap_ci(x)
    assert stats.block_bootstrap_ci(x, 1) == pytest.approx(plain, rel=1e-12)
    assert stats.cluster_bootstrap_ci(x, range(50)) == pytest.approx(plain, rel=1e-12)
    assert stats.paired_bootstrap_ci(x + 1, np.ones(50), n_boot=2000) == pytest.approx(plain, rel=1e-12)


def test_clusters_that_move_together_widen_the_interval():
    rng = np.random.default_rng(3)
    kinds = np.repeat(np.arange(9), 30)
    x = rng.normal(size=9)[kinds] + 0.1 * rng.normal(size=kinds.size)
    _, lo_c, hi_c = stats.cluster_bootstrap_ci(x, kinds)
    _, lo, hi = stats.bootstrap_ci(x)
    assert hi_c - lo_c > 3 * (hi - lo)
    # a ratio of means: the weights give sum(a) / sum(b)
    a, b = rng.uniform(size=20), rng.uniform(0.5, 1, size=20)
    assert stats.cluster_bootstrap_ci(a / b, range(20), weights=b)[0] == pytest.approx(a.sum() / b.sum())
