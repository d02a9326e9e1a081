"""Result tables for display: pivots and comparisons that the notebooks show.

Every function here reads results computed earlier (probe frames, sweeps, generator results) and returns a
``pandas.DataFrame``; none runs the model.

Contents:

- gap probe: :func:`mass_table`, :func:`layer_mass_table`, :func:`top_token_table`;
- fractional positions: :func:`top_token_curves`, :func:`compare_positions`;
- retroactive exploration: :func:`retro_heat_table`;
- parallel tokens: :func:`mode_sets_table`, :func:`mode_texts_table`, :func:`mode_mass_table`;
- compressed thoughts: :func:`paths_table`;
- pruning and hidden sets: :func:`pruning_table`, :func:`pruning_drift`, :func:`hidden_table`;
- any result frame: :func:`quote_tokens`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tempo_lab import checks
from tempo_lab.labels import plain_number, token_labels
from tempo_lab.metrics import later_mass
from tempo_lab.models import LoadedModel
from tempo_lab.probe import STRATEGIES

if TYPE_CHECKING:
    from tempo_lab.experiments import ModePair
    from tempo_lab.generators import PositionSweep, RetroactiveResult

# --- the gap probe ---


def mass_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Prompt mass as a table: one row per gap, one column per strategy (in the frame's strategy order)."""
    order = list(dict.fromkeys(frame["strategy"]))
    return frame.pivot(index="gap", columns="strategy", values="prompt_mass")[order]


def layer_mass_table(frame: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """Per-layer prompt mass of one strategy for a heatmap: one row per layer, one column per gap."""
    strategy = checks.choice("strategy", strategy, STRATEGIES)
    rows = frame[frame["strategy"] == strategy]
    if rows.empty:
        raise ValueError(f"the frame has no rows for strategy {strategy!r}")
    table = pd.DataFrame(np.stack(list(rows["layer_mass"])).T, columns=list(rows["gap"]))
    table.index.name = "layer"
    table.columns.name = "gap"
    return table


def top_token_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The top next token and its probability per (gap, strategy) of a gap probe, as ``"' was' 0.7886"``."""
    cells = frame.assign(top=[f"{t!r} {p:.4f}" for t, p in zip(frame["top1"], frame["p1"], strict=True)])
    order = list(dict.fromkeys(frame["strategy"]))
    return cells.pivot(index="gap", columns="strategy", values="top")[order]


# --- fractional positions ---


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


# --- retroactive exploration ---


def retro_heat_table(lm: LoadedModel, result: RetroactiveResult, k: int = 5) -> pd.DataFrame:
    """Probability of the tokens that matter over the explored gaps of a
    :class:`~tempo_lab.generators.retroactive.RetroactiveResult`: the ``k`` most probable at the first gap,
    plus every token that is the top prediction at some gap. One row per token (``repr`` text, ordered by
    their highest probability), one column per gap; ``attrs`` holds ``prompt``, ``token``, ``token_ids`` (one
    per row), and ``top1`` / ``top1_ids`` (the top token's text / id at each gap)."""
    k = checks.count("k", k)
    probs = result.probs.double().cpu()  # (P, vocab)
    ids = list(dict.fromkeys([*probs[0].topk(k).indices.tolist(), *probs.argmax(-1).tolist()]))
    sub = probs[:, ids].T.numpy()  # (tokens, P)
    order = np.argsort(-sub.max(axis=1), kind="stable")
    ordered = [ids[i] for i in order]
    table = pd.DataFrame(
        sub[order],
        index=pd.Index(token_labels(lm, ordered), name="token"),
        columns=pd.Index([plain_number(g) for g in result.gaps], name="gap"),
    )
    table.attrs.update(
        prompt=result.prompt,
        token=result.token,
        token_ids=ordered,
        top1=[lm.token_str(int(i)) for i in probs.argmax(-1)],
        top1_ids=[int(i) for i in probs.argmax(-1)],
    )
    return table


# --- parallel tokens: isolated vs visible ---


def mode_sets_table(pair: ModePair) -> pd.DataFrame:
    """The sets chosen by the free runs of both modes, step by step, and whether they are the same."""
    rows = []
    n = max(len(pair.isolated.steps), len(pair.visible.steps))
    for k in range(n):
        a = pair.isolated.steps[k] if k < len(pair.isolated.steps) else None
        b = pair.visible.steps[k] if k < len(pair.visible.steps) else None
        rows.append(
            {
                "step": k,
                "position": (a or b).position,
                "isolated": "/".join(repr(t) for t in a.tokens) if a else "",
                "visible": "/".join(repr(t) for t in b.tokens) if b else "",
                "same set": bool(a and b and sorted(a.token_ids) == sorted(b.token_ids)),
                "same order": bool(a and b and a.token_ids == b.token_ids),
            }
        )
    return pd.DataFrame(rows)


def mode_texts_table(pairs: Mapping[float, ModePair]) -> pd.DataFrame:
    """Per threshold: the text of the free isolated and visible runs, whether they are identical, and the
    first step whose sets differ (``<NA>`` when none does)."""
    rows = []
    for th, pair in pairs.items():
        sets = mode_sets_table(pair)
        differ = [int(s) for s, same in zip(sets["step"], sets["same set"], strict=True) if not same]
        rows.append(
            {
                "threshold": th,
                "isolated": pair.isolated.text,
                "visible": pair.visible.text,
                "identical": pair.isolated.text == pair.visible.text,
                "first differing step": differ[0] if differ else None,
            }
        )
    table = pd.DataFrame(rows)
    table["first differing step"] = table["first differing step"].astype("Int64")
    return table


def mode_mass_table(pair: ModePair, layer: int | None = None, head: int | None = None) -> pd.DataFrame:
    """:func:`~tempo_lab.metrics.later_mass` of a :class:`~tempo_lab.experiments.ModePair`, in both modes on
    the shared layout, with the relative change isolated vs visible."""
    iso = later_mass(pair.isolated, pair.isolated.attention_map(layer, head))
    vis = later_mass(pair.replay, pair.replay.attention_map(layer, head))
    table = iso.rename(columns={"mass": "isolated"})
    table["visible"] = vis["mass"].to_numpy()
    table["relative change"] = (table["isolated"] - table["visible"]) / table["visible"]
    return table


# --- compressed thoughts ---


def paths_table(runs: Mapping[Any, Any]) -> pd.DataFrame:
    """Every path of every gap: one row per (candidate, gap) with the path's text (candidate included),
    length and mean step probability."""
    rows = []
    for gap, res in runs.items():
        for rank, path in enumerate(res.paths):
            rows.append(
                {
                    "candidate": repr(path.candidate.token),
                    "p_candidate": path.candidate.prob,
                    "gap": gap,
                    "first_position": path.positions[0],
                    "path": repr(path.text),
                    "tokens": len(path.token_ids),
                    "mean_step_prob": sum(path.step_probs[1:]) / max(1, len(path.step_probs) - 1),
                    "rank": rank,
                }
            )
    frame = pd.DataFrame(rows)
    return frame.sort_values(["rank", "gap"], kind="stable").drop(columns="rank").reset_index(drop=True)


# --- any result frame ---


def quote_tokens(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a result table with token columns (``top1``, ``top2``, …) shown as ``repr`` (``' the'``), so
    leading spaces and newlines are visible."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(col, str) and col.startswith("top") and col[3:].isdigit():
            out[col] = [repr(v) if isinstance(v, str) else v for v in out[col]]
    return out


# --- pruning and hidden sets ---


def pruning_table(result) -> pd.DataFrame:
    """Per parallel set of a pruned run: its members, each member's share of the next steps' attention, and
    which were pruned (``<NA>``-free: sets never decided show empty shares)."""
    rows = []
    for k, s in enumerate(result.steps):
        if s.size < 2:
            continue
        shares = s.attention_scores or []
        rows.append({
            "step": k,
            "position": s.position,
            "members": "/".join(repr(t) for t in s.tokens),
            "attention shares": " / ".join(f"{x:.4f}" for x in shares),
            "pruned": "/".join(repr(t) for t, cut in zip(s.tokens, s.pruned or [], strict=False) if cut),
            "decided at step": s.pruned_at,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if len(table):
        table["decided at step"] = table["decided at step"].astype("Int64")
    return table


def pruning_drift(runs: Mapping[float, Any]) -> pd.DataFrame:
    """Per pruning threshold: members pruned, and how the mask-only run's continuation drifts from the exact
    recompute (same sets, the first step where they differ, and both texts without the pruned members)."""
    rows = []
    for th, (masked, rebuilt) in runs.items():
        a, b = [s.token_ids for s in masked.steps], [s.token_ids for s in rebuilt.steps]
        same = [x == y for x, y in zip(a, b, strict=False)]
        rows.append({
            "prune threshold": th,
            "members pruned": sum(sum(s.pruned) for s in masked.steps if s.pruned),
            "same sets": sum(same) / max(len(a), len(b)),
            "first differing step": next((k for k, s in enumerate(same) if not s), None),
            "mask-only": masked.pruned_text,
            "recompute": rebuilt.pruned_text,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    table["first differing step"] = table["first differing step"].astype("Int64")
    return table


def hidden_table(runs: Mapping[str, Any]) -> pd.DataFrame:
    """Per ``later`` mode: the free run's text and parallel sets, and, on the replayed sets, the mean
    attention later tokens pay to each parallel set (sets of two or more members)."""
    rows = []
    for later, (free, replay) in runs.items():
        mass = later_mass(replay, replay.attention_map())
        sizes = {k: s.size for k, s in enumerate(replay.steps)}
        parallel = mass[[sizes[k] >= 2 for k in mass["step"]]]["mass"]
        rows.append({
            "later": later,
            "text": free.text,
            "parallel sets": sum(s.size >= 2 for s in free.steps),
            "later attention on parallel sets": float(parallel.mean()) if len(parallel) else None,
        })  # fmt: skip
    return pd.DataFrame(rows)
