"""Notebook 10 (a)'s claims on synthetic tables whose answer is known: each rule returns the verdict the
numbers call for, seed by seed (Student-t over seeds), and a study that did not measure a factor a rule reads
is undecided there, never an error."""

from __future__ import annotations

import pandas as pd

from tempo_lab.claims import claims_table
from tempo_lab.tpi.length_claims import CLAIMS, LengthStudy

TRAINED = 128
NOISE = (0.0, 0.01, -0.01)  # per seed


def _lengths(scores: dict[str, dict[float, float]]) -> pd.DataFrame:
    rows = []
    for method, by_factor in scores.items():
        arch = method if method.startswith("tpi") else "rope"
        name = "tpi" if method.startswith("tpi") else method
        for factor, bpc in by_factor.items():
            for seed, noise in enumerate(NOISE):
                rows.append({"architecture": arch, "seed": seed, "trained": TRAINED, "method": name,
                             "factor": factor, "length": int(factor * TRAINED), "layer": -1,
                             "bpc": bpc + noise})  # fmt: skip
    return pd.DataFrame(rows)


def _positions(se_minus_window: float, factors) -> pd.DataFrame:
    rows = []
    for factor in factors:
        for seed, noise in enumerate(NOISE):
            for method, bits in (("window", 2.1), ("self-extend", 2.1 + se_minus_window + noise)):
                rows.append({"seed": seed, "trained": TRAINED, "method": method, "factor": float(factor),
                             "bin": TRAINED, "bits": bits})  # fmt: skip
    return pd.DataFrame(rows)


FACTORS = (1.0, 2.0, 4.0, 8.0, 16.0)


def _study(factors=FACTORS, se_minus_window: float = 0.05) -> LengthStudy:
    def grow(base, per):
        return {f: base * (1 + per * (f - 1)) for f in factors}

    scores = {"plain": grow(2.0, 0.3), "pi": grow(2.0, 0.5), "ntk": grow(2.0, 0.1), "yarn": grow(2.0, 0.05),
              "self-extend": grow(2.0, 0.001), "tpi": grow(2.8, 0.02), "tpi-decay": grow(2.2, 0.0001)}
    past = [f for f in factors if f > 1]
    return LengthStudy(_lengths(scores), _positions(se_minus_window, past), {})


def test_each_rule_returns_what_the_numbers_call_for():
    verdicts = claims_table(_study(), {}, CLAIMS).set_index("key").verdict
    assert verdicts["10.degrades"] == "confirmed"  # plain 1.3x its 1x score at 2x
    assert verdicts["10.pi"] == "refuted"  # worse than plain at every factor
    assert verdicts["10.ntk"] == "refined"  # better than PI everywhere, 1.1x its 1x score at 2x
    assert verdicts["10.yarn"] == "confirmed"  # better than PI and NTK at every factor
    assert verdicts["10.self_extend"] == "refuted"  # 0.05 bits worse than the window
    assert verdicts["10.tpi"] == "refined"  # the decay model flat, single-omega TPI drifting
    uses = claims_table(_study(se_minus_window=-0.2), {}, CLAIMS).set_index("key").verdict
    assert uses["10.self_extend"] == "confirmed"


def test_a_factor_not_measured_leaves_its_rules_undecided():
    verdicts = claims_table(_study(factors=(1.0, 2.0, 4.0)), {}, CLAIMS).set_index("key").verdict
    assert verdicts["10.self_extend"] == "undecided" and verdicts["10.tpi"] == "undecided"  # 8x and 16x
    assert verdicts["10.degrades"] == "confirmed"
