"""Compressed thoughts' runs and tables: the runs notebook 05 compares (over gaps; seed 000's combined
exploration) and how their paths agree.

Contents: :func:`compressed_runs`, :func:`combined_exploration`, :func:`paths_table`, :func:`path_agreement`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from tempo_lab.generators import CompressedResult, CompressedThoughtGenerator, RetroactivePositionGenerator
from tempo_lab.labels import plain_number
from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.plumbing import checks
from tempo_lab.summaries import tv

NAME, TITLE = "compressed", "Compressed"


def compressed_runs(
    lm: LoadedModel, prompt: str, gaps: Sequence[float], **options: Any
) -> dict[int | float, CompressedResult]:
    """Compressed-thought runs of ``prompt`` at each gap, with the same ``options`` (``threshold``,
    ``max_candidates``, ``path_length``, …: see :meth:`CompressedThoughtGenerator.generate`) and no progress
    bar. The candidates are the same at every gap (they come from the prompt's own next-token distribution);
    the paths differ. Keys are the gaps (``int`` when integral)."""
    gaps = [checks.nonnegative(f"gaps[{i}]", g) for i, g in enumerate(checks.as_list(gaps))]
    if not gaps:
        raise ValueError("give at least one gap")
    gen = CompressedThoughtGenerator(lm)
    return {plain_number(g): gen.generate(prompt, gap=g, progress=False, **options) for g in gaps}


def combined_exploration(
    lm: LoadedModel, prompt: str, gap: float | str, regaps: Sequence[float], **options: Any
) -> tuple[CompressedResult, pd.DataFrame]:

    """Seed 000's combined approach: compressed-thought paths at ``gap``, then each path's first token (its
    candidate) re-explored retroactively at every gap of ``regaps``, all in **one** batched cached step over
    the shared prompt prefix (``candidates x regaps`` branches; the prefix is prefilled once for both).

    Returns the compressed result and one row per (candidate, regap): ``position``, the top next token there
    (``top1``, ``p1``), ``tv_vs_path``: the total variation from the distribution that chose the path's
    second token (the candidate at the path's own gap), and ``continues_path``: whether that top token is the
    path's second token. ``options`` go to :meth:`CompressedThoughtGenerator.generate`.
    """
    regaps = [checks.nonnegative(f"regaps[{i}]", g) for i, g in enumerate(checks.as_list(regaps))]
    if not regaps:
        raise ValueError("give at least one regap")
    gen, retro = CompressedThoughtGenerator(lm), RetroactivePositionGenerator(lm)
    _, ids = lm.encode_prompt(prompt)
    prefix = gen.core.prefill(ids)
    res = gen.generate(prompt, gap=gap, progress=False, keep_logits=True, prefix=prefix, **options)
    t = prefix.length
    pairs = [(path, g) for path in res.paths for g in regaps]
    logits = retro.place(prefix, [p.candidate.token_id for p, _ in pairs], [t + g for _, g in pairs])
    probs = torch.softmax(widened(logits), -1)  # (candidates * regaps, vocab)
    rows = []
    for (path, g), row in zip(pairs, probs, strict=True):
        own = torch.softmax(path.logits[1], -1) if len(path.token_ids) > 1 else row
        tv_ = tv(row, own)
        top = int(row.argmax())
        rows.append({
            "candidate": repr(path.candidate.token),
            "path_gap": res.gap,
            "regap": plain_number(g),
            "position": t + g,
            "top1": repr(lm.token_str(top)),
            "p1": float(row[top]),
            "tv_vs_path": tv_,
            "continues_path": len(path.token_ids) > 1 and top == path.token_ids[1],
        })  # fmt: skip
    return res, pd.DataFrame(rows)


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


def path_agreement(runs: Mapping[Any, CompressedResult], reference_gap: Any | None = None) -> pd.DataFrame:
    """How each candidate's path at each gap agrees with its path at ``reference_gap`` (default: the first
    gap): the fraction of path slots holding the same token, and the first slot where they differ (``None``
    when identical). ``runs``: gap → CompressedResult. One row per candidate, one column pair per gap."""
    gaps = list(runs)
    ref = runs[gaps[0] if reference_gap is None else reference_gap]
    rows = []
    for k, base in enumerate(ref.paths):
        row: dict[str, Any] = {"candidate": repr(base.candidate.token)}
        for gap in gaps:
            other = runs[gap].paths[k]
            if other.candidate.token_id != base.candidate.token_id:
                raise ValueError(f"gap {gap} has different candidates than the reference gap")
            n = max(len(base.token_ids), len(other.token_ids))
            same = [
                i < len(base.token_ids)
                and i < len(other.token_ids)
                and base.token_ids[i] == other.token_ids[i]
                for i in range(n)
            ]
            row[f"same@{gap:g}"] = sum(same) / n
            row[f"differs from@{gap:g}"] = next((i for i, s in enumerate(same) if not s), None)
        rows.append(row)
    table = pd.DataFrame(rows)
    for gap in gaps:
        table[f"differs from@{gap:g}"] = table[f"differs from@{gap:g}"].astype("Int64")
    return table
