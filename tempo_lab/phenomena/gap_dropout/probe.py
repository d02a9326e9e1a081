"""The gap-dropout probe: how much a token placed after a position gap still attends to the prompt.

For a prompt of ``T`` tokens and one next token placed at position ``T + gap`` (the prompt keeps
``0..T-1``), one forward pass over the ``T + 1`` tokens is run per (mask strategy, gap). The probe records the
attention mass of the last token on the prompt's slots (mean over layers and heads, and per layer) and its
top-k next tokens.

The strategies differ only in how the mask and cache are given to the model:

- ``default_no_cache``: no mask, ``use_cache=False``. transformers then runs packed-sequence detection on the
  position ids: any step other than +1 starts a new "document", so after a gap the token sees only itself
  (prompt mass exactly 0). This is the dropout.
- ``default_cache``: no mask, with a fresh cache (``use_cache=True``, the library's default). A cache switches
  the detection off.
- ``ones_2d``: an explicit 2D all-ones padding mask. Any explicit mask switches the detection off.
- ``additive_4d``: our additive 4D causal mask (:func:`tempo_lab.masks.causal_mask`), built from sequence
  order.

Contents: :func:`gap_probe` (the probe) and its result :class:`GapProbe` of :class:`GapRow` per (strategy,
gap), :func:`strategy_forward` (one pass under one strategy), :func:`packed_split_evidence` (why the dropout
happens), :data:`STRATEGIES`. Its tables, figures and views are :mod:`.display`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from tempo_lab import masks
from tempo_lab import positions as pos
from tempo_lab.capture import AttentionRecord, capture_attention
from tempo_lab.families import family_of
from tempo_lab.labels import plain, plain_number
from tempo_lab.loaded import LoadedModel, evaluating, keeps_logits, widened
from tempo_lab.plumbing import checks

NAME, TITLE = "gap_dropout", "Gap dropout"

STRATEGIES: tuple[str, ...] = ("default_no_cache", "default_cache", "ones_2d", "additive_4d")

STRATEGY_DESCRIPTIONS: dict[str, str] = {
    "default_no_cache": "no mask, use_cache=False: packed-sequence detection splits at the gap (the dropout)",
    "default_cache": "no mask, default KV cache (use_cache=True): the cache switches packed detection off",
    "ones_2d": "explicit 2D all-ones attention_mask: any explicit mask switches packed detection off",
    "additive_4d": "explicit additive 4D causal mask from sequence order (tempo_lab.masks.causal_mask): ours",
}

COLUMNS: tuple[str, ...] = (
    "strategy",
    "gap",
    "position",
    "prompt_len",
    "token",
    "token_id",
    "prompt_mass",
    "layer_mass",
    "top1",
    "p1",
    "top_tokens",
    "top_ids",
    "top_probs",
)


# The probe batches several gaps into one forward pass while the recorded attention stays below this size.
CAPTURE_BUDGET_BYTES = 256 * 2**20


@dataclass
class GapRow:
    """One (strategy, gap) of a probe: the token after the prompt at ``position`` (``prompt_len + gap``),
    its attention mass on the prompt (``prompt_mass``, mean over layers and heads; ``layer_mass``
    ``(layers,)``, mean over heads) and its top next tokens (``top_tokens``, ``top_probs``)."""

    strategy: str
    gap: float
    position: float
    token: str
    prompt_mass: float
    layer_mass: np.ndarray
    top_tokens: list[str]
    top_probs: list[float]


@dataclass
class GapProbe:
    """The probe of one prompt and token: ``frame`` has one row per (strategy, gap) with the columns
    :data:`COLUMNS`; ``prompt_tokens``, ``token``, ``token_id`` and ``model`` say what was probed."""

    frame: pd.DataFrame
    prompt: str
    prompt_tokens: list[str]
    token: str
    token_id: int
    model: str

    @property
    def strategies(self) -> list[str]:
        return list(dict.fromkeys(self.frame["strategy"]))

    @property
    def gaps(self) -> list[int | float]:
        return plain(list(dict.fromkeys(self.frame["gap"])))

    @property
    def n_layers(self) -> int:
        return len(self.frame["layer_mass"].iloc[0])

    def row(self, strategy: str, gap: float) -> GapRow:
        """The row of ``strategy`` at ``gap``; ``ValueError`` when the probe did not run it."""
        rows = self.frame[(self.frame["strategy"] == strategy) & (self.frame["gap"] == gap)]
        if rows.empty:
            raise ValueError(f"no probe row for strategy {strategy!r} at gap {gap!r}")
        r = rows.iloc[0]
        return GapRow(r.strategy, r.gap, r.position, r.token, float(r.prompt_mass), r.layer_mass,
                      list(r.top_tokens), list(r.top_probs))  # fmt: skip


@dataclass
class StrategyPass:
    """One forward pass under one strategy.

    ``logits``: ``(batch, vocab)`` float32 logits of the last token of each row. ``attention``: the record of
    the pass (its ``weights`` are per layer ``(batch, heads, n, n)``), or ``None`` when run without capture.
    """

    strategy: str
    logits: torch.Tensor
    attention: AttentionRecord | None


def check_strategies(strategies: Sequence[str]) -> list[str]:
    """The strategies as a list, refusing unknown names and an empty selection."""
    strategies = checks.as_list(strategies)
    if not strategies:
        raise ValueError(f"give at least one strategy out of {list(STRATEGIES)}")
    return [checks.choice(f"strategies[{i}]", s, STRATEGIES) for i, s in enumerate(strategies)]


def strategy_forward(
    lm: LoadedModel,
    input_ids: torch.Tensor,
    position_ids: torch.Tensor,
    strategy: str,
    *,
    capture: bool = True,
    query: torch.Tensor | None = None,
) -> StrategyPass:
    """Run sequences ``input_ids`` ``(batch, n)`` at ``position_ids`` ``(batch, n)`` once under ``strategy``.

    Positions are validated for the model (fractional positions need a rotary model); with ``capture`` the
    attention of every layer is recorded (the model may be loaded with SDPA: capture switches it to eager for
    the pass and back). Rows are independent: each row gets its own packed-sequence split, cache row or mask.
    ``query`` ``(batch,)``: per row, the slot whose logits are returned (default the last): rows of different
    lengths can share a pass right-padded, since every strategy is causal and no slot sees a later one.
    """
    strategy = checks.choice("strategy", strategy, STRATEGIES)
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(f"input_ids must have shape (batch, n) with n >= 1, got {tuple(input_ids.shape)}")
    if tuple(position_ids.shape) != tuple(input_ids.shape):
        raise ValueError(
            f"position_ids {tuple(position_ids.shape)} must match input_ids {tuple(input_ids.shape)}"
        )
    pos.validate(position_ids, max_positions=lm.max_positions, strict_context=True)
    family = family_of(lm.model)
    family.check_attention()
    family.check_positions(position_ids)
    model_positions = pos.as_model_positions(position_ids, lm.family.position_reason()).to(lm.device)
    b, n = input_ids.shape
    kwargs: dict = {"input_ids": input_ids.to(lm.device), "position_ids": model_positions}
    if strategy == "default_no_cache":
        kwargs["use_cache"] = False
    elif strategy == "default_cache":
        kwargs["use_cache"] = True
    elif strategy == "ones_2d":
        kwargs["attention_mask"] = torch.ones(b, n, dtype=torch.long, device=lm.device)
        kwargs["use_cache"] = False
    else:  # additive_4d
        causal = masks.causal_mask(n, dtype=lm.dtype, batch=b, device=lm.device)
        kwargs["attention_mask"] = family.layer_masks(causal)  # sliding layers get their window
        kwargs["use_cache"] = False
    # only the returned slots are projected onto the vocabulary (transformers' logits_to_keep)
    keep = torch.tensor([n - 1]) if query is None else torch.unique(query.cpu())  # sorted slots
    if keeps_logits(lm.model):
        kwargs["logits_to_keep"] = keep.to(lm.device)
    record = None
    with torch.no_grad(), evaluating(lm.model):
        if capture:
            with capture_attention(lm.model) as record:
                out = lm.model(**kwargs)
        else:
            out = lm.model(**kwargs)
    logits = out.logits if "logits_to_keep" in kwargs else out.logits[:, keep.to(out.logits.device)]
    which = torch.zeros(b, dtype=torch.long) if query is None else torch.searchsorted(keep, query.cpu())
    rows = logits[torch.arange(b), which.to(logits.device)]
    return StrategyPass(strategy=strategy, logits=widened(rows), attention=record)


def _check_gaps(gaps: Sequence[float], prompt_len: int, lm: LoadedModel) -> list[float]:
    """The gaps as plain numbers (``int`` when integral), each placeable after the prompt, none repeated."""
    gaps = checks.as_list(gaps)
    if not gaps:
        raise ValueError("give at least one gap")
    out = []
    for i, g in enumerate(gaps):
        g = plain_number(checks.nonnegative(f"gaps[{i}]", g))
        checks.in_context(f"gaps[{i}] = {g:g}", prompt_len + g, lm.max_positions)
        checks.integral_position(f"gaps[{i}] = {g:g}", g, lm.family.position_reason())
        if g in out:
            raise ValueError(f"gaps[{i}] = {g} repeats gaps[{out.index(g)}]; give each gap once")
        out.append(g)
    return out


def gap_probe(
    lm: LoadedModel,
    prompt: str | torch.Tensor,
    token: str | int | None = None,
    gaps: Sequence[float] = (0, 1, 5, 20),
    *,
    strategies: Sequence[str] = STRATEGIES,
    top_k: int = 5,
) -> GapProbe:
    """Attention mass on the prompt and top-k next tokens of a token placed after a gap, per mask strategy.

    Args:
        lm: a loaded model (eager or SDPA).
        prompt: the prompt text, or its token ids ``(1, T)`` (``T`` tokens at positions ``0..T-1``).
        token: the token after the prompt, as text (exactly one token) or id; ``None`` = the prompt's greedy
            next token (computed with our causal mask).
        gaps: the token sits at position ``T + gap``; gaps are >= 0, finite, and may be fractional on a RoPE
            model.
        strategies: which of :data:`STRATEGIES` to run.
        top_k: how many next tokens to list.

    Returns a :class:`GapProbe` whose ``frame`` has one row per (strategy, gap), in that order, with columns
    :data:`COLUMNS`: ``position`` (``T + gap``), ``prompt_mass`` (mean over layers and heads of the last
    token's attention on the ``T`` prompt slots), ``layer_mass`` (``np.ndarray`` ``(layers,)``, mean over
    heads), ``top_tokens`` / ``top_ids`` / ``top_probs`` (lists of ``top_k``) and ``top1`` / ``p1`` (the first
    of those). Every input is checked before the model runs. Several gaps share one batched forward pass per
    strategy (rows are independent) as long as the recorded attention stays under
    :data:`CAPTURE_BUDGET_BYTES`.
    """
    strategies = check_strategies(strategies)
    prompt, prompt_ids = lm.encode_prompt(prompt)
    prompt_len = prompt_ids.shape[1]
    gaps = _check_gaps(gaps, prompt_len, lm)
    top_k = checks.integer_in("top_k", top_k, 1, lm.model.config.vocab_size)
    if token is None:
        first = strategy_forward(lm, prompt_ids, pos.contiguous(prompt_len), "additive_4d", capture=False)
        token_id = int(first.logits[0].argmax())
    else:
        token_id = lm.token_id(token)
    input_ids = torch.cat([prompt_ids, torch.tensor([[token_id]], device=prompt_ids.device)], dim=1)

    config = lm.model.config
    per_row = (
        config.num_hidden_layers * config.num_attention_heads * input_ids.shape[1] ** 2 * lm.dtype.itemsize
    )
    chunk = max(1, min(len(gaps), CAPTURE_BUDGET_BYTES // per_row))
    rows = []
    for strategy in strategies:
        for start in range(0, len(gaps), chunk):
            part = gaps[start : start + chunk]
            position_ids = torch.cat([pos.with_gap(prompt_len, 1, g) for g in part])  # (chunk, T+1)
            result = strategy_forward(lm, input_ids.expand(len(part), -1), position_ids, strategy)
            # (layers, chunk, heads): mass of each row's last query on the prompt slots
            mass = widened(result.attention.mass(slice(0, prompt_len), query=-1))
            probs = torch.softmax(result.logits, dim=-1)  # (chunk, vocab)
            top = probs.topk(top_k, dim=-1)
            for r, gap in enumerate(part):
                top_ids = [int(i) for i in top.indices[r]]
                top_tokens = [lm.token_str(i) for i in top_ids]
                layer_mass = mass[:, r].mean(-1)  # (layers,)
                rows.append(
                    {
                        "strategy": strategy,
                        "gap": gap,
                        "position": prompt_len + gap,
                        "prompt_len": prompt_len,
                        "token": lm.token_str(token_id),
                        "token_id": token_id,
                        "prompt_mass": float(mass[:, r].mean()),
                        "layer_mass": layer_mass.cpu().numpy(),
                        "top1": top_tokens[0],
                        "p1": float(top.values[r, 0]),
                        "top_tokens": top_tokens,
                        "top_ids": top_ids,
                        "top_probs": [float(p) for p in top.values[r]],
                    }
                )
    return GapProbe(
        frame=pd.DataFrame(rows, columns=list(COLUMNS)),
        prompt=prompt,
        prompt_tokens=[lm.token_str(i) for i in prompt_ids[0].tolist()],
        token=lm.token_str(token_id),
        token_id=token_id,
        model=lm.name,
    )


def packed_split_evidence(
    lm: LoadedModel, prompt: str, token: str | int | None, gap: float
) -> dict[str, Any]:

    """Evidence that the gap dropout is transformers' packed-sequence detection.

    Returns ``segments``: the "document" index transformers assigns to each slot for positions
    ``0..T-1, T+gap`` (:func:`transformers.masking_utils.find_packed_sequence_indices`; ``None`` = one
    document); ``logit_diff_vs_alone``: the largest absolute difference between the last token's logits with
    no mask and no cache, and its logits when fed *alone* (no prompt at all) at the same position; and the top
    token of each. A difference of ~0 means the token after the gap behaves as if the prompt did not exist.
    """
    from transformers.masking_utils import find_packed_sequence_indices

    ids = lm.encode(prompt)
    t = ids.shape[1]
    token_id = lm.token_id(token) if token is not None else None
    if token_id is None:
        token_id = int(
            strategy_forward(lm, ids, pos.contiguous(t), "additive_4d", capture=False).logits.argmax()
        )
    seq = torch.cat([ids, torch.tensor([[token_id]], device=ids.device)], dim=1)
    positions = pos.with_gap(t, 1, gap)
    segments = find_packed_sequence_indices(positions)
    no_cache = strategy_forward(lm, seq, positions, "default_no_cache", capture=False).logits
    alone = strategy_forward(lm, seq[:, -1:], positions[:, -1:], "additive_4d", capture=False).logits
    explicit = strategy_forward(lm, seq, positions, "additive_4d", capture=False).logits
    return {
        "gap": gap,
        "positions": [float(p) for p in positions[0]],
        "segments": None if segments is None else [int(s) for s in segments[0]],
        "logit_diff_vs_alone": float((no_cache - alone).abs().max()),
        "logit_diff_vs_explicit_mask": float((no_cache - explicit).abs().max()),
        "top_no_mask": lm.token_str(int(no_cache.argmax())),
        "top_alone": lm.token_str(int(alone.argmax())),
        "top_explicit_mask": lm.token_str(int(explicit.argmax())),
    }
