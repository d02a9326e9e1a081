"""What every study figure shares: seaborn's 95% bootstrap intervals with a fixed seed, and a histogram of
per-prompt values with its mean and interval.

The phenomena's own study figures live in their slices (``tempo_lab.phenomena.<name>.study.figure``); each
takes a study table and returns a matplotlib ``Figure`` built without pyplot, so the intervals and the PNGs
are the same on every run.

Contents: :data:`CI`, :func:`n_prompts`, :func:`ci_histogram`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tempo_lab import plots
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
