"""The gap dropout over a prompt set: the batched study measurement, the same rows one prompt at a time, the
study's figure, and the two seed claims it decides.

Contents: :func:`measure` (batched), :func:`single_rows` (one prompt through :func:`gap_probe`: the
independent path the tests check ``measure`` against), :func:`figure`, :data:`CLAIMS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from tempo_lab import positions as pos
from tempo_lab import stats
from tempo_lab.claims import Claim, Evidence, Rule, above, below, ci, fmt_ci
from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.phenomena.conditions import Batch, Conditions
from tempo_lab.phenomena.gap_dropout.probe import CAPTURE_BUDGET_BYTES, NAME, gap_probe, strategy_forward


def _right_padded(seqs: Sequence[torch.Tensor], positions: Sequence[torch.Tensor]):
    """Rows of different lengths right-padded into ``(ids (B, N), positions (B, N), last (B,))``; padding
    continues each row's positions by +1, so it only ever follows the row's real slots."""
    width = max(len(x) for x in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    where = torch.zeros(len(seqs), width)
    for r, (x, p) in enumerate(zip(seqs, positions, strict=True)):
        n = len(x)
        ids[r, :n], where[r, :n] = x.cpu(), p.cpu()
        where[r, n:] = p[-1] + torch.arange(1, width - n + 1)
    return ids, where, torch.tensor([len(x) - 1 for x in seqs])


def _buckets(lengths: Sequence[int], bytes_per_slot2: int, slack: float = 1.25) -> list[list[int]]:
    """Row indices grouped by similar length (longest at most ``slack`` x the shortest, so padding stays
    small) and cut so that a group's captured attention stays under the probe's budget."""
    order = sorted(range(len(lengths)), key=lambda r: lengths[r])
    groups: list[list[int]] = []
    for r in order:
        g = groups[-1] if groups else None
        width = lengths[r]
        full = g is not None and (len(g) + 1) * bytes_per_slot2 * width**2 > CAPTURE_BUDGET_BYTES
        if g is None or width > slack * lengths[g[0]] or full:
            groups.append([r])
        else:
            g.append(r)
    return groups


def measure(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt x strategy x gap: the placed token's attention mass on the prompt (mean over layers and
    heads) and whether its top next token differs from gap 0
    (:func:`~tempo_lab.phenomena.gap_dropout.probe.gap_probe`).

    Every strategy is causal, so rows of similar lengths share one pass right-padded (padding follows a
    row's real slots and no slot sees a later one); the logits and attention of each row's own last slot are
    read. Rows are grouped by length (:func:`_buckets`): with the model's cost in tokens, padding is the waste
    to avoid."""
    gaps = list(cond.dropout_gaps)
    prompts = [ids[0].cpu() for _, ids in batch]
    ids, where, last = _right_padded(prompts, [torch.arange(len(x), dtype=torch.float32) for x in prompts])
    first = strategy_forward(lm, ids, where, "additive_4d", capture=False, query=last)
    nxt = first.logits.argmax(-1).cpu()  # (B,)
    seqs, positions, lengths = [], [], []
    for x, token in zip(prompts, nxt, strict=True):
        t = len(x)
        for g in gaps:
            seqs.append(torch.cat([x, token[None]]))
            positions.append(pos.with_gap(t, 1, g)[0])
            lengths.append(t)
    config = lm.model.config
    per_token2 = config.num_hidden_layers * config.num_attention_heads * lm.dtype.itemsize
    rows = []
    for strategy in cond.dropout_strategies:
        mass, top = torch.zeros(len(seqs)), torch.zeros(len(seqs), dtype=torch.long)
        for part in _buckets([len(x) for x in seqs], per_token2):
            ids, where, last = _right_padded([seqs[r] for r in part], [positions[r] for r in part])
            res = strategy_forward(lm, ids, where, strategy, query=last)
            w = widened(res.attention.stacked())  # (layers, rows, heads, N, N)
            for j, (r, q) in enumerate(zip(part, last.tolist(), strict=True)):
                mass[r] = w[:, j, :, q, : lengths[r]].sum(-1).mean()
            top[part] = res.logits.argmax(-1).cpu()
        top_all = top
        for b, (i, _) in enumerate(batch):
            for k, g in enumerate(gaps):
                r = b * len(gaps) + k
                rows.append({
                    "prompt": i, "strategy": strategy, "gap": float(g), "prompt_mass": float(mass[r]),
                    "top1_changed": bool(top_all[r] != top_all[b * len(gaps)]),
                })  # fmt: skip
    return rows


def single_rows(lm: LoadedModel, i: int, ids: torch.Tensor, cond: Conditions) -> list[dict]:
    """The rows of :func:`measure` for prompt ``i`` (ids ``(1, T)``) alone, through :func:`gap_probe`."""
    frame = gap_probe(lm, ids, gaps=cond.dropout_gaps, strategies=cond.dropout_strategies).frame
    at_zero = frame[frame.gap == 0]
    first = {s: at_zero[at_zero.strategy == s].top_ids.iloc[0][0] for s in set(frame.strategy)}
    return [{"prompt": i, "strategy": r.strategy, "gap": float(r.gap), "prompt_mass": r.prompt_mass,
             "top1_changed": r.top_ids[0] != first[r.strategy]} for r in frame.itertuples()]  # fmt: skip


# --- the claims ---


def _no_mask_after_gap(study: Any) -> pd.DataFrame:
    """The rows without a mask (no cache) at every gap > 0."""
    drop = study.table(NAME)
    return drop[(drop.strategy == "default_no_cache") & (drop.gap > 0)]


def _with_mask(study: Any) -> pd.DataFrame:
    drop = study.table(NAME)
    return drop[drop.strategy == "additive_4d"]


def _no_mask(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    no_mask = _no_mask_after_gap(study)
    zero = float((no_mask.prompt_mass == 0).mean())
    return Evidence(
        {"share_exactly_zero": zero},
        f"{single['01']['max_prompt_mass_after_gap_default_no_cache']:.4f} (largest, gaps 1-100)",
        f"{fmt_ci(*ci(no_mask.prompt_mass))}; exactly 0 in {zero:.1%} of {len(no_mask)} rows",
    )


def _mask(study: Any, single: Mapping[str, Mapping[str, Any]]) -> Evidence:
    mask = _with_mask(study)
    far = mask.gap.max()
    at0 = mask[mask.gap == 0].set_index("prompt").prompt_mass
    atfar = mask[mask.gap == far].set_index("prompt").prompt_mass.loc[at0.index]
    m0, mfar = ci(at0), ci(atfar)
    same = stats.tost((atfar - at0).to_numpy(), EQUAL_MASS)
    one = single["01"]["prompt_mass_additive_4d"]
    return Evidence(
        {
            "far_lo": mfar[1],
            "far_hi": mfar[2],
            "diff90_lo": same["lo"],
            "diff90_hi": same["hi"],
            "p": same["p"],
        },
        f"{one['0']:.4f} at gap 0, {one['20']:.4f} at gap 20",
        f"{fmt_ci(*m0)} at gap 0, {fmt_ci(*mfar)} at gap {far:g}; difference {same['mean']:+.4f} (90% "
        f"[{same['lo']:+.4f}, {same['hi']:+.4f}], TOST p = {same['p']:.2g} for a margin of {EQUAL_MASS})",
    )


def _no_mask_per_prompt(study: Any) -> pd.Series:
    return _no_mask_after_gap(study).groupby("prompt").prompt_mass.max()


def _mask_per_prompt(study: Any) -> pd.Series:
    mask = _with_mask(study)
    return mask[mask.gap == mask.gap.max()].set_index("prompt").prompt_mass


EQUAL_MASS = 0.05  # "restores" the mass: within this of the gap-0 mass, by equivalence (TOST)


def _decide_mask(v: Mapping[str, float]) -> str:
    if below(v["far_hi"], 0.5):
        return "refuted"
    if v["diff90_lo"] > -EQUAL_MASS and v["diff90_hi"] < EQUAL_MASS:
        return "confirmed"
    return "refined" if above(v["far_lo"], 0.5) else "undecided"


WRITTEN = "with the data of results/06_claims_at_scale (2026-11); corrected 2026-12-07"

CLAIMS = (
    Claim("01.no_mask", NAME, "no mask: after any gap the prompt gets no attention",
          "notebook 01, one prompt", "0.000 at gaps 1, 5, 10, 20",
          ("study:gap_dropout.prompt_mass (default_no_cache, gap > 0)",
           "notebook:01.max_prompt_mass_after_gap_default_no_cache"),
          _no_mask,
          Rule("share of prompt x gap rows (no mask, no cache, gap > 0) whose prompt mass is exactly 0",
               "prompt", {}, "confirmed if every row gives exactly 0; refuted if any row does not",
               lambda v: "confirmed" if v["share_exactly_zero"] == 1 else "refuted",
               (({"share_exactly_zero": 1.0}, "confirmed"), ({"share_exactly_zero": 0.98}, "refuted")),
               written=WRITTEN),
          headline=("largest prompt mass after a gap, no mask", _no_mask_per_prompt)),
    Claim("01.mask_restores", NAME, "an explicit mask restores the prompt's attention (1.000 at every gap)",
          "notebook 01, one prompt", "1.000 at gaps 0-20",
          ("study:gap_dropout.prompt_mass (additive_4d)", "notebook:01.prompt_mass_additive_4d"),
          _mask,
          Rule("prompt mass at the largest gap, and its paired difference from gap 0, with the mask",
               "prompt", {"restored": 0.5, "equal": EQUAL_MASS},
               f"refuted if hi95(mass at the largest gap) < 0.5; confirmed if the difference from gap 0 is "
               f"equivalent to 0 within {EQUAL_MASS} (90% interval inside, TOST); refined if restored (lo95 "
               f"> 0.5) but not equivalent; else undecided",
               _decide_mask,
               (({"far_lo": 0.9, "far_hi": 0.95, "diff90_lo": -0.01, "diff90_hi": 0.01, "p": 0.001},
                 "confirmed"),
                ({"far_lo": 0.7, "far_hi": 0.8, "diff90_lo": -0.2, "diff90_hi": -0.1, "p": 1.0}, "refined"),
                ({"far_lo": 0.2, "far_hi": 0.3, "diff90_lo": -0.7, "diff90_hi": -0.6, "p": 1.0}, "refuted"),
                ({"far_lo": 0.4, "far_hi": 0.7, "diff90_lo": -0.5, "diff90_hi": 0.0, "p": 0.5}, "undecided")),
               p="p", written=WRITTEN),
          headline=("prompt mass with the mask at the largest gap", _mask_per_prompt)),
)  # fmt: skip
