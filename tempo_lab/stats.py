"""Statistics over a study's prompts: bootstrap confidence intervals and paired tests.

Prompts are the unit: a measurement with several rows per prompt (gaps, layers) is compared per condition,
and a paired test pairs the same prompt under two conditions.

Contents:
- :func:`bootstrap_ci`: mean with a percentile bootstrap interval (seeded).
- :func:`summarize`: one row per group: ``n``, ``mean``, ``lo``, ``hi``.
- :func:`paired_test`: Wilcoxon signed-rank test of ``a - b`` over prompts, the mean difference with its
  interval, and the matched-pairs rank-biserial correlation as effect size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

N_BOOT = 2000
LEVEL = 0.95


def bootstrap_ci(
    values: Sequence[float], *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean of ``values`` (NaNs dropped) and its percentile bootstrap interval."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise ValueError("no values to summarise (empty, or all NaN)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(x.mean()), float(lo), float(hi)


def summarize(table: pd.DataFrame, value: str, by: Sequence[str] = (), *, seed: int = 0) -> pd.DataFrame:
    """Mean of ``value`` with its 95% bootstrap interval, per group of ``by`` (booleans count as 0/1)."""
    if value not in table.columns:
        raise ValueError(f"no column {value!r}; columns: {list(table.columns)}")
    groups = table.groupby(list(by), sort=True) if by else [((), table)]
    rows = []
    for key, part in groups:
        mean, lo, hi = bootstrap_ci(part[value].astype(float), seed=seed)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key, strict=True)), "n": int(part[value].notna().sum()), "mean": mean,
                     "lo": lo, "hi": hi})  # fmt: skip
    return pd.DataFrame(rows)


def paired_test(a: Sequence[float], b: Sequence[float], *, seed: int = 0) -> dict:
    """Wilcoxon signed-rank test of the paired differences ``a - b`` (pairs with a NaN dropped).

    Returns ``n``, ``mean_diff`` with its bootstrap ``lo``/``hi``, ``relative`` (``mean_diff / mean(b)``),
    ``statistic``, ``p`` and ``effect``: the matched-pairs rank-biserial correlation (+1: every pair has
    ``a > b``; -1: every pair ``a < b``; zero differences left out).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.shape[0]} and {b.shape[0]}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    d = a - b
    if d.size < 2:
        raise ValueError(f"need at least two complete pairs, got {d.size}")
    mean, lo, hi = bootstrap_ci(d, seed=seed)
    nonzero = d[d != 0]
    if nonzero.size == 0:
        statistic, p, effect = 0.0, 1.0, 0.0
    else:
        res = stats.wilcoxon(nonzero)
        ranks = stats.rankdata(np.abs(nonzero))
        effect = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
        statistic, p = float(res.statistic), float(res.pvalue)
    base = float(b.mean())
    return {
        "n": int(d.size),
        "mean_diff": mean,
        "lo": lo,
        "hi": hi,
        "relative": mean / base if base else float("nan"),
        "statistic": statistic,
        "p": p,
        "effect": effect,
    }
