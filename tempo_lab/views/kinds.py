"""What every phenomenon's view over a stored study shares: a prompt kind and one condition chosen, the
histogram of a per-prompt value with its interval.

Contents: :func:`kind_view`, :func:`kind_rows`, :func:`histogram`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from tempo_lab.claims import fmt_ci
from tempo_lab.labels import plain
from tempo_lab.plots import ci_histogram
from tempo_lab.views.base import Control, Rendered, View

Say = Callable[[str, Any, pd.DataFrame, str], tuple[str, dict[str, Any]]]


def kind_rows(table: pd.DataFrame, kind: str, kinds: Sequence[str]) -> pd.DataFrame:
    """The rows of prompt kind ``kind`` (``"all"``: every row); ``ValueError`` for a kind not in the study."""
    if kind != "all" and kind not in kinds:
        raise ValueError(f"prompt kind {kind!r} is not in the study; choose 'all' or one of {list(kinds)}")
    return table if kind == "all" else table[table.kind == kind]


def histogram(values: Sequence[float], title: str, xlabel: str) -> tuple[str, Figure]:
    """A histogram of per-prompt values with its mean and 95% interval, and the interval as text."""
    interval, fig = ci_histogram(values, title, xlabel)
    return fmt_ci(*interval), fig


def kind_view(
    name: str,
    title: str,
    table: pd.DataFrame,
    by: str,
    value: str,
    label: Callable[[str, Any], tuple[str, str]],
    say: Say,
    default: int = -1,
) -> View:
    """A replay over a study ``table``: a prompt kind (or ``"all"``) and one value of the condition column
    ``by`` (its ``default``-th value first), shown as the histogram of ``value`` over those prompts.
    ``label(kind, condition) -> (figure title, x label)``; ``say(kind, condition, rows, interval) -> (text,
    state)``."""
    kinds = sorted(set(table.kind))
    options = plain(sorted(table[by].unique()))

    def show(kind: str, **chosen: Any) -> Rendered:
        condition = chosen[by]
        rows = kind_rows(table, kind, kinds)
        rows = rows[rows[by] == condition].dropna(subset=[value])
        if rows.empty:
            raise ValueError(f"{by} {condition} was not run; choose one of {options}")
        interval, fig = histogram(rows[value], *label(kind, condition))
        text, state = say(kind, condition, rows, interval)
        return Rendered(text, fig, {"prompts": len(rows), **state})

    return View(name, show, {
        "kind": Control("all", options=["all", *kinds], description="prompt kind"),
        by: Control(options[default], options=options, description=by),
    }, title=title)  # fmt: skip
