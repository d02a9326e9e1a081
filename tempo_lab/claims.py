"""Claims as data: each seed claim of ``CLAIMS.md`` is a record with the rule that decides it.

A :class:`Claim` holds the claim's text and original number, the rule in words, where its numbers come from
(``sources``), a ``measure`` that reads them (a study's tables and the single-prompt notebooks' key numbers)
into :class:`Evidence`, a pure ``decide`` from the evidence's values to a verdict, and its ``headline``: the
one number per prompt the claim rests on, which :mod:`tempo_lab.studies.compare` pairs across two models.
The verdicts:

- **confirmed**: the interval (or test) agrees with the claim;
- **refuted**: it excludes the claim;
- **refined**: the claim holds only in part, and the row says which part;
- **undecided**: the prompts give too little to test it (e.g. no parallel sets on a tiny random model).

Each phenomenon declares its claims in its slice; the registry (:data:`tempo_lab.phenomena.CLAIMS`) collects
them, and every rule has unit tests with a confirming and a refuting case.

Contents: :class:`Claim`, :class:`Evidence`, :func:`claims_table`, :func:`ci`, :func:`fmt_ci`,
:data:`VERDICTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tempo_lab import stats

VERDICTS = ("confirmed", "refuted", "refined", "undecided")


@dataclass(frozen=True)
class Evidence:
    """What a claim's rule reads: ``values`` (the numbers, by name), and the row's two sentences: the
    one-prompt number (``single``) and the measurement over the study (``at_scale``)."""

    values: Mapping[str, float]
    single: str
    at_scale: str


@dataclass(frozen=True)
class Claim:
    """One seed claim (see the module docstring). ``measure(study, single)``: ``single`` maps a notebook
    number (``"01"``) to that notebook's key numbers. ``headline``: (what it is, ``per_prompt(study)`` ->
    a Series indexed by prompt, or ``None`` when the claim rests on no single per-prompt number); the
    verdict never reads it."""

    phenomenon: str
    text: str
    original: str
    rule: str
    sources: tuple[str, ...]
    measure: Callable[[Any, Mapping[str, Mapping[str, Any]]], Evidence]
    decide: Callable[[Mapping[str, float]], str]
    headline: tuple[str, Callable[[Any], pd.Series]] | None = None

    def verdict(self, evidence: Evidence) -> str:
        verdict = self.decide(evidence.values)
        if verdict not in VERDICTS:
            raise ValueError(f"the rule of {self.text!r} gave {verdict!r}, not one of {VERDICTS}")
        return verdict


def claims_table(
    study: Any, single: Mapping[str, Mapping[str, Any]], claims: Sequence[Claim]
) -> pd.DataFrame:
    """One row per claim: the claim, its original number, the single-prompt number, the measurement over
    ``study`` (mean with its 95% bootstrap interval, or a paired test), the verdict, what decided it (the
    model, its dtype and the number of prompts, from the study's manifest) and the rule."""
    m = study.manifest
    decided_by = f"{m['model']}, {m['dtype']}, {len(study.prompts) - len(study.problems)} prompts"
    rows = []
    for claim in claims:
        evidence = claim.measure(study, single)
        rows.append({"claim": claim.text, "original": claim.original, "single prompt": evidence.single,
                     "at scale": evidence.at_scale, "verdict": claim.verdict(evidence),
                     "decided by": decided_by, "rule": claim.rule})  # fmt: skip
    return pd.DataFrame(rows)


def ci(values: Any) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean of ``values`` with its 95% bootstrap interval (booleans count as 0/1)."""
    return stats.bootstrap_ci(pd.Series(values).astype(float))


def fmt_ci(mean: float, lo: float, hi: float, digits: int = 3) -> str:
    """``0.812 [0.801, 0.823]``."""
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def nearest(by_gap: Mapping[str, float], gap: float) -> str:
    """A single-prompt notebook's value at the gap it ran nearest to ``gap``: ``"0.1652 at +6"``."""
    key = min(by_gap, key=lambda k: abs(float(k) - gap))
    return f"{by_gap[key]:.4f} at +{key}"
