"""Fractional positions (notebook 02): the prompt's last token moved to a position between two integers.

Driver: :meth:`RetroactivePositionGenerator.sweep <tempo_lab.generators.RetroactivePositionGenerator.sweep>`
(a :class:`~tempo_lab.generators.PositionSweep`). Here:

- :func:`neighbour_divergence`, :func:`top_token_curves`, :func:`compare_positions`: its tables;
- :func:`position_sweep_plot`: notebook 02's figure;
- :func:`render`: one position against its integer neighbours, shared by :func:`view` (replay) and
  :func:`explorer` (live: a cached step of three branches on the prompt's held prefix);
- :func:`measure` / :func:`single_rows`: the half step over a prompt set, batched and one prompt at a time;
  :func:`figure` and :data:`CLAIMS` for the study.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from tempo_lab import plots
from tempo_lab.generators import PositionSweep, RetroactivePositionGenerator
from tempo_lab.generators.retroactive import TOP_KEPT
from tempo_lab.labels import token_label
from tempo_lab.live.session import LiveSession
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena.base import Phenomenon
from tempo_lab.studies.batching import placed
from tempo_lab.studies.claims import Claim, Evidence, ci, fmt_ci
from tempo_lab.studies.conditions import Batch, Conditions
from tempo_lab.studies.plots import CI, n_prompts
from tempo_lab.summaries import divergences, tv
from tempo_lab.views import Control, Rendered, View, live_view

NAME, TITLE = "fractional", "Fractional"

# --- tables and figure ---


def neighbour_divergence(sweep) -> pd.DataFrame:
    """Per swept position of a :class:`~tempo_lab.generators.retroactive.PositionSweep`: total variation and
    ``KL(p || p_neighbour)`` to the integer positions below and above, to the natural position, and the top
    token there.

    Columns: ``position``, ``floor``, ``ceil``, ``tv_floor``, ``tv_ceil``, ``kl_floor``, ``kl_ceil``,
    ``tv_natural``, ``max_abs_diff`` (largest single-token probability change against the natural position),
    ``top1``, ``p1``. At an integer position ``floor == ceil`` and both divergences are 0.
    """
    probs = sweep.probs.double()
    nat = probs[sweep.index(sweep.natural)]
    rows = []
    for i, p in enumerate(sweep.positions):
        lo, hi = float(math.floor(p)), float(math.ceil(p))
        tv_lo, kl_lo = divergences(probs[i : i + 1], probs[sweep.index(lo)])
        tv_hi, kl_hi = divergences(probs[i : i + 1], probs[sweep.index(hi)])
        tv_nat, _ = divergences(probs[i : i + 1], nat)
        top_p, top_i = probs[i].max(-1)
        rows.append(
            {
                "position": p,
                "floor": lo,
                "ceil": hi,
                "tv_floor": float(tv_lo[0]),
                "tv_ceil": float(tv_hi[0]),
                "kl_floor": float(kl_lo[0]),
                "kl_ceil": float(kl_hi[0]),
                "tv_natural": float(tv_nat[0]),
                "max_abs_diff": float((probs[i] - nat).abs().max()),
                "top1": repr(sweep.token_text[int(top_i)]),
                "p1": float(top_p),
            }
        )
    return pd.DataFrame(rows)


def top_token_curves(sweep: PositionSweep, k: int = 5) -> pd.DataFrame:
    """Probabilities of the ``k`` most probable tokens at the natural position, at every swept position.

    One row per position (index ``position``), one column per token (its text, ``repr``-quoted).
    """
    ids = sweep.top_ids(k)
    table = pd.DataFrame(
        sweep.probs[:, ids].double().numpy(),
        index=pd.Index(sweep.positions, name="position"),
        columns=[repr(sweep.token_text[i]) for i in ids],
    )
    table.columns.name = "token"
    return table


def compare_positions(sweep: PositionSweep, positions: Sequence[float], k: int = 5) -> pd.DataFrame:
    """Probabilities of the ``k`` most probable tokens at the natural position, with the last token at each of
    ``positions`` (swept ones): one row per token (``repr`` text), one column per position, plus a final row
    ``max |diff| vs natural`` (the largest change of any single token's probability, over the whole
    vocabulary).
    """
    ids = sweep.top_ids(k)
    nat = sweep.probs[sweep.index(sweep.natural)].double()
    cols = {}
    for p in positions:
        row = sweep.probs[sweep.index(p)].double()
        cols[f"{p:g}"] = [float(row[i]) for i in ids] + [float((row - nat).abs().max())]
    table = pd.DataFrame(cols, index=[repr(sweep.token_text[i]) for i in ids] + ["max |diff| vs natural"])
    table.columns.name = "position"
    return table


def position_sweep_plot(divergence: pd.DataFrame, curves: pd.DataFrame, natural: float, token: str) -> Figure:
    """Left: total variation to the integer position below and above; right: top-token probability curves."""
    fig = plots.figure(11, 4.2)
    left, right = fig.subplots(1, 2)
    x = divergence["position"]
    left.plot(x, divergence["tv_floor"], label="TV to floor(position)", color="#1f77b4")
    left.plot(x, divergence["tv_ceil"], label="TV to ceil(position)", color="#ff7f0e")
    left.plot(
        x, divergence["tv_natural"], label=f"TV to natural position {natural:g}", color="#7f7f7f", ls="--"
    )
    for p in sorted({float(v) for v in divergence["floor"]} | {float(v) for v in divergence["ceil"]}):
        left.axvline(p, color="#dddddd", lw=0.8, zorder=0)
    left.axvline(natural, color="k", lw=0.8, ls=":")
    left.set_xlabel(f"position of the last token {token_label(token)}")
    left.set_ylabel("total variation distance")
    left.set_title("Distribution shift vs integer neighbours")
    left.legend(fontsize=8)
    for col in curves.columns:
        right.plot(curves.index, curves[col], label=col, marker=".", ms=3)
    right.axvline(natural, color="k", lw=0.8, ls=":")
    right.set_xlabel(f"position of the last token {token_label(token)}")
    right.set_ylabel("next-token probability")
    right.set_title(f"Top-{curves.shape[1]} tokens at position {natural:g}, across positions")
    right.legend(fontsize=8, title="token", title_fontsize=8)
    return fig


# --- the render both views share ---


def render(sweep: PositionSweep, position: float, top_k: int) -> Rendered:
    """The ``top_k`` tokens with the last token at ``position`` (a swept one), against its integer
    neighbours."""
    i = sweep.index(position)
    ids = sweep.top_ids(top_k, position)
    lo, hi = float(math.floor(position)), float(math.ceil(position))
    probs = sweep.probs.double()
    p, p_lo, p_hi = probs[i], probs[sweep.index(lo)], probs[sweep.index(hi)]
    tv_lo, tv_hi = tv(p, p_lo), tv(p, p_hi)
    tokens = [sweep.token_text[t] for t in ids]
    text = (
        f"position {position:g}: top {tokens[0]!r} {float(p[ids[0]]):.4f}; TV to {lo:g} = {tv_lo:.4f}, "
        f"TV to {hi:g} = {tv_hi:.4f}"
    )
    fig, (ax,) = plots.live_figure(8, 3.6)
    x = np.arange(len(ids))
    for k, (label, row, color) in enumerate([(f"position {lo:g}", p_lo, "#1f77b4"),
                                             (f"position {position:g}", p, "#d62728"),
                                             (f"position {hi:g}", p_hi, "#ff7f0e")]):  # fmt: skip
        ax.bar(x + (k - 1) * 0.27, [float(row[t]) for t in ids], 0.27, label=label, color=color)
    ax.set_xticks(x, [token_label(t) for t in tokens])
    ax.set_xlabel("next token (top-k at the chosen position)")
    ax.set_ylabel("probability")
    ax.set_title(f"{sweep.token!r} at position {position:g} vs its integer neighbours")
    ax.legend(fontsize=8)
    top = [[t, round(float(p[i_]), 6)] for t, i_ in zip(tokens, ids, strict=True)]
    state = {"position": position, "top": top, "tv_floor": round(tv_lo, 6), "tv_ceil": round(tv_hi, 6)}
    return Rendered(text, fig, state)


def view(sweep: PositionSweep) -> View:
    """Notebook 02's replay: a swept position (slider) and how many top tokens to show."""
    positions = [float(p) for p in sweep.positions]
    first = min(positions, key=lambda q: (abs(q - (sweep.natural + 0.5)), q))
    return View(NAME, lambda position, top_k: render(sweep, position, top_k), {
        "position": Control(first, options=positions, description="position"),
        "top_k": Control(5, 1, TOP_KEPT, 1, description="top-k"),
    }, title=TITLE)  # fmt: skip


def explorer(session: LiveSession) -> View:
    """The live half step: type a prompt, move its last token by a (fractional) shift from where it stands."""
    gen = RetroactivePositionGenerator(session.lm)
    controls = {
        "prompt": Control("The answer is", kind="text", description="prompt"),
        "shift": Control(-0.5, -1.0, 5.0, 0.1, description="last token moved by"),
        "top_k": Control(5, 1, TOP_KEPT, 1, description="top-k"),
    }

    def update(values, progress) -> Rendered:
        prefix = session.use_prompt(values["prompt"], drop_last=True)
        position = round(prefix.length + float(values["shift"]), 6)
        sweep = gen.sweep(values["prompt"], [position], prefix=prefix)
        return render(sweep, position, int(values["top_k"]))

    return live_view(NAME, TITLE, controls, update, note=session.note)


# --- over a prompt set ---


def measure(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt: its last token at ``T - 1.5`` (between its integer neighbours ``T - 2`` and ``T - 1``).
    ``tv_low`` / ``tv_high``: total variation of the next-token distribution against each neighbour's;
    ``tv_neighbours``: between the neighbours; ``between``: both TVs at most ``tv_neighbours``."""
    prefixes = [ids[:, :-1] for _, ids in batch]

    def make(b: int, _: torch.Tensor) -> tuple[list, list]:
        t = batch[b][1].shape[1]
        return [int(batch[b][1][0, -1])] * 3, [t - 2.0, t - 1.5, t - 1.0]

    rows = []
    for (i, _), p in zip(batch, placed(lm, prefixes, make), strict=True):
        low, mid, high = p
        tv_low, tv_high, tv_n = tv(mid, low), tv(mid, high), tv(low, high)
        rows.append({
            "prompt": i, "tv_low": tv_low, "tv_high": tv_high, "tv_neighbours": tv_n,
            "between": bool(tv_low <= tv_n and tv_high <= tv_n),
            "top1_changed": bool(mid.argmax() != high.argmax()),
        })  # fmt: skip
    return rows


def single_rows(lm: LoadedModel, i: int, ids: torch.Tensor, cond: Conditions) -> list[dict]:
    """The row of :func:`measure` for prompt ``i`` alone, through the retroactive generator."""
    retro = RetroactivePositionGenerator(lm)
    t = ids.shape[1]
    low, mid, high = torch.softmax(
        retro.place(retro.core.prefill(ids[:, :-1]), int(ids[0, -1]), [t - 2.0, t - 1.5, t - 1.0]).float(), -1
    )
    tv_low, tv_high, tv_n = tv(mid, low), tv(mid, high), tv(low, high)
    return [{"prompt": i, "tv_low": tv_low, "tv_high": tv_high, "tv_neighbours": tv_n,
             "between": tv_low <= tv_n and tv_high <= tv_n,
             "top1_changed": bool(mid.argmax() != high.argmax())}]  # fmt: skip


def figure(table: pd.DataFrame) -> Figure:
    """Total variation of the next-token distribution at ``k + 0.5`` against each integer neighbour."""
    long = table.melt(id_vars=["prompt"], value_vars=["tv_low", "tv_high", "tv_neighbours"], var_name="pair",
                      value_name="tv")  # fmt: skip
    long["pair"] = long["pair"].map(
        {"tv_low": "k+0.5 vs k", "tv_high": "k+0.5 vs k+1 (natural)", "tv_neighbours": "k vs k+1"}
    )
    fig = plots.figure(6, 3.4)
    ax = fig.subplots()
    sns.barplot(long, x="pair", y="tv", ax=ax, color="#4c72b0", **CI)
    ax.set(xlabel="positions compared (last prompt token)", ylabel="total variation",
           title=f"A half-step position over {n_prompts(table)} prompts (95% CI)")  # fmt: skip
    return fig


def _claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    frac = study.table(NAME)
    tv_, changed, between = ci(frac.tv_high), ci(frac.top1_changed), ci(frac.between)
    return Evidence(
        {"tv_lo": tv_[1]},
        f"TV {single['02']['tv_half_step_forward']:.4f} against the natural position",
        f"TV {fmt_ci(*tv_)}; top-1 changes in {fmt_ci(*changed)}; "
        f"between its neighbours in {fmt_ci(*between)}",
    )


CLAIMS = (
    Claim(NAME, "a fractional position (k+0.5) shifts the next-token distribution",
          "max probability change 0.0263",
          "confirmed if the TV interval excludes 0",
          ("study:fractional.tv_high", "notebook:02.tv_half_step_forward"),
          _claim, lambda v: "confirmed" if v["tv_lo"] > 0 else "refuted",
          ("TV at k+0.5 against the natural position", lambda s: s.table(NAME).set_index("prompt").tv_high)),
)  # fmt: skip

PHENOMENON = Phenomenon(
    NAME, "02", TITLE, measure=measure, single=single_rows, explorer=explorer, claims=CLAIMS
)
