"""The claims notebook 11 decides from its study (:mod:`tempo_lab.caches.study`), one record per claim and
model, every verdict computed.

Units: the prompt for the prompt tables (sinks, massive activations, ablations, chunk reuse); for the rolling
cache, blocks of consecutive steps of the one text (:data:`~tempo_lab.caches.tables.BLOCK_STEPS`): a
difference there is "at most x nats, on one text", never a general equality. The StreamingLLM claim keeps the
rule registered before Gemma 3's data (the "refined" branch added after it is dropped); the equivalence test
beside it is post hoc.

Contents: :class:`CacheStudy`, :func:`read_cache_claims_study`, :data:`CLAIMS`, :data:`MODELS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tempo_lab.caches import tables as t
from tempo_lab.caches.study import read_cache_study, study_spec
from tempo_lab.claims import Claim, Evidence, Rule, above, below
from tempo_lab.results import ResultsFolder
from tempo_lab.stats import bootstrap_ci

MODELS = ("smollm2-135m", "gemma3-270m")
NAN = float("nan")
EQUAL_NATS = 0.1  # "keeps the recomputed window's loss": within 0.1 nats
CACHEBLEND_SHARE = 0.15  # "a small share": CacheBlend recomputes about 15% of the tokens
WRITTEN = "with the data of results/11_caches (2026-12-06); corrected 2026-12-07"
REGISTERED = "2026-12-06, with SmolLM2's data and before Gemma 3's"


@dataclass
class CacheStudy:
    """Notebook 11's tables and manifest, as the claims read them."""

    tables: dict[str, pd.DataFrame]
    manifest: dict

    def decided_by(self) -> str:
        spec = self.manifest["spec"]
        return f"{', '.join(spec['models'])}, float32, {t.chunk_gap(self.tables['chunks']).n.min()} prompts"

    @property
    def size(self) -> int:
        spec = self.manifest["spec"]
        return spec["sinks"] + spec["window"]


def read_cache_claims_study(folder: str | Path) -> CacheStudy:
    study_spec(folder)  # refuses a folder of another study
    return CacheStudy(read_cache_study(folder), ResultsFolder(folder).read_manifest())


def _ci(m: float, lo: float, hi: float, digits: int = 4) -> str:
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _sinks(model: str):
    def measure(study: CacheStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
        by_layer = t.sinks_by_layer(study.tables["sinks"])
        part = by_layer[by_layer.model == model]
        deep = part[part.layer >= (part.layer.max() + 1) // 2]
        up, down = int((deep.lo > 0.5).sum()), int((deep.hi < 0.5).sum())
        values = {"above": float(up), "below": float(down), "layers": float(len(deep))}
        text = f"mean {deep['mean'].mean():.4f} over the second half of the layers"
        text += f"; the whole interval above 0.5 in {up} of {len(deep)}, below in {down}"
        return Evidence(values, "", text)

    return measure


def _decide_sinks(v: Mapping[str, float]) -> str:
    if v["above"] > v["layers"] / 2:
        return "confirmed"
    return "refuted" if v["below"] > v["layers"] / 2 else "undecided"


def _massive(model: str):
    def measure(study: CacheStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
        prompts = study.tables["chunks"][study.tables["chunks"].model == model].prompt.nunique()
        dims = t.massive_dims(study.tables["massive"], prompts, top=1)
        top = dims[dims.model == model]
        if top.empty:
            return Evidence({"share": 0.0, "ratio": 0.0}, "", "no massive entry at the first token")
        r = top.iloc[0]
        text = f"dimension {int(r.dim)}, a median {r.median_ratio:.1f} times its layer's median"
        values = {"share": float(r.prompts_share), "ratio": float(r.median_ratio)}
        return Evidence(values, "", f"{text}, in {r.prompts_share:.4f} of the prompts")

    return measure


def _decide_massive(v: Mapping[str, float]) -> str:
    if v["share"] >= 0.95 and v["ratio"] >= 1000:
        return "confirmed"
    return "refuted" if v["share"] < 0.5 or v["ratio"] < 100 else "refined"


def _row(table: pd.DataFrame, key: str) -> str:
    return _ci(*table.loc[key, ["mean", "lo", "hi"]])


def _ablation(model: str):
    def measure(study: CacheStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
        abl = t.ablations(study.tables["ablation"])
        abl = abl[abl.model == model].set_index("mode")
        one = study.tables.get("single", pd.DataFrame())
        one = one[one.model == model] if len(one) else one
        values = {"zero_lo": abl.loc["zero", "lo"], "zero_hi": abl.loc["zero", "hi"],
                  "mean_hi": abl.loc["mean", "hi"], "dim_lo": NAN, "dim_hi": NAN}  # fmt: skip
        text = f"TV zero {_row(abl, 'zero')}, mean {_row(abl, 'mean')}"
        text += f"; the first token masked out {_row(abl, 'remove')}"
        if len(one):
            dim = one[one.ablation == "zero one dimension"]
            values["dim_lo"], values["dim_hi"] = bootstrap_ci(dim.tv)[1:]
            kinds = ("none", "zero", "zero one dimension", "mean")
            sink = ", ".join(f"{a} {_ci(*bootstrap_ci(one[one.ablation == a].sink))}" for a in kinds)
            text += f"; dimension {int(dim.dim.iloc[0])} alone zeroed: TV {_ci(*bootstrap_ci(dim.tv))}"
            text += f"; the deep layers' sink mass {sink}"
        return Evidence(values, "", text)

    return measure


def _decide_zero_vs_mean(v: Mapping[str, float]) -> str:
    return "confirmed" if v["zero_lo"] > max(0.5, v["mean_hi"]) else "refuted"


def _decide_single(v: Mapping[str, float]) -> str:
    if above(v["dim_lo"], max(0.5, v["mean_hi"])):
        return "confirmed"
    return "refuted" if below(v["dim_hi"], 0.5) else "undecided"


def _streaming(model: str):
    def measure(study: CacheStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
        rolling = study.tables["rolling"]
        rolling = rolling[rolling.model == model]
        against = t.rolling_against_reference(rolling, after=study.size).set_index("variant")
        diff = t.rolling_difference(rolling, "window", "streaming", after=study.size).iloc[0]
        s, w = against.loc["streaming"], against.loc["window"]
        values = {"s_lo": s.lo, "s_hi": s.hi, "s_lo90": s.lo90, "s_hi90": s.hi90, "w_lo": w.lo,
                  "d_lo": diff.lo, "d_hi": diff.hi}  # fmt: skip
        sinks = f"on one text, the sinks at most {max(s.hi90, 0):.3f} nats worse than recomputing the window"
        sinks += f" (90% [{s.lo90:+.4f}, {s.hi90:+.4f}]; 95% [{s.lo:+.4f}, {s.hi:+.4f}])"
        plain = f"a plain window {_ci(w['mean'], w.lo, w.hi)}"
        steps = f"the plain window minus the sinks, step by step, {_ci(diff['mean'], diff.lo, diff.hi)}"
        blocks = f"block bootstrap, {t.BLOCK_STEPS}-step blocks"
        return Evidence(values, "", f"{sinks}; {plain}; {steps} ({blocks})")

    return measure


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


def _reuse(model: str):
    def measure(study: CacheStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
        gap = t.chunk_gap(study.tables["chunks"])
        r = gap[gap.model == model].iloc[0]
        text = f"TV {_ci(r.tv, r.tv_lo, r.tv_hi)}, top-1 kept {_ci(r.top1, r.top1_lo, r.top1_hi)}"
        return Evidence({"tv_lo": r.tv_lo, "tv_hi": r.tv_hi}, "", text)

    return measure


def _decide_reuse(v: Mapping[str, float]) -> str:
    if above(v["tv_lo"], 0.05):
        return "confirmed"
    return "refuted" if below(v["tv_hi"], 0.05) else "undecided"


def _partial(model: str):
    def measure(study: CacheStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
        partial = study.tables["partial"]
        partial = partial[partial.model == model]
        curve = t.partial_curve(partial, study.tables["chunks"])
        tokens = [int(x) for x in t.half_gap(curve).tokens.dropna()]
        median = float(partial.drop_duplicates("prompt").tokens_in_chunk.median())
        fewest = min(tokens) if tokens else NAN
        rows = curve.sort_values(["selection", "tokens"]).itertuples()
        shown = "; ".join(f"{r.selection} {r.tokens}: closes {r.closed:.4f} (n = {r.n})" for r in rows)
        text = f"over the chunks longer than the tokens recomputed: {shown}; median chunk {median:g} tokens"
        return Evidence({"fewest": float(fewest), "median": median}, "", text)

    return measure


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
         "more "
    "than half; else undecided",
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
              "and "
    "its median ratio to the layer's median",
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
              "setting "
    "them to their means",
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
              "window's "
    "(nats), block bootstrap over steps of one text",
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
              "the "
    "sinks step by step",
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
NAMES = {"smollm2-135m": "SmolLM2-135M", "gemma3-270m": "Gemma 3 270M"}


def _claims(model: str) -> tuple[Claim, ...]:
    on = f" ({NAMES[model]})"

    def claim(key: str, text: str, source: str, original: str, table: str, measure, *rules: Rule) -> Claim:
        sources = (f"study:caches.{table}",)
        return Claim(f"11.{key}.{model}", "caches", text + on, source, original, sources, measure(model),
                     rules[0], post_hoc=rules[1:])  # fmt: skip

    return (
        claim("sinks", "attention sinks: past the first layers most of a token's attention goes to the first "
                       "token",
              "Xiao et al. 2024; Gu et al. 2025", "most of the attention on the first token", "sinks", _sinks,
              SINKS),
        claim("massive", "massive activations: a fixed residual dimension thousands of times the median at "
                         "the "
              "first token in every prompt", "Sun et al. 2024", "about 10,000 times the median", "massive",
              _massive, MASSIVE),
        claim("zero_vs_mean", "setting the massive activations to zero breaks the model, setting them to "
                              "their "
              "mean does not", "Sun et al. 2024", "zero: breaks; mean: no change", "ablation", _ablation,
              ZERO_VS_MEAN, SINGLE_DIMENSION),
        claim("streaming", "sinks plus a rolling window keep the recomputed window's loss; a plain window's "
                           "cache "
              "degrades once the first tokens are evicted", "Xiao et al. 2024 (StreamingLLM)",
              "4 sinks keep the perplexity of recomputing", "rolling", _streaming, STREAMING,
              STREAMING_EQUIVALENCE),
        claim("reuse", "a chunk's cache reused behind a new prefix, only its keys' rotation corrected, "
                       "changes "
              "the prediction", "CacheBlend; EPIC", "reuse degrades quality", "chunks", _reuse, REUSE),
        claim("partial", "recomputing a small share of the chunk's tokens recovers most of the quality",
              "CacheBlend (about 15%); EPIC (its first tokens)", "15% of the tokens", "partial", _partial,
              PARTIAL),
    )  # fmt: skip


CLAIMS = tuple(c for model in MODELS for c in _claims(model))
