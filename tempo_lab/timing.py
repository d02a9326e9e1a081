"""Side-by-side timings for the notebooks: a generator against its naive baseline, same inputs, same outputs.

The method is the one of ``benchmarks/run.py``: one warm-up call each, then ``repeats`` alternating rounds
(so a change in machine load hits both sides), median seconds per function. Timings vary from run to run: the
notebooks show them in cells whose output nbval does not compare.

The baselines compute exactly what the generator computes, by plain uncached full recomputation
(:meth:`tempo_lab.generators.core.DecodingCore.full`), one forward pass per result.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import pandas as pd
import torch

from tempo_lab import positions
from tempo_lab.generators.core import DecodingCore, encode_prompt
from tempo_lab.models import LoadedModel


def side_by_side(
    fns: dict[str, Callable[[], object]], repeats: int = 3, *, warmup: bool = True
) -> dict[str, float]:
    """Median seconds per function: one warm-up call each (unless ``warmup=False``, for a model that has
    already run), then ``repeats`` alternating timed rounds."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for fn in fns.values() if warmup else ():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def timing_table(seconds: dict[str, float], passes: dict[str, int], baseline: str) -> pd.DataFrame:
    """One row per timed function: seconds, forward passes, and the baseline's time divided by its time."""
    return pd.DataFrame(
        [
            {
                "method": name,
                "seconds": round(s, 4),
                "forward passes": passes.get(name),
                f"{baseline} / this": round(seconds[baseline] / s, 2),
            }
            for name, s in seconds.items()
        ]
    ).set_index("method")


def retroactive_naive(lm: LoadedModel, prompt: str, token_id: int, gaps: Sequence[float]) -> torch.Tensor:
    """The naive retroactive exploration: one full uncached forward pass of prompt + token per gap.

    Returns the next-token logits ``(P, vocab)``, equal (to float tolerance) to
    :meth:`RetroactivePositionGenerator.explore`'s ``logits``.
    """
    core = DecodingCore(lm)
    _, ids = encode_prompt(lm, prompt)
    t = ids.shape[1]
    seq = torch.cat([ids, torch.tensor([[token_id]], device=ids.device)], 1)
    return torch.stack([core.full(seq, positions.placed(t, t + g))[0, -1] for g in gaps])


def compressed_naive(
    lm: LoadedModel, prompt: str, candidate_ids: Sequence[int], gap: float, path_length: int
) -> list[list[int]]:
    """The naive compressed-thought expansion: each candidate's path grown greedily, one full uncached forward
    pass per new token (the prototype's method). Returns the token ids of each path, candidate first; equal to
    :meth:`CompressedThoughtGenerator.generate`'s greedy paths."""
    core = DecodingCore(lm)
    _, ids = encode_prompt(lm, prompt)
    t = ids.shape[1]
    eos = lm.tokenizer.eos_token_id
    out = []
    for cand in candidate_ids:
        path = [int(cand)]
        while len(path) <= path_length and path[-1] != eos:
            seq = torch.cat([ids, torch.tensor([path], device=ids.device)], 1)
            path.append(int(core.full(seq, positions.with_gap(t, len(path), gap))[0, -1].argmax()))
        out.append(path)
    return out
