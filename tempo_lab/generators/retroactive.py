"""Retroactive position assignment: one token, re-evaluated at many positions.

Two questions, one mechanism. :meth:`RetroactivePositionGenerator.explore` places a *new* token after the
prompt at many positions (gaps); :meth:`RetroactivePositionGenerator.sweep` moves the prompt's *own last*
token along a grid of (fractional) positions. Either way the fixed prefix is prefilled once, and the token is
fed at every position in **one batched cached step**: the prefix cache is branched into one expanded view per
position (no copy), each branch gets the same token with its own position id, and one forward pass returns
every branch's next-token distribution.

``explore`` adds one branch: the *reference*, the token at position ``prompt_len`` (gap 0), against which
every row's divergence is measured. It is always computed in the same batch, whether or not ``prompt_len`` is
among the requested positions.

Contents: :class:`RetroactivePositionGenerator`, its results :class:`RetroactiveResult` and
:class:`PositionSweep`, :data:`DEFAULT_GAPS`, :data:`TOP_KEPT`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from tempo_lab.forward import Prefix, branch
from tempo_lab.generators.loop import Generator
from tempo_lab.generators.selection import top_tokens
from tempo_lab.layout import Layout
from tempo_lab.loaded import widened
from tempo_lab.plumbing import checks
from tempo_lab.summaries import divergences, entropy

DEFAULT_GAPS: tuple[float, ...] = (0, 1, 2, 5, 10, 20, 50)
TOP_KEPT = 10  # a sweep keeps the display text of this many top tokens per position


@dataclass
class RetroactiveResult:
    """The next-token distribution with ``token`` placed at each position.

    ``positions``/``gaps``: ``P`` floats, ``gap = position - prompt_len``. ``logits``/``probs``:
    ``(P, vocab)`` next-token logits / probabilities of each placement. ``top``: per placement, the ``top_k``
    tokens as ``(text, probability)``. ``reference``: ``(vocab,)``, the distribution at gap 0 (position
    ``prompt_len``).
    ``tv``: ``(P,)`` total variation ``0.5 * sum |p - p_ref|``; ``kl``: ``(P,)`` ``KL(p || p_ref)`` in nats.
    """

    prompt: str
    prompt_len: int
    token_id: int
    token: str
    positions: list[float]
    gaps: list[float]
    logits: torch.Tensor
    probs: torch.Tensor
    top: list[list[tuple[str, float]]]
    reference: torch.Tensor
    tv: torch.Tensor
    kl: torch.Tensor

    def to_frame(self) -> pd.DataFrame:
        """One row per position: position, gap, top-k tokens and probabilities, tv, kl, entropy."""
        rows = []
        ent = entropy(self.probs)
        for i, (p, g) in enumerate(zip(self.positions, self.gaps, strict=True)):
            row: dict[str, object] = {"position": p, "gap": g}
            for k, (text, prob) in enumerate(self.top[i], start=1):
                row[f"top{k}"] = text
                row[f"p{k}"] = prob
            row.update(tv=float(self.tv[i]), kl=float(self.kl[i]), entropy=float(ent[i]))
            rows.append(row)
        return pd.DataFrame(rows)


    def merged(self, other: RetroactiveResult) -> RetroactiveResult:
        """This result and ``other`` (the same prompt, token and reference) as one, sorted by position; a
        position in both keeps this result's row."""
        if (other.prompt, other.token_id) != (self.prompt, self.token_id):
            raise ValueError("can only merge explorations of the same prompt and token")
        rows = {**{p: (other, i) for i, p in enumerate(other.positions)},
                **{p: (self, i) for i, p in enumerate(self.positions)}}  # fmt: skip
        order = sorted(rows)
        pick = [rows[p] for p in order]

        def stack(name: str) -> torch.Tensor:
            return torch.stack([getattr(r, name)[i] for r, i in pick])

        return RetroactiveResult(
            prompt=self.prompt, prompt_len=self.prompt_len, token_id=self.token_id, token=self.token,
            positions=order, gaps=[p - self.prompt_len for p in order], logits=stack("logits"),
            probs=stack("probs"), top=[r.top[i] for r, i in pick], reference=self.reference,
            tv=stack("tv"), kl=stack("kl"),
        )  # fmt: skip


@dataclass
class PositionSweep:
    """Next-token distributions with the prompt's last token placed at each of ``positions``.

    ``prefix_len``: tokens before the moved one (at ``0..prefix_len-1``); its natural position is
    ``prefix_len``. ``positions``: ``P`` floats, sorted, ``>= prefix_len - 1``; ``probs``: ``(P, vocab)``.
    ``token_text``: display text of every token among the :data:`TOP_KEPT` most probable at any position.
    """

    prompt: str
    prompt_tokens: list[str]
    prefix_len: int
    token_id: int
    token: str
    positions: list[float]
    probs: torch.Tensor
    token_text: dict[int, str]

    @property
    def natural(self) -> float:
        return float(self.prefix_len)

    def index(self, position: float) -> int:
        """Row of ``position`` (matched to 1e-6); ``ValueError`` when it was not swept."""
        for i, p in enumerate(self.positions):
            if abs(p - position) < 1e-6:
                return i
        raise ValueError(
            f"position {position} is not in the sweep ({self.positions[0]} .. {self.positions[-1]})"
        )

    def top_ids(self, k: int, position: float | None = None) -> list[int]:
        """The ``k <= TOP_KEPT`` most probable next tokens at ``position`` (default: the natural position)."""
        k = checks.integer_in("k", k, 1, TOP_KEPT)
        row = self.probs[self.index(self.natural if position is None else position)]
        return [int(i) for i in row.topk(k).indices]


class RetroactivePositionGenerator(Generator):
    """Re-evaluate one token at many positions: one prefill plus one batched forward pass."""

    def resolve_positions(
        self, prompt_len: int, positions: Sequence[float] | None, gaps: Sequence[float] | None
    ) -> list[float]:
        """Absolute positions from ``positions`` or ``gaps`` (default :data:`DEFAULT_GAPS`), checked: each
        finite and ``>= prompt_len`` (the token comes after the prompt), inside the model's context, and
        fractional only on a rotary model. Raises ``ValueError`` naming the bad value."""
        if positions is not None and gaps is not None:
            raise ValueError(
                "give either positions (absolute) or gaps (relative to the prompt length), not both"
            )
        out = []
        if positions is None:
            for i, g in enumerate(checks.as_list(DEFAULT_GAPS if gaps is None else gaps)):
                g = checks.nonnegative(f"gaps[{i}]", g)
                out.append((f"gaps[{i}] = {g:g}", prompt_len + g))
        else:
            for i, p in enumerate(checks.as_list(positions)):
                p = checks.nonnegative(f"positions[{i}]", p)
                if p < prompt_len:
                    raise ValueError(
                        f"positions[{i}] = {p:g} is inside the prompt (length {prompt_len}); the token must "
                        f"be placed at position >= {prompt_len}"
                    )
                out.append((f"positions[{i}] = {p:g}", p))
        if not out:
            raise ValueError("no positions to explore: give at least one position or gap")
        for subject, p in out:
            self._check_placement(subject, p)
        return [p for _, p in out]

    def explore(
        self,
        prompt: str | torch.Tensor,
        positions: Sequence[float] | None = None,
        *,
        gaps: Sequence[float] | None = None,
        token: str | int | None = None,
        top_k: int = 5,
        prefix: Prefix | None = None,
    ) -> RetroactiveResult:
        """Place ``token`` right after ``prompt`` at each position and return every next-token distribution.

        Args:
            prompt: text (or token ids ``(1, T)``).
            positions: absolute positions, ``>= prompt_len``, fractional allowed on rotary models.
            gaps: instead of ``positions``: offsets from ``prompt_len`` (gap 0 = ordinary next position).
                Neither given: :data:`DEFAULT_GAPS`.
            token: the token to place (text of exactly one token, or an id); ``None`` = the prompt's greedy
                next token.
            top_k: how many top tokens to list per position.
            prefix: the prompt already prefilled (:meth:`DecodingCore.prefill` of these ids): skips the
                prefill; the branches are views of its cache, which is left as it was.

        Cost: one prefill of the prompt and one forward pass of ``P + 1`` single-token branches over views of
        the prompt cache (the extra branch is the gap-0 reference).
        """
        top_k = checks.count("top_k", top_k)
        text, ids = self.lm.encode_prompt(prompt)
        t = ids.shape[1]
        placed = self.resolve_positions(t, positions, gaps)
        token_id = None if token is None else self.lm.token_id(token)

        if prefix is None:
            prefix = self.core.prefill(ids)
        elif not torch.equal(prefix.input_ids.to(ids.device), ids):
            raise ValueError("the prefix given is not a prefill of this prompt")
        if token_id is None:
            token_id = int(prefix.next_logits.argmax())
        logits = self.place(prefix, token_id, [*placed, float(t)])  # the last branch is the reference
        probs = torch.softmax(logits, dim=-1)
        reference = probs[-1]
        tv, kl = divergences(probs[:-1], reference)
        return RetroactiveResult(
            prompt=text,
            prompt_len=t,
            token_id=token_id,
            token=self.lm.token_str(token_id),
            positions=placed,
            gaps=[p - t for p in placed],
            logits=logits[:-1],
            probs=probs[:-1],
            top=[top_tokens(self.lm, row, top_k) for row in probs[:-1]],
            reference=reference,
            tv=tv,
            kl=kl,
        )

    def sweep(
        self, prompt: str | torch.Tensor, positions: Sequence[float], *, prefix: Prefix | None = None
    ) -> PositionSweep:
        """Place the prompt's last token at each of ``positions`` and return every next-token distribution.

        The first ``T - 1`` prompt tokens keep positions ``0..T-2``; the last token (naturally at ``T - 1``)
        is fed at each position, which may be fractional and may go back as far as ``T - 2`` (onto the
        previous token's position). Every integer neighbour ``floor(p)``, ``ceil(p)`` of a swept position is
        added to the sweep, so divergences to them can be computed
        (:func:`tempo_lab.phenomena.fractional.neighbour_divergence`). Build a grid with
        :func:`tempo_lab.positions.grid`.

        Cost: one prefill of the first ``T - 1`` tokens and one forward pass of ``P`` single-token branches
        over views of that cache; ``prefix``, a prefill of those ``T - 1`` tokens already held, skips the
        prefill (it is left as it was). Needs a prompt of at least two tokens, and a rotary model for
        fractional positions.
        """
        text, ids = self.lm.encode_prompt(prompt)
        t = ids.shape[1]
        if t < 2:
            raise ValueError(f"the prompt {text!r} has {t} token; the sweep moves the last of two or more")
        wanted: set[float] = set()
        for i, p in enumerate(checks.as_list(positions)):
            p = checks.number(f"positions[{i}]", p)
            if p < t - 2:
                raise ValueError(
                    f"positions[{i}] = {p:g} precedes position {t - 2} of the token before it; the moved "
                    "token may go back at most onto that position"
                )
            checks.in_context(f"positions[{i}] = {p:g}", math.ceil(p), self.lm.max_positions)
            checks.integral_position(f"positions[{i}] = {p:g}", p, self.core.integer_reason)
            wanted.update({round(p, 6), float(math.floor(p)), float(math.ceil(p))})
        if not wanted:
            raise ValueError("give at least one position")
        placed = sorted(wanted)

        if prefix is None:
            prefix = self.core.prefill(ids[:, :-1])
        elif not torch.equal(prefix.input_ids.to(ids.device), ids[:, :-1]):
            raise ValueError("the prefix given is not a prefill of the prompt without its last token")
        probs = torch.softmax(widened(self.place(prefix, int(ids[0, -1]), placed)), dim=-1).cpu()
        kept = sorted({int(i) for i in probs.topk(min(TOP_KEPT, probs.shape[-1]), dim=-1).indices.flatten()})
        return PositionSweep(
            prompt=text,
            prompt_tokens=[self.lm.token_str(i) for i in ids[0].tolist()],
            prefix_len=t - 1,
            token_id=int(ids[0, -1]),
            token=self.lm.token_str(int(ids[0, -1])),
            positions=placed,
            probs=probs,
            token_text={i: self.lm.token_str(i) for i in kept},
        )

    def _check_placement(self, subject: str, position: float) -> None:
        checks.in_context(subject, position, self.lm.max_positions)
        checks.integral_position(subject, position, self.core.integer_reason)

    def place(self, prefix: Prefix, token_id: int | list[int], placed: list[float]) -> torch.Tensor:
        """Logits ``(P, vocab)`` after ``token_id`` fed at each of the ``P`` positions right after ``prefix``,
        as one cached step over ``P`` branches of its cache (the prefix cache is left as it was, so it can be
        placed again: what the live explorer does on every slider move). ``token_id`` may also be one id per
        position (different tokens in one batch). Positions are checked as in every pass."""
        n = len(placed)
        pos = torch.tensor(placed, dtype=torch.float32).view(n, 1)
        if isinstance(token_id, list):
            if len(token_id) != n:
                raise ValueError(f"give one token per position: {len(token_id)} tokens for {n} positions")
            tok = torch.tensor(token_id, dtype=torch.long, device=self.lm.device).view(n, 1)
        else:
            tok = torch.full((n, 1), token_id, dtype=torch.long, device=self.lm.device)
        return self.core.step(branch(prefix.cache, n), tok, Layout(pos))[:, -1]  # sees the prefix, itself
