"""The claims notebook 10 (a) decides from the char-LMs' ``lengths`` and ``positions`` tables: each with its
rule, the seed the resampling unit (3 seeds per model: Student-t intervals), every verdict computed.

The scope of every verdict: char-LMs of 4 layers and 64 dimensions trained on 128 bytes of CPython's
documentation, without fine-tuning. Where a paper's claim rests on fine-tuning (Position Interpolation's
1,000 steps), the row says the fine-tuning was not tested.

Contents: :class:`LengthStudy`, :func:`read_length_study`, :data:`CLAIMS`, :data:`TOLERANCE`,
:data:`MARGIN_BITS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tempo_lab import stats
from tempo_lab.claims import Claim, Evidence, Rule, above, below
from tempo_lab.tpi.by_position import past_trained, read_positions
from tempo_lab.tpi.lengths import every_layer, read_lengths
from tempo_lab.tpi.runs import RunsFolder

TOLERANCE = 0.05  # "within" the 1x score: less than 5% more bits per byte
MARGIN_BITS = 0.01  # Self-Extend "uses" the longer context: at least this many bits below the window
VERDICT_FACTOR = 8.0
WRITTEN = (
    "with the data of results/10_context_extension (2026-12); corrected 2026-12-07, before the window "
    "baseline's data"
)
SCOPE = "without fine-tuning, on char-LMs trained at 128 bytes"
NAN = float("nan")


@dataclass
class LengthStudy:
    """The char-LM study's tables, as the claims read them, and its manifest."""

    lengths: pd.DataFrame
    positions: pd.DataFrame
    manifest: dict

    def decided_by(self) -> str:
        seeds = self.lengths.seed.nunique()
        return f"char-LMs (RoPE, TPI, TPI with decay), float32, {seeds} seeds each"


def read_length_study(folder: str | Path) -> LengthStudy:
    return LengthStudy(read_lengths(folder), read_positions(folder), RunsFolder(folder).read_manifest())


def _bpc(study: LengthStudy, model: str) -> pd.DataFrame:
    """Seeds x factors of a method's (or a TPI architecture's) bits per byte, every layer."""
    every = every_layer(study.lengths)
    return every[every.model == model].pivot_table(index="seed", columns="factor", values="bpc")


def _t(values: pd.Series) -> tuple[float, float, float]:
    values = values.dropna()
    return stats.t_interval(values.to_numpy()) if len(values) >= 2 else (NAN, NAN, NAN)


def _fmt(m: float, lo: float, hi: float, digits: int = 3) -> str:
    return f"{m:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def _ratio(study: LengthStudy, model: str, factor: float) -> tuple[float, float, float]:
    """A factor the study did not measure gives NaN, which every rule reads as undecided."""
    table = _bpc(study, model)
    if factor not in table.columns or 1.0 not in table.columns:
        return NAN, NAN, NAN
    return _t(table[factor] / table[1.0])


def _per_factor(study: LengthStudy, a: str, b: str) -> dict[float, tuple[float, float, float]]:
    """Per factor past 1x: the mean over seeds of ``a``'s bits per byte minus ``b``'s, with its interval."""
    ta, tb = _bpc(study, a), _bpc(study, b)
    return {f: _t(ta[f] - tb[f]) for f in ta.columns if f > 1}


def _degrades(study: LengthStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    m, lo, hi = _ratio(study, "plain", 2.0)
    return Evidence({"lo": lo, "hi": hi}, "", f"plain at 2x: {m:.4f} [{lo:.4f}, {hi:.4f}] times its 1x score")


def _decide_degrades(v: Mapping[str, float]) -> str:
    if above(v["lo"], 1 + TOLERANCE):
        return "confirmed"
    return "refuted" if below(v["hi"], 1 + TOLERANCE) else "undecided"


def _side(lo: float, hi: float) -> str:
    return "better" if below(hi, 0.0) else "worse" if above(lo, 0.0) else "open"


def _counts(found: Mapping[float, tuple[float, float, float]]) -> dict[str, float]:
    sides = [_side(lo, hi) for _, lo, hi in found.values()]
    return {"better": float(sides.count("better")), "worse": float(sides.count("worse")),
            "factors": float(len(sides))}  # fmt: skip


def _pi(study: LengthStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    found = _per_factor(study, "pi", "plain")
    shown = "; ".join(f"{f:g}x {_fmt(*v)} ({_side(v[1], v[2])})" for f, v in found.items())
    return Evidence(_counts(found), "", f"PI minus plain, bits per byte over 3 seeds: {shown}; {SCOPE}; the "
                                        "fine-tuning that Chen et al. credit is not tested")  # fmt: skip


def _decide_better(v: Mapping[str, float]) -> str:
    if v["factors"] and v["better"] == v["factors"]:
        return "confirmed"
    if v["worse"] and not v["better"]:
        return "refuted"
    return "refined" if v["worse"] and v["better"] else "undecided"


def _ntk(study: LengthStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    found = _per_factor(study, "ntk", "pi")
    m, lo, hi = _ratio(study, "ntk", 2.0)
    shown = "; ".join(f"{f:g}x {_fmt(*v)}" for f, v in found.items())
    found_text = f"NTK minus PI: {shown}; NTK at 2x {m:.4f} [{lo:.4f}, {hi:.4f}] times its 1x score"
    return Evidence({**_counts(found), "ratio_hi": hi}, "", found_text)


def _decide_ntk(v: Mapping[str, float]) -> str:
    if v["factors"] and v["better"] == v["factors"]:
        return "confirmed" if below(v["ratio_hi"], 1 + TOLERANCE) else "refined"
    if v["worse"] and not v["better"]:
        return "refuted"
    return "undecided"


def _yarn(study: LengthStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    pi, ntk = _per_factor(study, "yarn", "pi"), _per_factor(study, "yarn", "ntk")
    wins = {f: _side(*pi[f][1:]) == "better" and _side(*ntk[f][1:]) == "better" for f in pi}
    loses = {f: "worse" in (_side(*pi[f][1:]), _side(*ntk[f][1:])) for f in pi}
    shown = "; ".join(f"{f:g}x vs PI {_fmt(*pi[f])}, vs NTK {_fmt(*ntk[f])}" for f in pi)
    values = {"wins": float(sum(wins.values())), "loses": float(sum(loses.values())),
              "factors": float(len(pi))}  # fmt: skip
    return Evidence(values, "", f"YaRN minus PI and minus NTK, bits per byte: {shown}")


def _decide_yarn(v: Mapping[str, float]) -> str:
    if v["factors"] and v["wins"] == v["factors"]:
        return "confirmed"
    if v["loses"] and not v["wins"]:
        return "refuted"
    return "refined" if v["wins"] else "undecided"


def _self_extend(study: LengthStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    far = past_trained(study.positions)
    wide = far.pivot_table(index=["seed", "factor"], columns="method", values="bits")
    d = (wide["self-extend"] - wide["window"]).unstack("factor")
    m, lo, hi = _t(d[VERDICT_FACTOR]) if VERDICT_FACTOR in d else (NAN, NAN, NAN)
    shown = "; ".join(f"{f:g}x {_fmt(*_t(d[f]))}" for f in d.columns)
    ratio = _ratio(study, "self-extend", VERDICT_FACTOR)
    return Evidence({"lo": lo, "hi": hi}, "", (
        f"bits per byte past byte 128, Self-Extend minus a 128-byte sliding window: {shown}; (Self-Extend at "
        f"{VERDICT_FACTOR:g}x is {ratio[0]:.4f} [{ratio[1]:.4f}, {ratio[2]:.4f}] times its 1x score: it does "
        f"not break, and it does not use what the window cannot see)"
    ))  # fmt: skip


def _decide_self_extend(v: Mapping[str, float]) -> str:
    if below(v["hi"], -MARGIN_BITS):
        return "confirmed"
    return "refuted" if above(v["lo"], -MARGIN_BITS) else "undecided"


def _tpi(study: LengthStudy, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    found = {m: _ratio(study, m, 16.0) for m in ("tpi-decay", "tpi")}
    within = sum(below(hi, 1 + TOLERANCE) for _, _, hi in found.values())
    beyond = sum(above(lo, 1 + TOLERANCE) for _, lo, _ in found.values())
    shown = "; ".join(f"{m} at 16x {r[0]:.4f} [{r[1]:.4f}, {r[2]:.4f}] times its 1x score"
                      for m, r in found.items())  # fmt: skip
    values = {"within": float(within), "beyond": float(beyond), "models": float(len(found))}
    return Evidence(values, "", shown)


def _decide_tpi(v: Mapping[str, float]) -> str:
    if v["within"] == v["models"]:
        return "confirmed"
    if v["beyond"] == v["models"]:
        return "refuted"
    return "refined" if v["within"] and v["beyond"] else "undecided"


def _rule(statistic: str, text: str, decide, cases, margins: Mapping[str, float]) -> Rule:
    return Rule(statistic, "seed", margins, text, decide, cases, written=WRITTEN)


_COUNTS = (
    {"better": 4.0, "worse": 0.0, "factors": 4.0},
    {"better": 0.0, "worse": 2.0, "factors": 4.0},
    {"better": 1.0, "worse": 1.0, "factors": 4.0},
    {"better": 0.0, "worse": 0.0, "factors": 4.0},
)
CLAIMS = (
    Claim("10.degrades", "extension", "a RoPE model degrades past the length it was trained on",
          "Press et al. 2022; Chen et al. 2023", "perplexity rises past the trained length",
          ("tpi:lengths (plain, 1x and 2x)",), _degrades,
          _rule("per seed, plain's bits per byte at 2x over its 1x score", f"confirmed if lo95 > "
              f"{1 + TOLERANCE}; "
                f"refuted if hi95 < {1 + TOLERANCE}; else undecided", _decide_degrades,
                (({"lo": 1.5, "hi": 2.0}, "confirmed"), ({"lo": 0.99, "hi": 1.02}, "refuted"),
                 ({"lo": 1.0, "hi": 1.2}, "undecided")), {"tolerance": TOLERANCE})),
    Claim("10.pi", "extension", "interpolating positions (PI) harms a model less than extrapolating them",
          "Chen et al. 2023, after 1,000 fine-tuning steps", "PI + fine-tuning beats extrapolation",
          ("tpi:lengths (pi and plain, every factor)",), _pi,
          _rule("per seed and factor, PI's bits per byte minus plain's", "per factor better (hi95 < 0), "
              "worse "
                "(lo95 > 0) or open; confirmed if better at every factor; refuted if worse at some and "
                "better at "
                "none; refined if better at some and worse at others; else undecided", _decide_better,
                tuple(zip(_COUNTS, ("confirmed", "refuted", "refined", "undecided"), strict=True)), {})),
    Claim("10.ntk", "extension", "NTK-aware scaling extends a model without fine-tuning, and better than PI",
          "the NTK-aware scaling proposal, 2023", "extends without fine-tuning",
          ("tpi:lengths (ntk and pi, every factor)",), _ntk,
          _rule("per seed and factor, NTK's bits per byte minus PI's; NTK's 2x score over its 1x",
                f"confirmed if better than PI at every factor and within {TOLERANCE:.0%} of the 1x score at "
                f"2x (hi95); refined if better than PI only; refuted if worse at some factor and better at "
                f"none; else "
                "undecided", _decide_ntk,
                (({**_COUNTS[0], "ratio_hi": 1.01}, "confirmed"),
                 ({**_COUNTS[0], "ratio_hi": 1.2}, "refined"),
                 ({**_COUNTS[1], "ratio_hi": 1.2}, "refuted"),
                 ({**_COUNTS[3], "ratio_hi": 1.2}, "undecided")),
                {"tolerance": TOLERANCE})),
    Claim("10.yarn", "extension", "YaRN's per-band ramp and attention temperature beat PI and NTK",
          "Peng et al. 2023", "YaRN beats PI and NTK",
          ("tpi:lengths (yarn, pi, ntk, every factor)",), _yarn,
          _rule("per seed and factor, YaRN's bits per byte minus PI's and minus NTK's",
                "a factor is won if both intervals lie below 0 and lost if either lies above; confirmed if "
                "every factor is won; refuted if none is won and some is lost; refined if some are won; "
                "else undecided",
                _decide_yarn,
                (({"wins": 4.0, "loses": 0.0, "factors": 4.0}, "confirmed"),
                 ({"wins": 0.0, "loses": 2.0, "factors": 4.0}, "refuted"),
                 ({"wins": 3.0, "loses": 0.0, "factors": 4.0}, "refined"),
                 ({"wins": 0.0, "loses": 0.0, "factors": 4.0}, "undecided")), {})),
    Claim("10.self_extend", "extension", "Self-Extend extends a model's context without fine-tuning",
          "Jin et al. 2024 (LongLM)", "uses contexts past the trained length without fine-tuning",
          ("tpi:positions (self-extend and window, past byte 128)",), _self_extend,
          _rule(f"per seed at {VERDICT_FACTOR:g}x, the mean bits per byte of the positions past the trained "
                f"128 bytes, Self-Extend minus a sliding window of 128 bytes (which sees nothing past the "
                f"trained length)",
                f"confirmed if hi95 < -{MARGIN_BITS} (it uses the context the window cannot see); refuted if "
                f"lo95 > "
                f"-{MARGIN_BITS} (no better than the window); else undecided", _decide_self_extend,
                (({"lo": -0.3, "hi": -0.1}, "confirmed"), ({"lo": 0.02, "hi": 0.05}, "refuted"),
                 ({"lo": -0.05, "hi": 0.01}, "undecided")), {"margin_bits": MARGIN_BITS})),
    Claim("10.tpi", "extension", "a position-free model has no trained length to exceed",
          "the TPI notes", "no position, no trained length",
          ("tpi:lengths (tpi and tpi-decay, 1x and 16x)",), _tpi,
          _rule("per seed, each TPI model's bits per byte at 16x over its 1x score",
                f"confirmed if both TPI models stay within {TOLERANCE:.0%} (hi95); refuted if both go beyond "
                "(lo95); refined if one does each; else undecided", _decide_tpi,
                (({"within": 2.0, "beyond": 0.0, "models": 2.0}, "confirmed"),
                 ({"within": 0.0, "beyond": 2.0, "models": 2.0}, "refuted"),
                 ({"within": 1.0, "beyond": 1.0, "models": 2.0}, "refined"),
                 ({"within": 1.0, "beyond": 0.0, "models": 2.0}, "undecided")), {"tolerance": TOLERANCE})),
)  # fmt: skip
