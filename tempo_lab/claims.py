"""Claims as data: each claim a notebook tests is a record with the rule that decides it, registered before
its data.

A :class:`Rule` is the decision written down: the statistic, the unit it resamples (a prompt, a prompt kind,
a seed, a sample, a text window, a block of steps), its margins, the sentence a reader checks it by, a pure
``decide`` from the evidence's values to a verdict, and synthetic ``cases``, one per verdict the rule names,
that show it can return each of them. Its :meth:`Rule.fingerprint` hashes all of that (the cases stand for
the code: a changed decision changes what a case returns). A study's manifest records the fingerprints of the
rules in force when its data was computed, so a rule changed afterwards is shown as *post hoc*.

A :class:`Claim` holds the claim (quoted, with who made it), its original number, where its numbers come
from (``sources``), a ``measure`` that reads them into :class:`Evidence`, its registered ``rule`` (``None``:
no registered verdict), the rules added after its data was seen (``post_hoc``, shown beside the registered
verdict, never in its place; a claim with neither only describes), and its ``headline``: the one number per
prompt it rests on, which :mod:`tempo_lab.studies.compare` pairs across two models. The verdicts:

- **confirmed**: the interval (or test) agrees with the claim;
- **refuted**: it excludes the claim;
- **refined**: the claim holds only in part, and the row says which part;
- **undecided**: the data cannot tell (the interval straddles a margin, or there is nothing to test).

:func:`claims_table` decides a list of claims on one study: the verdict, whether its rule was registered
before the data, the post-hoc verdicts, and each decision's p-value with Holm's adjustment over the table.

Contents: :class:`Rule`, :class:`Claim`, :class:`Evidence`, :func:`claims_table`, :func:`ci`, :func:`fmt_ci`,
:func:`nearest`, :data:`VERDICTS`, :data:`UNITS`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tempo_lab import stats

VERDICTS = ("confirmed", "refuted", "refined", "undecided")
#: what a rule may resample
UNITS = ("prompt", "prompt kind", "seed", "sample", "text window", "block of steps", "layer", "none")
#: how the table names where a rule stands against the data it decides
REGISTERED, WITH_DATA, CHANGED = (
    "registered before the data",
    "written with the data",
    "changed after the data",
)


@dataclass(frozen=True)
class Rule:
    """A claim's decision rule (see the module docstring).

    ``statistic``: what is computed, per unit and over units; ``unit``: one of :data:`UNITS`; ``margins``:
    the named thresholds the rule compares intervals with; ``text``: the rule in words; ``decide``: evidence
    values -> verdict; ``cases``: ``(values, verdict)`` pairs, at least one per verdict the rule can return,
    among them confirmed and refuted; ``p``: the name of the evidence value that is the p-value of the test
    the rule rests on (``None``: it rests on intervals alone); ``written``: when and where it was written."""

    statistic: str
    unit: str
    margins: Mapping[str, float]
    text: str
    decide: Callable[[Mapping[str, float]], str]
    cases: tuple[tuple[Mapping[str, float], str], ...]
    p: str | None = None
    written: str = ""

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {self.unit!r}")
        named = {verdict for _, verdict in self.cases}
        if not named <= set(VERDICTS):
            raise ValueError(f"cases name {sorted(named - set(VERDICTS))}, not among {VERDICTS}")
        if not {"confirmed", "refuted"} <= named:
            raise ValueError(
                f"a rule must be able to confirm and to refute; its cases name only {sorted(named)}"
            )
        for name, margin in self.margins.items():
            if not math.isfinite(margin):
                raise ValueError(f"margin {name!r} must be finite, got {margin!r}")

    @property
    def verdicts(self) -> tuple[str, ...]:
        """The verdicts the rule names (each one is shown by a case), in :data:`VERDICTS` order."""
        named = {verdict for _, verdict in self.cases}
        return tuple(v for v in VERDICTS if v in named)

    def __call__(self, values: Mapping[str, float]) -> str:
        verdict = self.decide(values)
        if verdict not in self.verdicts:
            raise ValueError(f"the rule {self.text!r} gave {verdict!r}, not one of the verdicts it names "
                             f"{self.verdicts}")  # fmt: skip
        return verdict

    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the rule's words, margins and what it decides on its cases."""
        body = {
            "statistic": self.statistic,
            "unit": self.unit,
            "margins": {k: float(v) for k, v in sorted(self.margins.items())},
            "text": self.text,
            "p": self.p,
            "cases": [
                [{k: repr(float(v)) for k, v in sorted(values.items())}, self.decide(values)]
                for values, _ in self.cases
            ],  # fmt: skip
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Evidence:
    """What a claim's rules read: ``values`` (the numbers, by name), and the row's two sentences: the
    one-prompt number (``single``) and the measurement over the study (``at_scale``). ``statistics``: what
    each statistic with an interval in ``values`` is, in words (``"d"`` with ``"d_lo"`` and ``"d_hi"`` ->
    ``"acc 4k - acc 16k (plain)"``), for a figure's labels; empty where no figure draws them."""

    values: Mapping[str, float]
    single: str
    at_scale: str
    statistics: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """One claim (see the module docstring). ``key``: its stable name (``"04.identical"``, ``"LC1"``);
    ``source``: who claimed it, where; ``measure(study, single)``: ``single`` maps a notebook number
    (``"01"``) to that notebook's key numbers. ``headline``: (what it is, ``per_prompt(study)`` -> a Series
    indexed by prompt, or ``None``); no verdict reads it."""

    key: str
    phenomenon: str
    text: str
    source: str
    original: str
    sources: tuple[str, ...]
    measure: Callable[[Any, Mapping[str, Mapping[str, Any]]], Evidence]
    rule: Rule | None
    post_hoc: tuple[Rule, ...] = ()
    headline: tuple[str, Callable[[Any], pd.Series]] | None = None
    note: str = field(default="", compare=False)

    @property
    def descriptive(self) -> bool:
        """True for a claim that only describes: no rule, registered or post hoc, so no verdict."""
        return self.rule is None and not self.post_hoc

    @property
    def deciding_rule(self) -> Rule | None:
        """The rule whose verdict the claim is shown with: the registered one, else the first post-hoc one (a
        claim with post-hoc rules alone); ``None`` for a descriptive claim."""
        return self.rule or next(iter(self.post_hoc), None)

    def rules(self) -> dict[str, str]:
        """The fingerprints a study computed now records for this claim: ``{key: ..., key + "*": ...}``
        (``*``: the post-hoc rules, in order, joined)."""
        out = {}
        if self.rule is not None:
            out[self.key] = self.rule.fingerprint()
        if self.post_hoc:
            out[self.key + "*"] = ",".join(r.fingerprint() for r in self.post_hoc)
        return out


def fingerprints(claims: Sequence[Claim]) -> dict[str, str]:
    """What a study's manifest records under ``"rules"`` when its data is computed."""
    out: dict[str, str] = {}
    for claim in claims:
        out.update(claim.rules())
    return out


def standing(claim: Claim, manifest: Mapping[str, Any]) -> str:
    """Where the claim's registered rule stands against the study's data: :data:`REGISTERED` (the manifest
    recorded this rule when the data was computed), :data:`CHANGED` (it recorded another: the verdict is post
    hoc) or :data:`WITH_DATA` (the data predates recorded rules: rule and data arrived together)."""
    recorded = manifest.get("rules")
    if claim.rule is None:
        return ""
    if recorded is None or claim.key not in recorded:
        return WITH_DATA
    return REGISTERED if recorded[claim.key] == claim.rule.fingerprint() else CHANGED


def decided_by(study: Any) -> str:
    """The row's provenance: model, dtype and how many units the study holds."""
    describe = getattr(study, "decided_by", None)
    if describe is not None:
        return describe() if callable(describe) else str(describe)
    m = study.manifest
    return f"{m['model']}, {m['dtype']}, {len(study.prompts) - len(study.problems)} prompts"


def claims_table(
    study: Any, single: Mapping[str, Mapping[str, Any]], claims: Sequence[Claim]
) -> pd.DataFrame:
    """One row per claim: the claim and who made it, its original number, the single-prompt number, the
    measurement over ``study``, the verdict under the registered rule (empty for a descriptive claim) and
    where that rule stands (:func:`standing`), the verdicts of post-hoc rules, the p-value of the test a rule
    rests on with Holm's adjustment over every p-value in the table, what decided it, and the rules' words.
    ``table.attrs["decisions"]``: how many verdicts the table holds (registered and post hoc)."""
    manifest = getattr(study, "manifest", {}) or {}
    by = decided_by(study)
    rows = []
    for claim in claims:
        evidence = claim.measure(study, single)
        rule = claim.rule
        p = float(evidence.values.get(rule.p, math.nan)) if rule is not None and rule.p else math.nan
        rows.append({
            "key": claim.key, "claim": claim.text, "source": claim.source, "original": claim.original,
            "single prompt": evidence.single, "at scale": evidence.at_scale,
            "verdict": "" if rule is None else rule(evidence.values),
            "rule stands": standing(claim, manifest),
            "post hoc": "; ".join(f"{r(evidence.values)} ({r.text})" for r in claim.post_hoc),
            "p": p, "decided by": by,
            "rule": _rule_words(claim),
        })  # fmt: skip
    if not rows:  # no claim to decide (a study of other models): the table's columns, no rows
        columns = ["key", "claim", "source", "original", "single prompt", "at scale", "verdict",
                   "rule stands", "post hoc", "p", "p (Holm)", "decided by", "rule"]  # fmt: skip
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows)
    table.insert(table.columns.get_loc("p") + 1, "p (Holm)", stats.holm(table.p.tolist()))
    table.attrs["decisions"] = int(
        sum(c.rule is not None for c in claims) + sum(len(c.post_hoc) for c in claims)
    )
    return table


def _rule_words(claim: Claim) -> str:
    if claim.rule is not None:
        return f"{claim.rule.text} [unit: {claim.rule.unit}]"
    return "descriptive: no verdict" if claim.descriptive else "none registered: post-hoc rules only"


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


def above(lo: float, margin: float) -> bool:
    """``lo > margin``, False for NaN (an interval that was not computed decides nothing)."""
    return not math.isnan(lo) and lo > margin


def below(hi: float, margin: float) -> bool:
    """``hi < margin``, False for NaN."""
    return not math.isnan(hi) and hi < margin
