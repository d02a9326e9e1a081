"""The rules of notebook 11's claims (:mod:`tempo_lab.caches.cache_claims`): each one's statistic, unit,
margins and decision, with the cases that show it can return every verdict it names.

Contents: :data:`SINKS`, :data:`MASSIVE`, :data:`ZERO_VS_MEAN`, :data:`SINGLE_DIMENSION`, :data:`STREAMING`,
:data:`STREAMING_EQUIVALENCE`, :data:`REUSE`, :data:`PARTIAL`, :data:`EQUAL_NATS`, :data:`CACHEBLEND_SHARE`.
"""

from __future__ import annotations

from collections.abc import Mapping

from tempo_lab.claims import Rule, above, below

NAN = float("nan")
EQUAL_NATS = 0.1  # "keeps the recomputed window's loss": within 0.1 nats
CACHEBLEND_SHARE = 0.15  # "a small share": CacheBlend recomputes about 15% of the tokens
WRITTEN = "with the data of results/11_caches (2026-12-06); corrected 2026-12-07"
REGISTERED = "2026-12-06, with SmolLM2's data and before Gemma 3's"


def _decide_sinks(v: Mapping[str, float]) -> str:
    if v["above"] > v["layers"] / 2:
        return "confirmed"
    return "refuted" if v["below"] > v["layers"] / 2 else "undecided"


def _decide_massive(v: Mapping[str, float]) -> str:
    if v["share"] >= 0.95 and v["ratio"] >= 1000:
        return "confirmed"
    return "refuted" if v["share"] < 0.5 or v["ratio"] < 100 else "refined"


def _decide_zero_vs_mean(v: Mapping[str, float]) -> str:
    return "confirmed" if v["zero_lo"] > max(0.5, v["mean_hi"]) else "refuted"


def _decide_single(v: Mapping[str, float]) -> str:
    if above(v["dim_lo"], max(0.5, v["mean_hi"])):
        return "confirmed"
    return "refuted" if below(v["dim_hi"], 0.5) else "undecided"


def _decide_streaming_registered(v: Mapping[str, float]) -> str:
    if v["s_lo"] >= EQUAL_NATS:
        return "refuted"
    return "confirmed" if v["s_hi"] < v["w_lo"] else "refuted"


def _decide_streaming_equivalence(v: Mapping[str, float]) -> str:
    if v["s_lo90"] > -EQUAL_NATS and v["s_hi90"] < EQUAL_NATS and above(v["d_lo"], 0.0):
        return "confirmed"
    if above(v["s_lo"], EQUAL_NATS) or below(v["d_hi"], 0.0):
        return "refuted"
    return "undecided"


def _decide_reuse(v: Mapping[str, float]) -> str:
    if above(v["tv_lo"], 0.05):
        return "confirmed"
    return "refuted" if below(v["tv_hi"], 0.05) else "undecided"


def _decide_partial(v: Mapping[str, float]) -> str:
    if v["fewest"] != v["fewest"]:
        return "refuted"
    return "confirmed" if v["fewest"] <= CACHEBLEND_SHARE * v["median"] else "refined"


SINKS = Rule(
    statistic="per layer of the second half, the last token's attention on the first token (mean over heads) "
    "with its interval over prompts",
    unit="prompt",
    margins={"most": 0.5},
    text="confirmed if the interval lies above 0.5 in more than half of those layers; refuted if below in "
    "more than half; else undecided",
    decide=_decide_sinks,
    cases=(
        ({"above": 14.0, "below": 0.0, "layers": 15.0}, "confirmed"),
        ({"above": 0.0, "below": 12.0, "layers": 15.0}, "refuted"),
        ({"above": 6.0, "below": 3.0, "layers": 15.0}, "undecided"),
    ),
    written=WRITTEN,
)
MASSIVE = Rule(
    statistic="the dimension with massive entries at the first token in most prompts: its share of prompts "
    "and its median ratio to the layer's median",
    unit="prompt",
    margins={"share": 0.95, "ratio": 1000.0},
    text="confirmed if share >= 0.95 and ratio >= 1000; refuted if share < 0.5 or ratio < 100; else refined",
    decide=_decide_massive,
    cases=(
        ({"share": 1.0, "ratio": 3000.0}, "confirmed"),
        ({"share": 0.2, "ratio": 3000.0}, "refuted"),
        ({"share": 0.9, "ratio": 500.0}, "refined"),
    ),
    written=WRITTEN,
)
_ABLATED = {"zero_lo": 0.8, "zero_hi": 0.9, "mean_hi": 0.1}
ZERO_VS_MEAN = Rule(
    statistic="per prompt, the next-token TV of zeroing every massive entry of the first token and of "
    "setting them to their means",
    unit="prompt",
    margins={"breaks": 0.5},
    text="confirmed if lo95(zero) > max(0.5, hi95(mean)); else refuted",
    decide=_decide_zero_vs_mean,
    cases=(
        ({**_ABLATED, "dim_lo": NAN, "dim_hi": NAN}, "confirmed"),
        ({**_ABLATED, "zero_lo": 0.3, "dim_lo": NAN, "dim_hi": NAN}, "refuted"),
    ),
    written=WRITTEN,
)
SINGLE_DIMENSION = Rule(
    statistic="per prompt, the next-token TV of zeroing the one dimension ranked first (Sun et al.'s single "
    "dimension) at the first token in every layer",
    unit="prompt",
    margins={"breaks": 0.5},
    text="confirmed if lo95(one dimension) > max(0.5, hi95(mean)); refuted if hi95 < 0.5; else undecided",
    decide=_decide_single,
    cases=(
        ({**_ABLATED, "dim_lo": 0.7, "dim_hi": 0.9}, "confirmed"),
        ({**_ABLATED, "dim_lo": 0.1, "dim_hi": 0.3}, "refuted"),
        ({**_ABLATED, "dim_lo": 0.3, "dim_hi": 0.7}, "undecided"),
    ),
    written="2026-12-07, before the single-dimension data",
)
_ROLLED = {"s_lo": -0.1, "s_hi": 0.01, "s_lo90": -0.08, "s_hi90": 0.0, "w_lo": 0.4, "d_lo": 0.5, "d_hi": 0.7}
STREAMING = Rule(
    statistic="at the reference steps past the first window, each variant's loss minus the recomputed "
    "window's (nats), block bootstrap over steps of one text",
    unit="block of steps",
    margins={"equal": EQUAL_NATS},
    text="refuted if lo95(sinks) >= 0.1; confirmed if hi95(sinks) < lo95(plain window); else refuted",
    decide=_decide_streaming_registered,
    cases=(
        (_ROLLED, "confirmed"),
        ({**_ROLLED, "s_hi": 0.06, "w_lo": -0.27}, "refuted"),
    ),
    written=REGISTERED,
)
STREAMING_EQUIVALENCE = Rule(
    statistic="the sinks' excess over recomputing (90% block-bootstrap interval) and the plain window minus "
    "the sinks step by step",
    unit="block of steps",
    margins={"equal": EQUAL_NATS},
    text="confirmed if the sinks are equivalent to recomputing within 0.1 nats (90% interval inside) and the "
    "plain window is worse than the sinks (lo95 > 0); refuted if the sinks are worse by more than 0.1 "
    "(lo95) or the plain window is better (hi95 < 0); else undecided",
    decide=_decide_streaming_equivalence,
    cases=(
        (_ROLLED, "confirmed"),
        ({**_ROLLED, "s_lo": 0.2, "s_hi": 0.3, "s_lo90": 0.21, "s_hi90": 0.29}, "refuted"),
        ({**_ROLLED, "s_lo90": -0.15}, "undecided"),
    ),
    written="2026-12-07, after the data",
)
REUSE = Rule(
    statistic="per prompt, the next-token TV of the reused chunk against its recompute",
    unit="prompt",
    margins={"changes": 0.05},
    text="confirmed if lo95 > 0.05; refuted if hi95 < 0.05; else undecided",
    decide=_decide_reuse,
    cases=(
        ({"tv_lo": 0.3, "tv_hi": 0.4}, "confirmed"),
        ({"tv_lo": 0.0, "tv_hi": 0.02}, "refuted"),
        ({"tv_lo": 0.03, "tv_hi": 0.1}, "undecided"),
    ),
    written=WRITTEN,
)
PARTIAL = Rule(
    statistic="the fewest recomputed tokens (first or most deviating) that close half the reuse's TV, over "
              "the "
    "chunks longer than that many tokens, against the median chunk",
    unit="prompt",
    margins={"share": CACHEBLEND_SHARE},
    text="confirmed if at most 15% of the median chunk; refined if more; refuted if no measured count closes "
         "half",
    decide=_decide_partial,
    cases=(
        ({"fewest": 1.0, "median": 8.0}, "confirmed"),
        ({"fewest": 4.0, "median": 8.0}, "refined"),
        ({"fewest": NAN, "median": 8.0}, "refuted"),
    ),
    written=WRITTEN,
)
