"""The claims notebook 11 decides from its study (:mod:`tempo_lab.caches.study`), one record per claim and
model, every verdict computed.

Units: the prompt for the prompt tables (sinks, massive activations, ablations, chunk reuse); for the rolling
cache, blocks of consecutive steps of the one text (:data:`~tempo_lab.caches.tables.BLOCK_STEPS`): a
difference there is "at most x nats, on one text", never a general equality. The StreamingLLM claim keeps the
rule registered before Gemma 3's data (the "refined" branch added after it is dropped); the equivalence test
beside it is post hoc. The rules themselves: :mod:`tempo_lab.caches.cache_rules`.

Contents: :class:`CacheStudy`, :func:`read_cache_claims_study`, :data:`CLAIMS`, :data:`MODELS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tempo_lab.caches import tables as t
from tempo_lab.caches.cache_rules import (
    MASSIVE,
    PARTIAL,
    REUSE,
    SINGLE_DIMENSION,
    SINKS,
    STREAMING,
    STREAMING_EQUIVALENCE,
    ZERO_VS_MEAN,
)
from tempo_lab.caches.study import read_cache_study, study_spec
from tempo_lab.claims import Claim, Evidence, Rule
from tempo_lab.results import ResultsFolder
from tempo_lab.stats import bootstrap_ci

MODELS = ("smollm2-135m", "gemma3-270m")
NAN = float("nan")


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


def _reuse(model: str):
    def measure(study: CacheStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
        gap = t.chunk_gap(study.tables["chunks"])
        r = gap[gap.model == model].iloc[0]
        text = f"TV {_ci(r.tv, r.tv_lo, r.tv_hi)}, top-1 kept {_ci(r.top1, r.top1_lo, r.top1_hi)}"
        return Evidence({"tv_lo": r.tv_lo, "tv_hi": r.tv_hi}, "", text)

    return measure


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
