"""The long-context claims' rules (LC1-LC7), as registered before any data on 2026-12-07.

Each rule is written as the "Long context" section of the project's claims file states it; the evidence values
they read are named here, and :mod:`tempo_lab.long_context.evidence` computes them from a study. The margins:
``delta`` = 0.2 (accuracy), ``epsilon`` = 0.1 nats (loss). Accuracy is RULER ``niah_single_1``'s own
score of the greedy answer, averaged over samples. Intervals: Wilson for one accuracy, Newcombe (hybrid
Wilson) for a difference of two independent ones, a paired bootstrap over samples (10,000 resamples, seed 0)
for a paired difference, a t-interval over 16k-token text windows for losses.

A rule that depends on another (LC2-LC4, LC6's methods, LC7 on LC1) reads that rule's verdict as the value
``<key>_confirmed`` (1.0 or 0.0).

Contents: :data:`RULES` (key -> :class:`~tempo_lab.claims.Rule`), :data:`DELTA`, :data:`EPSILON`,
:data:`SCALINGS`, :data:`LOSS_METHODS`, :data:`WRITTEN`.
"""

from __future__ import annotations

from collections.abc import Mapping

from tempo_lab.claims import Rule, above, below

DELTA = 0.2
EPSILON = 0.1
WRITTEN = "2026-12-07, before any long-context sample was scored (LC7: after a pilot of plain retrieval only)"
#: the rotary rescalings LC3 decides one verdict for each
SCALINGS = ("pi", "ntk", "dynamic", "yarn")
#: the methods LC6 decides beside plain
LOSS_METHODS = ("pi", "yarn", "self_extend")
NAN = float("nan")


def _lc1(v: Mapping[str, float]) -> str:
    if above(v["d_lo"], DELTA):
        return "confirmed"
    return "refuted" if below(v["d_hi"], DELTA) else "undecided"


def _restores(v: Mapping[str, float]) -> str:
    if v["lc1_confirmed"] != 1.0:
        return "undecided"
    if above(v["s_lo"], DELTA):
        return "confirmed" if below(v["u_hi"], DELTA) else "refined"
    return "refuted" if below(v["s_hi"], DELTA) else "undecided"


def _lc4(v: Mapping[str, float]) -> str:
    if v["lc1_confirmed"] != 1.0:
        return "undecided"
    inside = v["g90_lo"] >= -DELTA and v["g90_hi"] <= DELTA
    if inside and above(v["f_lo"], DELTA):
        return "confirmed"
    if above(v["g_lo"], DELTA) and below(v["f_hi"], DELTA):
        return "refuted"
    if above(v["g_lo"], DELTA) and above(v["f_lo"], DELTA):
        return "refined"
    return "undecided"


def _lc5(v: Mapping[str, float]) -> str:
    if above(v["d_lo"], DELTA):
        return "confirmed"
    return "refuted" if below(v["d_hi"], DELTA) else "undecided"


def _lc6_plain(v: Mapping[str, float]) -> str:
    if above(v["r_lo"], EPSILON):
        return "confirmed"
    return "refuted" if below(v["r_hi"], EPSILON) else "undecided"


def _lc6_method(v: Mapping[str, float]) -> str:
    if v["lc6_confirmed"] != 1.0:
        return "undecided"
    if below(v["k_hi"], EPSILON):
        return "confirmed"
    if above(v["b_lo"], EPSILON):
        return "refined"
    return "refuted" if below(v["b_hi"], EPSILON) else "undecided"


def _lc7(v: Mapping[str, float]) -> str:
    if v["lc1_confirmed"] != 1.0:
        return "undecided"
    if below(v["h_hi"], DELTA):
        return "confirmed"
    return "refuted" if above(v["h_lo"], DELTA) else "undecided"


def _restore_rule(method: str) -> Rule:
    return Rule(
        statistic=f"s = acc_{method}(real 16k) - acc_plain(real 16k), paired over samples; u = "
        f"acc_plain(real 4k) - acc_{method}(real 16k), independent samples",
        unit="sample",
        margins={"delta": DELTA},
        text=f"undecided unless LC1 is confirmed; confirmed if lo95(s) > {DELTA} and hi95(u) < {DELTA} "
        f"(paired bootstrap for s, Newcombe for u); refined if lo95(s) > {DELTA} only; refuted if hi95(s) < "
        f"{DELTA}; else undecided",
        decide=_restores,
        cases=(
            ({"lc1_confirmed": 1.0, "s_lo": 0.5, "s_hi": 0.9, "u_hi": 0.1}, "confirmed"),
            ({"lc1_confirmed": 1.0, "s_lo": 0.3, "s_hi": 0.6, "u_hi": 0.5}, "refined"),
            ({"lc1_confirmed": 1.0, "s_lo": -0.1, "s_hi": 0.1, "u_hi": 0.9}, "refuted"),
            ({"lc1_confirmed": 1.0, "s_lo": 0.0, "s_hi": 0.4, "u_hi": 0.5}, "undecided"),
            ({"lc1_confirmed": 0.0, "s_lo": 0.5, "s_hi": 0.9, "u_hi": 0.1}, "undecided"),
        ),
        written=WRITTEN,
    )


def _loss_rule(method: str) -> Rule:
    return Rule(
        statistic=f"k = loss_{method}(12k-16k) - loss_plain(4k-8k), b = loss_plain(12k-16k) - "
        f"loss_{method}(12k-16k), mean loss per position bucket, paired over windows",
        unit="text window",
        margins={"epsilon": EPSILON},
        text=f"undecided unless LC6's plain verdict is confirmed; confirmed if hi95(k) < {EPSILON}; refined "
        f"if lo95(b) > {EPSILON} only; refuted if hi95(b) < {EPSILON}; else undecided (95% t-intervals over "
        f"windows)",
        decide=_lc6_method,
        cases=(
            ({"lc6_confirmed": 1.0, "k_hi": 0.05, "b_lo": 1.0, "b_hi": 2.0}, "confirmed"),
            ({"lc6_confirmed": 1.0, "k_hi": 0.5, "b_lo": 0.3, "b_hi": 0.8}, "refined"),
            ({"lc6_confirmed": 1.0, "k_hi": 2.0, "b_lo": -0.5, "b_hi": 0.05}, "refuted"),
            ({"lc6_confirmed": 1.0, "k_hi": 2.0, "b_lo": 0.0, "b_hi": 0.3}, "undecided"),
            ({"lc6_confirmed": 0.0, "k_hi": 0.05, "b_lo": 1.0, "b_hi": 2.0}, "undecided"),
        ),
        written=WRITTEN,
    )


RULES: dict[str, Rule] = {
    "LC1": Rule(
        statistic="d = acc(real 4k) - acc(real 16k), SmolLM2, plain, independent samples",
        unit="sample",
        margins={"delta": DELTA},
        text=f"confirmed if lo95(d) > {DELTA}; refuted if hi95(d) < {DELTA}; else undecided (Newcombe)",
        decide=_lc1,
        cases=(
            ({"d_lo": 0.5, "d_hi": 0.9}, "confirmed"),
            ({"d_lo": -0.1, "d_hi": 0.1}, "refuted"),
            ({"d_lo": 0.1, "d_hi": 0.5}, "undecided"),
            ({"d_lo": NAN, "d_hi": NAN}, "undecided"),
        ),
        written=WRITTEN,
    ),
    "LC2": _restore_rule("self_extend"),
    **{f"LC3.{m}": _restore_rule(m) for m in SCALINGS},
    "LC4": Rule(
        statistic="g = acc_gap(16k) - acc_real(16k), f = acc_gap(4k) - acc_gap(16k), SmolLM2, plain, paired "
        "over the same samples",
        unit="sample",
        margins={"delta": DELTA},
        text=f"undecided unless LC1 is confirmed; confirmed (distance) if the 90% interval of g lies inside "
        f"[-{DELTA}, {DELTA}] and lo95(f) > {DELTA}; refuted (length) if lo95(g) > {DELTA} and hi95(f) < "
        f"{DELTA}; refined (both) if lo95(g) > {DELTA} and lo95(f) > {DELTA}; else undecided (paired "
        f"bootstrap)",
        decide=_lc4,
        cases=(
            (
                {
                    "lc1_confirmed": 1.0,
                    "g90_lo": -0.1,
                    "g90_hi": 0.1,
                    "g_lo": -0.15,
                    "f_lo": 0.5,
                    "f_hi": 0.8,
                },
                "confirmed",
            ),
            (
                {"lc1_confirmed": 1.0, "g90_lo": 0.4, "g90_hi": 0.7, "g_lo": 0.35, "f_lo": -0.1, "f_hi": 0.1},
                "refuted",
            ),
            (
                {"lc1_confirmed": 1.0, "g90_lo": 0.3, "g90_hi": 0.5, "g_lo": 0.25, "f_lo": 0.3, "f_hi": 0.6},
                "refined",
            ),
            (
                {
                    "lc1_confirmed": 1.0,
                    "g90_lo": -0.3,
                    "g90_hi": 0.3,
                    "g_lo": -0.35,
                    "f_lo": 0.1,
                    "f_hi": 0.4,
                },
                "undecided",
            ),
            (
                {
                    "lc1_confirmed": 0.0,
                    "g90_lo": -0.1,
                    "g90_hi": 0.1,
                    "g_lo": -0.15,
                    "f_lo": 0.5,
                    "f_hi": 0.8,
                },
                "undecided",
            ),
        ),
        written=WRITTEN,
    ),  # fmt: skip
    "LC5": Rule(
        statistic="d = acc_gap(16k) - acc_gap(64k), Gemma 3 270M, plain, paired over the same samples",
        unit="sample",
        margins={"delta": DELTA},
        text=f"confirmed if lo95(d) > {DELTA}; refuted if hi95(d) < {DELTA}; else undecided (paired "
        f"bootstrap)",
        decide=_lc5,
        cases=(
            ({"d_lo": 0.5, "d_hi": 0.9}, "confirmed"),
            ({"d_lo": -0.1, "d_hi": 0.1}, "refuted"),
            ({"d_lo": 0.1, "d_hi": 0.5}, "undecided"),
        ),
        written=WRITTEN,
    ),
    "LC6": Rule(
        statistic="r = loss(12k-16k) - loss(4k-8k), SmolLM2, plain, mean loss per position bucket per window",
        unit="text window",
        margins={"epsilon": EPSILON},
        text=f"confirmed if lo95(r) > {EPSILON}; refuted if hi95(r) < {EPSILON}; else undecided (t-interval "
        f"over windows)",
        decide=_lc6_plain,
        cases=(
            ({"r_lo": 0.5, "r_hi": 1.5}, "confirmed"),
            ({"r_lo": -0.2, "r_hi": 0.05}, "refuted"),
            ({"r_lo": 0.0, "r_hi": 0.5}, "undecided"),
        ),
        written=WRITTEN,
    ),
    **{f"LC6.{m}": _loss_rule(m) for m in LOSS_METHODS},
    "LC7": Rule(
        statistic="h = acc(natural positions) - acc(start-far at 16k), SmolLM2, plain, samples whose needle "
        "lies within 300 tokens of the question, paired",
        unit="sample",
        margins={"delta": DELTA},
        text=f"undecided unless LC1 is confirmed; confirmed if hi95(h) < {DELTA}; refuted if lo95(h) > "
        f"{DELTA}; else undecided (paired bootstrap)",
        decide=_lc7,
        cases=(
            ({"lc1_confirmed": 1.0, "h_lo": -0.1, "h_hi": 0.1}, "confirmed"),
            ({"lc1_confirmed": 1.0, "h_lo": 0.4, "h_hi": 0.8}, "refuted"),
            ({"lc1_confirmed": 1.0, "h_lo": 0.0, "h_hi": 0.4}, "undecided"),
            ({"lc1_confirmed": 0.0, "h_lo": -0.1, "h_hi": 0.1}, "undecided"),
        ),
        written=WRITTEN,
    ),
}
