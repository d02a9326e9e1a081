"""What every study figure shares: seaborn's 95% bootstrap intervals with a fixed seed, and a histogram of
per-prompt values with its mean and interval.

The phenomena's own study figures live in their slices (``tempo_lab.phenomena.<name>.study.figure``); each
takes a study table and returns a matplotlib ``Figure`` built without pyplot, so the intervals and the PNGs
are the same on every run.

Contents: :data:`CI`, :func:`n_prompts`, :func:`ci_histogram`, :func:`compare_figure` (two models' claims).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tempo_lab import plots
from tempo_lab.studies import compare
from tempo_lab.studies.claims import Claim
from tempo_lab.studies.stats import bootstrap_ci

CI = {"errorbar": ("ci", 95), "n_boot": 1000, "seed": 0}


def n_prompts(table: pd.DataFrame) -> int:
    """How many prompts a study table covers."""
    return table["prompt"].nunique()


def ci_histogram(
    values: Sequence[float], title: str, xlabel: str
) -> tuple[tuple[float, float, float], Figure]:
    """A histogram of per-prompt ``values`` with their mean and 95% bootstrap interval (as a line and a band);
    returns ``((mean, lo, hi), figure)``."""
    interval = bootstrap_ci(values)
    fig, ax = plots.figure_with_axes(7, 3.2)
    ax.hist(np.asarray(values, dtype=float), bins=20, color="#4c72b0")
    mean, lo, hi = interval
    ax.axvline(mean, color="#c44e52", lw=2, label=f"mean {mean:.3f} [{lo:.3f}, {hi:.3f}]")
    ax.axvspan(lo, hi, color="#c44e52", alpha=0.2)
    ax.set(xlabel=xlabel, ylabel="prompts", title=title)
    ax.legend(fontsize=8)
    return interval, fig


def compare_figure(a: Any, b: Any, claims: Sequence[Claim], names: tuple[str, str] = ("a", "b")) -> Figure:
    """Each claim's headline, mean over prompts with its 95% bootstrap interval, for both models: one row of
    the chart per claim, the two models as two markers."""
    compare.check_same_prompts(a, b)
    shown = [c for c in claims if c.headline is not None]
    fig = plots.figure(8.5, 0.55 * len(shown) + 1.6)
    ax = fig.subplots()
    for k, (study, name, marker) in enumerate(zip((a, b), names, ("o", "s"), strict=True)):
        table = compare.headlines(study, shown)
        for row, claim in enumerate(shown):
            values = table[claim.text].dropna()
            if values.empty:
                continue
            mean, lo, hi = bootstrap_ci(values)
            y = row + (k - 0.5) * 0.3
            ax.errorbar(mean, y, xerr=[[mean - lo], [hi - mean]], fmt=marker, color=f"C{k}", capsize=3,
                        label=name if row == 0 else None)  # fmt: skip
    ax.set_yticks(np.arange(len(shown)), [c.headline[0] for c in shown])
    ax.invert_yaxis()
    ax.axvline(0, color="0.7", lw=0.8)
    title = f"Each claim's headline number over the same prompts:\n{names[0]} and {names[1]}"
    ax.set(xlabel="mean over prompts (95% CI)", ylabel="claim's headline number", title=title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    return fig
