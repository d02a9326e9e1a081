"""Compressed thoughts over a prompt set: the batched measurement, its single-prompt twin, the study's
figure, and the seed claim it decides ("gap 5 is the best balance").

Contents: :func:`measure`, :func:`single_rows`, :func:`figure`, :data:`CLAIMS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from tempo_lab.claims import Claim, Evidence, ci, fmt_ci
from tempo_lab.generators import CompressedResult, CompressedThoughtGenerator
from tempo_lab.generators.lockstep import Lockstep
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena.compressed.probe import NAME, path_agreement
from tempo_lab.phenomena.conditions import Batch, Conditions
from tempo_lab.summaries import repetition


def _rows(i: int, per_gap: Mapping[float, CompressedResult]) -> list[dict]:
    """One prompt's rows: per gap, the paths' agreement with the same candidates' gap-0 paths, and their
    repetition."""
    agree = path_agreement(per_gap, reference_gap=0)
    return [{"prompt": i, "gap": float(g), "agreement": float(agree[f"same@{g:g}"].mean()),
             "repetition": sum(repetition(p.token_ids) for p in res.paths) / len(res.paths),
             "candidates": len(res.paths)} for g, res in per_gap.items()]  # fmt: skip


def measure(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt x gap: compressed-thought paths; ``agreement``: mean over candidates of the share of path
    slots holding the token of the same candidate's gap-0 path; ``repetition``: mean share of repeated tokens
    in a path (degeneration)."""
    gen = CompressedThoughtGenerator(lm)
    gaps = list(cond.compressed_gaps)
    opts = {"threshold": cond.compressed_threshold, "max_candidates": cond.compressed_candidates,
            "path_length": cond.path_length}  # fmt: skip
    lock = Lockstep(gen.core)
    logits = lock.prefill([ids for _, ids in batch])
    runs, policies, rows_of = [], [], []
    for b, (_, ids) in enumerate(batch):
        for g in gaps:
            run = gen.plan(ids, gap=g, **opts)
            policy = run.policy(logits[b])
            runs.append(run)
            policies.append(policy)
            rows_of += [b] * policy.n
    lock.expand(rows_of)
    lock.run(policies, cond.path_length, rows=[p.n for p in policies])
    results = [r.result(p) for r, p in zip(runs, policies, strict=True)]
    rows = []
    for b, (i, _) in enumerate(batch):
        per_gap = dict(zip(gaps, results[b * len(gaps) : (b + 1) * len(gaps)], strict=True))
        rows += _rows(i, per_gap)
    return rows


def single_rows(lm: LoadedModel, i: int, ids: torch.Tensor, cond: Conditions) -> list[dict]:
    """The rows of :func:`measure` for prompt ``i`` alone, through the compressed-thought generator."""
    gen = CompressedThoughtGenerator(lm)
    opts = {"threshold": cond.compressed_threshold, "max_candidates": cond.compressed_candidates,
            "path_length": cond.path_length, "progress": False}  # fmt: skip
    return _rows(i, {g: gen.generate(ids, gap=g, **opts) for g in cond.compressed_gaps})


def _claim(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    comp = study.table(NAME)
    cg = sorted(comp.gap.unique())
    agree = {g: ci(comp[comp.gap == g].agreement) for g in cg[1:]}
    rep = {g: ci(comp[comp.gap == g].repetition) for g in (cg[0], cg[-1])}
    one = single["05"]["mean_agreement_with_first_gap"]
    return Evidence(
        {},
        f"agreement with gap 0: {one['5']:.4f} at 5, {one['20']:.4f} at 20",
        "agreement "
        + ", ".join(f"{fmt_ci(*v)} at {g:g}" for g, v in agree.items())
        + f"; repetition {fmt_ci(*rep[cg[0]])} at 0, {fmt_ci(*rep[cg[-1]])} at {cg[-1]:g}",
    )


def _far_agreement(study: Any) -> pd.Series:
    comp = study.table(NAME)
    return comp[comp.gap == comp.gap.max()].set_index("prompt").agreement


CLAIMS = (
    Claim("05.tradeoff", NAME, "the gap trades agreement with the gap-0 paths against repetition",
          "notebook 05: gap 5 chosen by eye on one prompt", "gap 5 chosen by eye (one prompt)",
          ("study:compressed.agreement", "study:compressed.repetition",
           "notebook:05.mean_agreement_with_first_gap"),
          _claim, None, headline=("agreement with gap 0 at the largest gap", _far_agreement)),
)  # fmt: skip
