"""The figure of two models' studies of the same prompts, claim by claim (what the study figures share is
:mod:`tempo_lab.plots`; each phenomenon's own study figure is its slice's ``display.figure``).

Contents: :func:`compare_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from tempo_lab import plots
from tempo_lab.claims import Claim
from tempo_lab.stats import bootstrap_ci
from tempo_lab.studies import compare


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
