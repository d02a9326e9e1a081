"""The study's measurements one prompt at a time, through the single-prompt generators and probe.

This is the independent path the batched measurements (:mod:`tempo_lab.studies.measures`) are checked
against in the tests, and the loop they are timed against in ``benchmarks/study.py``: the same rows, from
:func:`tempo_lab.probe.gap_probe`, :meth:`RetroactivePositionGenerator.place`,
:meth:`ParallelTokenGenerator.generate` (attention captured step by step) and
:meth:`CompressedThoughtGenerator.generate`, with no batching across prompts.

The model outputs come from that independent path; the summaries of a finished run (total variation, later
attention on parallel sets, first differing step, repetition) are the measurements' own functions.

Contents: :func:`single_rows` (one prompt, one measurement), :func:`looped` (a batch, prompt after prompt).
"""

from __future__ import annotations

import torch

from tempo_lab import metrics, probe
from tempo_lab.generators import (
    CompressedThoughtGenerator,
    ParallelTokenGenerator,
    RetroactivePositionGenerator,
)
from tempo_lab.models import LoadedModel
from tempo_lab.studies.measures import (
    Batch,
    Conditions,
    first_difference,
    mean_or_nan,
    parallel_later_mass,
    repetition,
    tv,
)


def single_rows(lm: LoadedModel, phenomenon: str, i: int, ids: torch.Tensor, cond: Conditions) -> list[dict]:
    """The rows of ``phenomenon`` for prompt ``i`` (ids ``(1, T)``), computed for that prompt alone."""
    t = ids.shape[1]
    if phenomenon == "gap_dropout":
        frame = probe.gap_probe(lm, ids, gaps=cond.dropout_gaps, strategies=cond.dropout_strategies)
        first = {
            s: frame[(frame.strategy == s) & (frame.gap == 0)].top_ids.iloc[0][0] for s in set(frame.strategy)
        }
        return [{"prompt": i, "strategy": r.strategy, "gap": float(r.gap), "prompt_mass": r.prompt_mass,
                 "top1_changed": r.top_ids[0] != first[r.strategy]} for r in frame.itertuples()]  # fmt: skip
    if phenomenon in ("fractional", "retroactive"):
        retro = RetroactivePositionGenerator(lm)
        if phenomenon == "fractional":
            placed = retro.place(
                retro.core.prefill(ids[:, :-1]), int(ids[0, -1]), [t - 2.0, t - 1.5, t - 1.0]
            )
            low, mid, high = torch.softmax(placed.float(), -1)
            tv_low, tv_high, tv_n = tv(mid, low), tv(mid, high), tv(low, high)
            return [{"prompt": i, "tv_low": tv_low, "tv_high": tv_high, "tv_neighbours": tv_n,
                     "between": tv_low <= tv_n and tv_high <= tv_n,
                     "top1_changed": bool(mid.argmax() != high.argmax())}]  # fmt: skip
        prefix = retro.core.prefill(ids)
        token = int(prefix.next_logits.argmax())
        probs = torch.softmax(retro.place(prefix, token, [float(t + g) for g in cond.retro_gaps]).float(), -1)
        return [{"prompt": i, "gap": float(g), "tv": tv(p, probs[0]), "p1": float(p.max()),
                 "top1_same": bool(p.argmax() == probs[0].argmax())}
                for g, p in zip(cond.retro_gaps, probs, strict=True)]  # fmt: skip
    if phenomenon == "modes":
        gen = ParallelTokenGenerator(lm)
        runs = {m: gen.generate(ids, threshold=cond.mode_threshold, max_steps=cond.mode_steps, intraset=m,
                                capture=True, progress=False) for m in ("isolated", "visible")}  # fmt: skip
        differ = first_difference(runs["isolated"], runs["visible"])
        rows = []
        for mode, r in runs.items():
            rows.append({
                "prompt": i, "mode": mode, "later_mass": parallel_later_mass(r, r.attention_map()),
                "parallel_sets": sum(s >= 2 for s in r.set_sizes), "mean_set_size": mean_or_nan(r.set_sizes),
                "identical_text": runs["isolated"].text == runs["visible"].text, "first_difference": differ,
                "text": r.text,
            })  # fmt: skip
        return rows
    if phenomenon == "compressed":
        gen = CompressedThoughtGenerator(lm)
        opts = {"threshold": cond.compressed_threshold, "max_candidates": cond.compressed_candidates,
                "path_length": cond.path_length, "progress": False}  # fmt: skip
        runs = {g: gen.generate(ids, gap=g, **opts) for g in cond.compressed_gaps}
        agree = metrics.path_agreement(runs, reference_gap=0)
        return [{"prompt": i, "gap": float(g), "agreement": float(agree[f"same@{g:g}"].mean()),
                 "repetition": sum(repetition(p.token_ids) for p in r.paths) / len(r.paths),
                 "candidates": len(r.paths)} for g, r in runs.items()]  # fmt: skip
    if phenomenon == "tempo":
        gen = ParallelTokenGenerator(lm)
        rows = []
        for th in cond.tempo_thresholds:
            sizes = gen.generate(ids, threshold=th, max_steps=cond.tempo_steps, progress=False).set_sizes
            rows.append({"prompt": i, "threshold": th, "mean_set_size": mean_or_nan(sizes),
                         "max_set_size": max(sizes, default=0),
                         "parallel_share": mean_or_nan([s >= 2 for s in sizes])})  # fmt: skip
        return rows
    raise ValueError(f"unknown phenomenon {phenomenon!r}")


def looped(lm: LoadedModel, phenomenon: str, batch: Batch, cond: Conditions) -> list[dict]:
    """:func:`single_rows` for every prompt of ``batch``, one after another."""
    return [row for i, ids in batch for row in single_rows(lm, phenomenon, i, ids, cond)]
