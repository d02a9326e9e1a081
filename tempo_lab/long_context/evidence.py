"""The long-context claims (LC1-LC7) as records: each registered rule of :mod:`.rules` with the statistics it
reads (and what each is, in words, for notebook 10's differences figure), computed from a
:class:`~tempo_lab.long_context.study.LongContextStudy`.

Accuracy cells are read per sample (RULER's score, 0 or 1); a cell the study has not computed yet gives NaN,
and every rule reads NaN as undecided, so a partial study never decides a claim it cannot.

Contents: :data:`CLAIMS`, :func:`evidence_values` (the numbers each rule reads), :func:`bucket_loss`,
:func:`loss_levels` (LC6's statistics for every method, those no rule reads included).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from tempo_lab import stats
from tempo_lab.claims import Claim, Evidence
from tempo_lab.extension.methods import LABELS, METHODS
from tempo_lab.long_context.rules import DELTA, EPSILON, LOSS_METHODS, RULES, SCALINGS

NAME = "long_context"
SMOLLM2, GEMMA = "smollm2-135m", "gemma3-270m"
NAN = float("nan")
BOOT = 10_000  # paired bootstrap resamples, seed 0, as registered


def _scores(study: Any, model: str, version: str, method: str, length: int) -> pd.Series:
    """RULER's score per sample of one cell (empty when the study has not computed it)."""
    p = study.passkey
    if p.empty:
        return pd.Series(dtype=float)
    cell = p[(p.model == model) & (p.version == version) & (p.method == method) & (p.length == length)]
    return cell.set_index("sample").score.astype(float)


def _acc(scores: pd.Series) -> str:
    if scores.empty:
        return "not computed"
    k, n = int(scores.sum()), len(scores)
    _, lo, hi = stats.wilson(k, n)
    return f"{k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def _newcombe(a: pd.Series, b: pd.Series) -> tuple[float, float, float]:
    if a.empty or b.empty:
        return NAN, NAN, NAN
    return stats.newcombe(int(a.sum()), len(a), int(b.sum()), len(b))


def _paired(a: pd.Series, b: pd.Series, level: float = 0.95) -> tuple[float, float, float, int]:
    both = a.index.intersection(b.index)
    if len(both) < 2:
        return NAN, NAN, NAN, len(both)
    mean, lo, hi = stats.paired_bootstrap_ci(a.loc[both].to_numpy(), b.loc[both].to_numpy(), n_boot=BOOT,
                                             level=level)  # fmt: skip
    return mean, lo, hi, len(both)


def _fmt(mean: float, lo: float, hi: float) -> str:
    return "not computed" if math.isnan(mean) else f"{mean:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _lc1_values(study: Any) -> dict[str, float]:
    a4, a16 = _scores(study, SMOLLM2, "real", "plain", 4096), _scores(study, SMOLLM2, "real", "plain", 16384)
    d, lo, hi = _newcombe(a4, a16)
    return {"d": d, "d_lo": lo, "d_hi": hi}


def _lc1_confirmed(study: Any) -> float:
    return float(RULES["LC1"](_lc1_values(study)) == "confirmed")


def _lc1(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    v = _lc1_values(study)
    a4, a16 = _scores(study, SMOLLM2, "real", "plain", 4096), _scores(study, SMOLLM2, "real", "plain", 16384)
    d = _fmt(v["d"], v["d_lo"], v["d_hi"])
    return Evidence(v, "", f"acc(4k) {_acc(a4)}, acc(16k) {_acc(a16)}; d = {d}",
                    {"d": "acc 4k - acc 16k (plain)"})


def _restores(method: str) -> Callable[[Any, Mapping], Evidence]:
    def measure(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
        plain16 = _scores(study, SMOLLM2, "real", "plain", 16384)
        plain4 = _scores(study, SMOLLM2, "real", "plain", 4096)
        own16 = _scores(study, SMOLLM2, "real", method, 16384)
        s, s_lo, s_hi, n = _paired(own16, plain16)
        u, u_lo, u_hi = _newcombe(plain4, own16)
        values = {"lc1_confirmed": _lc1_confirmed(study), "s": s, "s_lo": s_lo, "s_hi": s_hi, "u": u,
                  "u_lo": u_lo, "u_hi": u_hi}  # fmt: skip
        return Evidence(values, "", (
            f"{LABELS[method]} at 16k {_acc(own16)}; s = {_fmt(s, s_lo, s_hi)} over {n} paired samples; "
            f"u = {_fmt(u, u_lo, u_hi)}"
        ), {"s": "acc method - acc plain, 16k", "u": "acc plain 4k - acc method 16k"})  # fmt: skip

    return measure


def _lc4(version: str, words: str) -> Callable[[Any, Mapping], Evidence]:
    """LC4's statistics on one gap version of the samples (``distance``: the claims file's; ``gap``: the
    positions of a D-token sample), ``words`` naming it."""

    def measure(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
        real16 = _scores(study, SMOLLM2, "real", "plain", 16384)
        gap16 = _scores(study, SMOLLM2, version, "plain", 16384)
        gap4 = _scores(study, SMOLLM2, version, "plain", 4096)
        g, g_lo, g_hi, ng = _paired(gap16, real16)
        _, g90_lo, g90_hi, _ = _paired(gap16, real16, level=0.90)
        f, f_lo, f_hi, nf = _paired(gap4, gap16)
        values = {"lc1_confirmed": _lc1_confirmed(study), "g": g, "g_lo": g_lo, "g_hi": g_hi,
                  "g90_lo": g90_lo, "g90_hi": g90_hi, "f": f, "f_lo": f_lo, "f_hi": f_hi}  # fmt: skip
        return Evidence(values, "", (
            f"gap version, {words}: D = 16k {_acc(gap16)}, D = 4k {_acc(gap4)}; real 16k {_acc(real16)}; "
            f"g = {_fmt(g, g_lo, g_hi)} (90% [{g90_lo:+.2f}, {g90_hi:+.2f}], {ng} pairs), "
            f"f = {_fmt(f, f_lo, f_hi)} ({nf} pairs)"
        ), {"g": "acc gap - acc real, 16k", "f": "acc gap 4k - acc gap 16k"})  # fmt: skip

    return measure


def _lc5(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    g16, g64 = _scores(study, GEMMA, "gap", "plain", 16384), _scores(study, GEMMA, "gap", "plain", 65536)
    d, lo, hi, n = _paired(g16, g64)
    found = f"gap 16k {_acc(g16)}, gap 64k {_acc(g64)}; d = {_fmt(d, lo, hi)} ({n} pairs)"
    return Evidence({"d": d, "d_lo": lo, "d_hi": hi}, "", found, {"d": "acc gap 16k - acc gap 64k (Gemma 3)"})


def bucket_loss(study: Any, method: str, lo: int, hi: int) -> pd.Series:
    """Per window, the mean loss (nats) of the positions predicted in ``[lo, hi)`` (token-weighted)."""
    loss = study.loss
    if loss.empty:
        return pd.Series(dtype=float)
    part = loss[(loss.model == SMOLLM2) & (loss.method == method) & (loss.bin >= lo) & (loss.bin < hi)]
    if part.empty:
        return pd.Series(dtype=float)
    weighted = part.assign(total=part.loss * part.tokens).groupby("window")[["total", "tokens"]].sum()
    return weighted.total / weighted.tokens


def _t(values: pd.Series) -> tuple[float, float, float]:
    return stats.t_interval(values.to_numpy()) if len(values) >= 2 else (NAN, NAN, NAN)


def _lc6_values(study: Any) -> dict[str, float]:
    r = bucket_loss(study, "plain", 12288, 16384) - bucket_loss(study, "plain", 4096, 8192)
    mean, lo, hi = _t(r.dropna())
    return {"r": mean, "r_lo": lo, "r_hi": hi, "windows": float(r.notna().sum())}


def _lc6(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    v = _lc6_values(study)
    found = f"r = {_fmt(v['r'], v['r_lo'], v['r_hi'])} nats over {int(v['windows'])} windows"
    return Evidence(v, "", found, {"r": "loss 12k-16k - loss 4k-8k (plain)"})


def _levels(study: Any, method: str) -> dict[str, float]:
    """LC6's statistics for ``method``: k (its loss at 12k-16k minus plain's at 4k-8k) and b (plain's loss
    minus its own at 12k-16k), each its mean over the windows and 95% t-interval, and the windows."""
    plain_far = bucket_loss(study, "plain", 12288, 16384)
    plain_in = bucket_loss(study, "plain", 4096, 8192)
    own_far = bucket_loss(study, method, 12288, 16384)
    k, b = (own_far - plain_in).dropna(), (plain_far - own_far).dropna()
    (km, k_lo, k_hi), (bm, b_lo, b_hi) = _t(k), _t(b)
    return {"k": km, "k_lo": k_lo, "k_hi": k_hi, "b": bm, "b_lo": b_lo, "b_hi": b_hi,
            "windows": float(len(k))}  # fmt: skip


def loss_levels(study: Any) -> pd.DataFrame:
    """LC6's statistics for each method of the study's loss table but plain, in the order of
    :data:`~tempo_lab.extension.methods.METHODS`, the methods no rule reads (NTK, dynamic NTK) beside those
    LC6 decides: k (the method's loss at 12k-16k minus plain's at 4k-8k) and b (plain's loss minus the
    method's at 12k-16k), each its mean over the windows with a 95% t-interval (``k_lo``, ``k_hi``, ...),
    and ``windows``. One row per method; empty without loss rows."""
    loss = study.loss
    methods = [] if loss.empty else [m for m in METHODS if m != "plain" and m in set(loss.method)]
    return pd.DataFrame([{"method": m, **_levels(study, m)} for m in methods])


def _lc6_method(method: str) -> Callable[[Any, Mapping], Evidence]:
    def measure(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
        v = _levels(study, method)
        plain = RULES["LC6"](_lc6_values(study)) == "confirmed"
        values = {"lc6_confirmed": float(plain), **{k: x for k, x in v.items() if k != "windows"}}
        k, b = _fmt(v["k"], v["k_lo"], v["k_hi"]), _fmt(v["b"], v["b_lo"], v["b_hi"])
        found = f"{LABELS[method]}: k = {k}, b = {b} nats"
        return Evidence(values, "", f"{found} over {int(v['windows'])} windows", {
            "k": "loss method 12k-16k - plain 4k-8k", "b": "loss plain - loss method, 12k-16k"})

    return measure


def _lc7(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    spec = study.spec
    natural = _scores(study, SMOLLM2, "natural", "plain", spec.near_source)
    far = _scores(study, SMOLLM2, "start_far", "plain", 16384)
    h, lo, hi, n = _paired(natural, far)
    others = ", ".join(f"{d // 1024}k {_acc(_scores(study, SMOLLM2, 'start_far', 'plain', d))}"
                       for d in spec.start_far if d != 16384)  # fmt: skip
    return Evidence({"lc1_confirmed": _lc1_confirmed(study), "h": h, "h_lo": lo, "h_hi": hi}, "", (
        f"natural {_acc(natural)}, start-far 16k {_acc(far)}; h = {_fmt(h, lo, hi)} ({n} pairs); without a "
        f"verdict, start-far {others}"
    ), {"h": "acc natural - acc start-far 16k"})  # fmt: skip


#: why LC5's gap version does not test what it was registered to test on Gemma 3 (found with the data)
GEMMA_GAP_NOTE = (
    "Gemma 3's sliding-window layers (512 slots) never saw a key more than 512 positions back in "
    "training. The gap version keeps the needle within 512 slots of the question but moves it thousands of "
    "positions back, so those layers see a distance they were never trained on, which a real haystack never "
    "shows them (there the needle lies outside their window). The gap version fails at every distance, 2k "
    "included, while the same samples retrieve at their own positions. The verdict stands as computed; it "
    "says nothing about Gemma 3's trained context."
)
#: what LC4's two versions hold fixed (found with the data)
DISTANCE_NOTE = (
    "LC4 reads the gap version as the claims file defines it: the needle at its real position in the 16k "
    "sample, the question D positions after it (tempo_lab.long_context.passkey, Tokens.at_distance). The "
    "question then sits the needle's position plus D from the start, past the trained context at both D (the "
    "cells table prints the median last position), so f compares two needle distances with the start far at "
    "both. LC4.positions decides the same rule, post hoc, on the gap version the passkey figure draws "
    "(Tokens.gap: a D-token sample's positions, the question near D, the needle about D/2 before it at the "
    "median), where D moves the start's distance and the needle's together."
)
SOURCE = "the claims file's 'Long context' section, registered 2026-12-07 before any data"
CLAIMS = (
    Claim("LC1", NAME, "A RoPE model fails to retrieve past its trained context",
          "common knowledge; LongLM (Jin et al. 2024)",
          "Llama-2 passkey 0/5 at 5,144 tokens, trained at 4,096",
          ("study:long_context.passkey (SmolLM2, real, plain, 4k and 16k)",), _lc1, RULES["LC1"]),
    Claim("LC2", NAME, "Self-Extend restores retrieval past the trained context without training",
          "LongLM (Jin et al. 2024)", "passkey 0/5 -> 5/5",
          ("study:long_context.passkey (SmolLM2, real 16k, Self-Extend and plain; plain 4k)",),
          _restores("self_extend"), RULES["LC2"]),
    *(Claim(f"LC3.{m}", NAME,
            f"Rescaling the rotary frequencies ({LABELS[m]}) without fine-tuning extends retrieval",
            "YaRN (Peng et al. 2023); Position Interpolation (Chen et al. 2023) says PI needs fine-tuning",
            "YaRN's dynamic variant extends past the trained context without fine-tuning",
            (f"study:long_context.passkey (SmolLM2, real 16k, {LABELS[m]} and plain; plain 4k)",),
            _restores(m), RULES[f"LC3.{m}"]) for m in SCALINGS),
    Claim("LC4", NAME, "Past the trained context, retrieval fails because of the distance, not the length",
          "tempo_lab's own question", "(no earlier number)",
          ("study:long_context.passkey (SmolLM2, plain: at distance 16k and 4k, real 16k)",),
          _lc4("distance", "the question D after the needle"), RULES["LC4"], note=DISTANCE_NOTE),
    Claim("LC4.positions", NAME,
          "Past the trained context, retrieval fails because of the distance, not the length (at a D-token "
          "sample's positions)", "tempo_lab's own question", "(no earlier number)",
          ("study:long_context.passkey (SmolLM2, plain: gap 16k and 4k, real 16k)",),
          _lc4("gap", "a D-token sample's positions"), None, post_hoc=(RULES["LC4"],)),
    Claim("LC5", NAME,
          "Gemma 3 270M retrieves at every distance inside its trained context (32,768) and fails past it",
          "Gemma 3's 32k context", "trained context 32,768",
          ("study:long_context.passkey (Gemma 3, gap 16k and 64k, plain)",), _lc5, RULES["LC5"],
          note=GEMMA_GAP_NOTE),
    Claim("LC6", NAME, "Past its trained context a RoPE model's loss rises sharply",
          "Position Interpolation (Chen et al. 2023)", "extrapolation's perplexity explodes",
          ("study:long_context.loss (SmolLM2, plain)",), _lc6, RULES["LC6"]),
    *(Claim(f"LC6.{m}", NAME, f"{LABELS[m]} keeps the loss past the trained context near the within-context "
            "level without fine-tuning", "Position Interpolation (Chen et al. 2023); YaRN; LongLM",
            "interpolation's perplexity stays bounded",
            (f"study:long_context.loss (SmolLM2, plain and {LABELS[m]})",), _lc6_method(m), RULES[f"LC6.{m}"])
      for m in LOSS_METHODS),
    Claim("LC7", NAME,
          "What breaks past the trained context is the distance to the needle, not the distance to the start",
          "tempo_lab's own question", "(no earlier number)",
          ("study:long_context.passkey (SmolLM2, natural and start-far 16k, plain)",), _lc7, RULES["LC7"]),
)  # fmt: skip


def evidence_values(study: Any) -> pd.DataFrame:
    """Every claim's evidence values, one row per claim (what the notebook shows beside the verdicts)."""
    rows = []
    for claim in CLAIMS:
        values = claim.measure(study, {}).values
        rows.append({"key": claim.key, **{k: float(v) for k, v in values.items()}})
    return pd.DataFrame(rows)


__all__ = ["CLAIMS", "DELTA", "EPSILON", "bucket_loss", "evidence_values", "loss_levels"]
