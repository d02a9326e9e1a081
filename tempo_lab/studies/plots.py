"""Seaborn figures of a study's tables: every point and bar carries its 95% bootstrap interval over prompts.

Each function takes a study table (:meth:`~tempo_lab.studies.Study.table`) and returns a matplotlib
``Figure`` built without pyplot (:func:`tempo_lab.plots.figure`); seaborn draws on its axes with a fixed seed,
so the intervals are the same on every run.

Contents: :func:`dropout`, :func:`fractional`, :func:`retroactive`, :func:`modes`, :func:`compressed`,
:func:`tempo`, :func:`by_kind`.
"""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from tempo_lab.plots import figure

CI = {"errorbar": ("ci", 95), "n_boot": 1000, "seed": 0}


def _n(table: pd.DataFrame) -> int:
    return table["prompt"].nunique()


def dropout(table: pd.DataFrame) -> Figure:
    """Attention mass of the token after the gap on the prompt, per gap and mask strategy."""
    fig = figure(7, 3.6)
    ax = fig.subplots()
    sns.pointplot(table, x="gap", y="prompt_mass", hue="strategy", ax=ax, dodge=0.2, **CI)
    ax.set(xlabel="gap (positions skipped)", ylabel="attention on the prompt (mean over layers, heads)",
           title=f"Gap dropout over {_n(table)} prompts (95% CI)", ylim=(-0.02, 1.02))  # fmt: skip
    return fig


def fractional(table: pd.DataFrame) -> Figure:
    """Total variation of the next-token distribution at ``k + 0.5`` against each integer neighbour."""
    long = table.melt(id_vars=["prompt"], value_vars=["tv_low", "tv_high", "tv_neighbours"], var_name="pair",
                      value_name="tv")  # fmt: skip
    long["pair"] = long["pair"].map(
        {"tv_low": "k+0.5 vs k", "tv_high": "k+0.5 vs k+1 (natural)", "tv_neighbours": "k vs k+1"}
    )
    fig = figure(6, 3.4)
    ax = fig.subplots()
    sns.barplot(long, x="pair", y="tv", ax=ax, color="#4c72b0", **CI)
    ax.set(xlabel="positions compared (last prompt token)", ylabel="total variation",
           title=f"A half-step position over {_n(table)} prompts (95% CI)")  # fmt: skip
    return fig


def retroactive(table: pd.DataFrame) -> Figure:
    """TV against gap 0 and top-1 stability of the greedy next token re-placed at each gap."""
    fig = figure(9, 3.4)
    left, right = fig.subplots(1, 2)
    sns.pointplot(table, x="gap", y="tv", ax=left, color="#c44e52", **CI)
    left.set(xlabel="gap", ylabel="total variation vs gap 0", title="Distribution shift")
    sns.pointplot(table.assign(same=table["top1_same"].astype(float)), x="gap", y="same", ax=right,
                  color="#55a868", **CI)  # fmt: skip
    right.set(xlabel="gap", ylabel="share with the gap-0 top token", title="Top-1 stability", ylim=(0, 1.05))
    fig.suptitle(f"Retroactive re-positioning over {_n(table)} prompts (95% CI)")
    return fig


def modes(table: pd.DataFrame) -> Figure:
    """Later tokens' attention on parallel sets in each intra-set mode, per prompt kind."""
    fig = figure(9, 3.6)
    ax = fig.subplots()
    sns.barplot(table, x="kind", y="later_mass", hue="mode", ax=ax, **CI)
    ax.set(xlabel="prompt kind", ylabel="later attention on a parallel set",
           title=f"Isolated vs visible sets over {table.dropna(subset=['later_mass'])['prompt'].nunique()} "
                 "prompts with parallel sets (95% CI)")  # fmt: skip
    ax.tick_params(axis="x", rotation=30)
    return fig


def compressed(table: pd.DataFrame) -> Figure:
    """Path agreement with gap 0 and repetition (degeneration) against the gap."""
    fig = figure(9, 3.4)
    left, right = fig.subplots(1, 2)
    sns.pointplot(table, x="gap", y="agreement", ax=left, color="#4c72b0", **CI)
    left.set(xlabel="gap", ylabel="share of path tokens as at gap 0", title="Agreement", ylim=(0, 1.05))
    sns.pointplot(table, x="gap", y="repetition", ax=right, color="#dd8452", **CI)
    right.set(xlabel="gap", ylabel="share of repeated tokens in a path", title="Degeneration")
    fig.suptitle(f"Compressed thoughts over {_n(table)} prompts (95% CI)")
    return fig


def tempo(table: pd.DataFrame) -> Figure:
    """Mean TEMPO set size against the threshold, per prompt kind."""
    fig = figure(8, 3.6)
    ax = fig.subplots()
    sns.pointplot(table, x="threshold", y="mean_set_size", hue="kind", ax=ax, dodge=0.4, **CI)
    ax.set(xlabel="selection threshold", ylabel="mean set size",
           title=f"TEMPO set sizes over {_n(table)} prompts (95% CI)")  # fmt: skip
    ax.legend(fontsize=7, ncols=3, title="kind")
    return fig


def by_kind(table: pd.DataFrame, value: str, title: str) -> Figure:
    """One value per prompt kind, with its interval: the view behind the notebook's sliders."""
    fig = figure(7, 3.2)
    ax = fig.subplots()
    data = table.assign(**{value: table[value].astype(float)})
    sns.barplot(data, x="kind", y=value, ax=ax, color="#8172b3", **CI)
    ax.set(xlabel="prompt kind", ylabel=value.replace("_", " "), title=title)
    ax.tick_params(axis="x", rotation=30)
    return fig
