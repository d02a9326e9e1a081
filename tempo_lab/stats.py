"""Statistics the claims' rules read: intervals and tests over a resampling unit that each rule names.

The unit is what is resampled: a prompt, a prompt kind (prompts of one kind move together), a seed, a block
of consecutive steps (neighbouring steps of one text are not independent), a sample, a window of text. A
measurement with several rows per unit is reduced to one number per unit first.

Contents:
- :func:`bootstrap_ci`: mean with a percentile bootstrap interval (seeded); :func:`cluster_bootstrap_ci`:
  the same with whole clusters (prompt kinds) resampled; :func:`block_bootstrap_ci`: with blocks of
  consecutive values resampled.
- :func:`paired_bootstrap_ci`: the mean paired difference with its bootstrap interval.
- :func:`t_interval`: mean with its Student-t interval (a few seeds or windows).
- :func:`wilson`: a proportion with its Wilson score interval; :func:`newcombe`: the difference of two
  independent proportions with Newcombe's hybrid (Wilson) interval.
- :func:`summarize`: one row per group: ``n``, ``mean``, ``lo``, ``hi``.
- :func:`paired_test`: Wilcoxon signed-rank test of ``a - b`` over units, the mean difference with its
  interval, and the matched-pairs rank-biserial correlation as effect size.
- :func:`tost`: the two one-sided t-tests of equivalence within a margin (absence of a difference is never
  read from a large p).
- :func:`mcnemar`: the exact McNemar test of two paired 0/1 outcomes.
- :func:`holm`: Holm's step-down adjustment of several p-values.
"""

from __future__ import annotations

import math
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


def _clean(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise ValueError("no values to summarise (empty, or all NaN)")
    return x


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def cluster_bootstrap_ci(
    values: Sequence[float],
    clusters: Sequence,
    *,
    weights: Sequence[float] | None = None,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean of ``values`` with a percentile interval from resampling whole
    ``clusters`` (one label per value, e.g. each prompt's kind) with replacement: what varies together is
    drawn together, so a clustered measurement does not look more certain than it is. ``weights``: a
    weighted mean ``sum(w v) / sum(w)`` instead (``v = a / b`` with ``w = b`` gives the ratio of means
    ``sum(a) / sum(b)``)."""
    _check_level(level)
    w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=float)
    frame = pd.DataFrame({"v": np.asarray(values, dtype=float), "w": w, "c": list(clusters)}).dropna()
    if frame.empty:
        raise ValueError("no values to summarise (empty, or all NaN)")
    if (frame.w < 0).any():
        raise ValueError("weights must be >= 0")
    groups = [g for _, g in frame.groupby("c", sort=True)]
    sums = np.array([(g.v * g.w).sum() for g in groups])
    totals = np.array([g.w.sum() for g in groups])
    picks = np.random.default_rng(seed).integers(0, len(groups), size=(n_boot, len(groups)))
    means = sums[picks].sum(1) / totals[picks].sum(1)
    lo, hi = np.nanquantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(sums.sum() / totals.sum()), float(lo), float(hi)


def block_bootstrap_ci(
    values: Sequence[float], block: int, *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean of a series of consecutive ``values`` (steps of one text) with a
    percentile interval from resampling non-overlapping blocks of ``block`` values (the last, shorter block
    included): neighbouring steps are correlated, and resampling single steps would ignore it."""
    _check_level(level)
    x = np.asarray(values, dtype=float)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block!r}")
    blocks = [b[~np.isnan(b)] for b in (x[i : i + block] for i in range(0, len(x), block))]
    blocks = [b for b in blocks if b.size]
    if not blocks:
        raise ValueError("no values to summarise (empty, or all NaN)")
    sums = np.array([b.sum() for b in blocks])
    counts = np.array([b.size for b in blocks])
    picks = np.random.default_rng(seed).integers(0, len(blocks), size=(n_boot, len(blocks)))
    means = sums[picks].sum(1) / counts[picks].sum(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(sums.sum() / counts.sum()), float(lo), float(hi)


def paired_bootstrap_ci(
    a: Sequence[float], b: Sequence[float], *, n_boot: int = 10_000, level: float = LEVEL, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, lo, hi)`` of the paired differences ``a - b`` (one pair per unit, e.g. the same sample under
    two methods), resampling the pairs (10,000 resamples and seed 0 by default, as the long-context rules
    were registered)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired values must have the same length, got {x.size} and {y.size}")
    return bootstrap_ci(x - y, n_boot=n_boot, level=level, seed=seed)


def t_interval(values: Sequence[float], *, level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: the mean of ``values`` with its Student-t interval (infinite for one value)."""
    _check_level(level)
    x = _clean(values)
    n = x.size
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def wilson(k: int, n: int, *, level: float = LEVEL) -> tuple[float, float, float]:
    """``(proportion, lo, hi)``: ``k`` successes of ``n`` with the Wilson score interval."""
    _check_level(level)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k!r}, n={n!r}")
    z = stats.norm.ppf((1 + level) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, *, level: float = LEVEL) -> tuple[float, float, float]:
    """``(d, lo, hi)``: ``d = k1/n1 - k2/n2`` of two independent proportions with Newcombe's hybrid score
    interval (method 10 of Newcombe 1998: the two Wilson intervals combined)."""
    p1, l1, u1 = wilson(k1, n1, level=level)
    p2, l2, u2 = wilson(k2, n2, level=level)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, lo, hi


def tost(differences: Sequence[float], margin: float, *, level: float = LEVEL) -> dict:
    """Two one-sided t-tests that the mean of the paired ``differences`` lies inside ``(-margin, margin)``:
    ``p`` is the larger of the two one-sided p-values (equivalent at ``1 - level`` when ``p < 1 - level``),
    with the mean and the ``1 - 2(1 - level)`` interval that goes with it (90% for 5% tests)."""
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin!r}")
    x = _clean(differences)
    n = x.size
    if n < 2:
        raise ValueError(f"need at least two differences, got {n}")
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(n))
    if se == 0:
        p = 0.0 if abs(mean) < margin else 1.0
    else:
        p = float(max(stats.t.sf((mean + margin) / se, n - 1), stats.t.sf((margin - mean) / se, n - 1)))
    half = float(stats.t.ppf(1 - (1 - level), n - 1) * se)
    return {"n": n, "mean": mean, "lo": mean - half, "hi": mean + half, "p": p, "margin": margin}


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> dict:
    """The exact McNemar test of paired 0/1 outcomes: ``b01`` (a 0, b 1) and ``b10`` discordant pairs, the
    two-sided binomial ``p`` of the smaller count among them, and ``n`` pairs."""
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if x.shape != y.shape:
        raise ValueError(f"paired outcomes must have the same length, got {x.size} and {y.size}")
    b01, b10 = int((~x & y).sum()), int((x & ~y).sum())
    m = b01 + b10
    p = 1.0 if m == 0 else float(min(1.0, 2 * stats.binom.cdf(min(b01, b10), m, 0.5)))
    return {"n": int(x.size), "b01": b01, "b10": b10, "p": p}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (NaN entries stay NaN and are not counted)."""
    p = np.asarray(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    out = np.full(p.shape, np.nan)
    m = valid.size
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()
