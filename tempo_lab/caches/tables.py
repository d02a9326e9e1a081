"""Notebook 11's summaries of the cache study's tables (:func:`~tempo_lab.caches.read_cache_study`): means
with 95% bootstrap intervals over the prompts (or, for the rolling stream, over the steps of a bucket).

- :func:`sinks_by_layer`: the first token's attention mass per layer (each prompt's mean over heads);
- :func:`massive_dims`: where the massive activations are (dimension, layers, share of prompts, token);
- :func:`ablations`: Sun et al.'s zero / mean / remove ablations of the first token, TV per mode;
- :func:`chunks_by_layer`: the reused chunk's key and value error per layer, and the share of the TV that
  putting back that layer's recomputed cache closes;
- :func:`chunk_gap`: the reuse's TV and top-1 agreement per model;
- :func:`partial_curve` and :func:`half_gap`: the TV left when ``k`` tokens are recomputed, and the fewest
  that close half the gap;
- :func:`rolling_by_position`: each variant's mean next-token loss per bucket of steps, and its perplexity;
- :func:`rolling_against_reference`: each variant's loss minus the recomputed window's, at the sampled steps;
- :func:`rolling_difference`: one variant's loss minus another's, step by step.

Contents: the functions above.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tempo_lab.stats import block_bootstrap_ci, bootstrap_ci, summarize


def sinks_by_layer(sinks: pd.DataFrame) -> pd.DataFrame:
    """``model, layer, n, mean, lo, hi``: the first token's attention mass, each prompt's mean over heads."""
    per_prompt = sinks.groupby(["model", "layer", "prompt"], as_index=False).mass.mean()
    return summarize(per_prompt, "mass", ["model", "layer"])


def massive_dims(massive: pd.DataFrame, prompts: int, top: int = 5) -> pd.DataFrame:
    """Per model, the ``top`` residual dimensions with massive entries at the first token, by how many
    prompts have one there: ``model, dim, prompts_share, layers, median_ratio, max_value, other_slots``
    (``other_slots``: the share of that dimension's massive entries found on any later token)."""
    rows = []
    for model, part in massive.groupby("model", sort=False):
        first = part[part.slot == 0]
        for dim, at in first.groupby("dim"):
            everywhere = part[part.dim == dim]
            rows.append({"model": model, "dim": int(dim), "prompts_share": at.prompt.nunique() / prompts,
                         "layers": f"{int(at.layer.min())}-{int(at.layer.max())}",
                         "median_ratio": float(at.ratio.median()), "max_value": float(at.value.abs().max()),
                         "other_slots": float((everywhere.slot > 0).mean())})  # fmt: skip
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sort_values(["model", "prompts_share", "median_ratio"], ascending=[True, False, False])
    return table.groupby("model", sort=False).head(top).reset_index(drop=True)


def ablations(ablation: pd.DataFrame) -> pd.DataFrame:
    """``model, mode, n, mean, lo, hi``: the next-token TV of each ablation of the first token."""
    return summarize(ablation, "tv", ["model", "mode"])


def chunks_by_layer(chunks: pd.DataFrame) -> pd.DataFrame:
    """Per model and layer: the mean (and 95% interval) of the reused chunk's ``key_error`` and
    ``value_error``, and ``closed``: the share of the TV that putting back that layer's recomputed cache
    closes (``1 - restored / tv``, over prompts whose reuse moved the prediction by TV > 1e-4)."""
    moved = chunks.tv > 1e-4
    closed = (1 - chunks.restored / chunks.tv.clip(lower=1e-12)).where(moved)
    chunks = chunks.assign(closed=closed)
    out = None
    for value in ("key_error", "value_error", "closed"):
        part = summarize(chunks, value, ["model", "layer"]).rename(
            columns={"mean": value, "lo": f"{value}_lo", "hi": f"{value}_hi"}
        )
        out = part if out is None else out.merge(part.drop(columns="n"), on=["model", "layer"])
    return out


def chunk_gap(chunks: pd.DataFrame) -> pd.DataFrame:
    """Per model: the reuse's mean TV and top-1 agreement over the prompts, with 95% intervals."""
    once = chunks.drop_duplicates(["model", "prompt"])
    tv = summarize(once, "tv", ["model"]).rename(columns={"mean": "tv", "lo": "tv_lo", "hi": "tv_hi"})
    top1 = summarize(once, "top1_agrees", ["model"]).rename(
        columns={"mean": "top1", "lo": "top1_lo", "hi": "top1_hi"}
    )
    return tv.merge(top1.drop(columns="n"), on="model")


def partial_curve(partial: pd.DataFrame, chunks: pd.DataFrame, longer: bool = True) -> pd.DataFrame:
    """Per model, selection and ``tokens`` recomputed: the mean TV with its interval, the top-1 agreement and
    ``closed``, the share of the reuse's mean TV gone, over the prompts whose chunk has more than that many
    tokens (``longer=False``: at least that many, where recomputing them all is the full recompute and
    closes the whole gap by construction), the reuse's TV over the same prompts."""
    once = chunks.drop_duplicates(["model", "prompt"]).set_index(["model", "prompt"])
    kept = partial[partial.tokens_in_chunk > partial.tokens] if longer else partial
    rows = []
    for (model, selection, tokens), part in kept.groupby(["model", "selection", "tokens"]):
        base = once.loc[[(model, p) for p in part.prompt], "tv"].to_numpy()
        mean, lo, hi = bootstrap_ci(part.tv)
        rows.append({"model": model, "selection": selection, "tokens": int(tokens), "n": len(part),
                     "tv": mean, "tv_lo": lo, "tv_hi": hi, "top1": float(part.top1_agrees.mean()),
                     "closed": 1 - mean / float(base.mean())})  # fmt: skip
    return pd.DataFrame(rows)


def half_gap(curve: pd.DataFrame) -> pd.DataFrame:
    """Per model and selection: the fewest recomputed tokens of :func:`partial_curve` that close at least
    half the gap (``None`` if none of those measured does)."""
    rows = []
    for (model, selection), part in curve.groupby(["model", "selection"]):
        enough = part[part.closed >= 0.5].tokens
        rows.append({"model": model, "selection": selection,
                     "tokens": int(enough.min()) if len(enough) else None})  # fmt: skip
    return pd.DataFrame(rows)


def rolling_by_position(rolling: pd.DataFrame, bucket: int = 1024) -> pd.DataFrame:
    """Per model, variant and bucket of ``bucket`` steps: the mean next-token loss (nats) with its interval
    over the steps, and the perplexity ``exp(mean)``; the variant ``recomputed`` is the reference's loss at
    its sampled steps."""
    losses = rolling.assign(loss=-rolling.logprob, bucket=rolling.step // bucket * bucket)
    sampled = rolling[rolling.reference.notna()]
    reference = sampled.assign(
        variant=sampled.variant + ", recomputed",
        loss=-sampled.reference,
        bucket=sampled.step // bucket * bucket,
    )
    table = summarize(pd.concat([losses, reference]), "loss", ["model", "variant", "bucket"])
    return table.assign(perplexity=np.exp(table["mean"]))


#: consecutive steps of the rolling stream resampled together: neighbouring steps of one text are not
#: independent, so the intervals over steps are block-bootstrap ones (blocks of 512 steps)
BLOCK_STEPS = 512


def _over_steps(frame: pd.DataFrame, value: str, by: list[str], block: int) -> pd.DataFrame:
    """Per group of ``by``: the mean of ``value`` over the steps with its 95% and 90% block-bootstrap
    intervals (``block`` consecutive rows of the group, in step order, resampled together)."""
    rows = []
    for key, part in frame.sort_values("step").groupby(by, sort=True):
        values = part[value].to_numpy()
        mean, lo, hi = block_bootstrap_ci(values, block)
        _, lo90, hi90 = block_bootstrap_ci(values, block, level=0.90)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key, strict=True)), "n": len(values), "mean": mean, "lo": lo, "hi": hi,
                     "lo90": lo90, "hi90": hi90})  # fmt: skip
    return pd.DataFrame(rows)


def rolling_against_reference(rolling: pd.DataFrame, after: int = 0) -> pd.DataFrame:
    """Per model and variant, at the steps with a reference from step ``after`` on: the mean of the
    variant's loss minus the recomputed window's (nats; > 0: worse than recomputing) with its 95% and 90%
    intervals (block bootstrap over :data:`BLOCK_STEPS` steps of the one text), and each one's mean loss."""
    sampled = rolling[rolling.reference.notna() & (rolling.step >= after)]
    sampled = sampled.assign(excess=sampled.reference - sampled.logprob)
    every = int(sampled.step.diff().dropna().median()) if len(sampled) > 1 else 1
    table = _over_steps(sampled, "excess", ["model", "variant"], max(1, BLOCK_STEPS // max(1, every)))
    means = sampled.assign(loss=-sampled.logprob, recomputed=-sampled.reference)
    means = means.groupby(["model", "variant"])[["loss", "recomputed"]].mean()
    return table.merge(means.reset_index(), on=["model", "variant"])


def rolling_difference(rolling: pd.DataFrame, variant: str, baseline: str, after: int = 0) -> pd.DataFrame:
    """Per model: the mean of ``variant``'s next-token loss minus ``baseline``'s at the same step (nats), from
    step ``after`` on, with its 95% and 90% intervals (block bootstrap over :data:`BLOCK_STEPS` steps)."""
    wide = rolling[rolling.step >= after].pivot_table(
        index=["model", "step"], columns="variant", values="logprob"
    )
    diff = (wide[baseline] - wide[variant]).rename("difference").reset_index()
    return _over_steps(diff, "difference", ["model"], BLOCK_STEPS)
