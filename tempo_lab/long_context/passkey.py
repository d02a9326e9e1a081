"""A RULER sample as the model reads it, four ways, and its two scores.

    tokens = Tokens.of(lm, sample)
    tokens.real()                                 # the sample as RULER builds it
    tokens.gap(4096)                              # its haystack cut, positions as a 4,096-token sample's
    tokens.at_distance(4096)                      # its haystack cut, the question 4,096 after the needle
    tokens.start_far(16384)                       # every token, the first 4 then a jump
    found = answer(lm, tokens.gap(4096), tokens)  # RULER's score of the greedy answer, log p(value)

**Real** (``real``): the sample's tokens at positions ``0..n-1`` (``n`` = its token count, ``L``).

**Gap version at D** (``gap``): what makes distance and length separable. The sample keeps its instruction
(up to the first newline), :data:`AROUND` tokens of haystack on each side of the needle, the last
:data:`AROUND` haystack tokens before the question, and the question with RULER's answer prefix; the rest of
the haystack is cut (about 300 tokens remain). Each kept run starts at the position its first token would
have in the same sample sized for ``D`` tokens, ``round(slot · D / L)`` with ``L`` the length RULER sized it
for, and runs on contiguously. So at ``D = L`` every kept token sits at its real position; at any ``D`` the
question sits ``D / L`` times as far from the needle as in the real sample (the needle's and the question's
runs both start :data:`AROUND` tokens before them), and as far from the start within ``AROUND · (D/L - 1)``
positions; a few hundred tokens lie in between. A run that would overlap the one before starts right after
it instead (only at ``D`` far below ``L``); :attr:`Positions.distance` says how far the question's first
token sits from the needle's.

**At distance D** (``distance``): the gap version as the registered rules (LC4) define it, the question ``D``
positions after the needle's real position. The same kept runs as the gap version; those up to the needle's
run keep their real positions, the later ones move together so that the question's first token sits at
``needle + D``. Where the needle and the question share a run (a needle close enough to the question that
their kept runs merge), the run is cut after the needle. At ``D`` = the real distance every kept token sits at
its real position, as in the gap version at ``D = L``; the question sits at ``needle + D``, so past the real
distance the last position exceeds ``D`` itself (about ``D + L/2`` at a median depth).

**Start-far at D** (``start_far``): every token of the sample, the first :data:`START` at positions ``0..3``,
then a jump so that the question's first token sits at position ``D``, the rest contiguous. The needle stays
as near the question as in the sample; only the start moves away (where the attention sink sits, notebook 11).

:func:`answer` prefills the context once (the model's own causal path, no ``n x n`` mask: the layouts here
are causal, and every position differs, so no packed-sequence detection can trigger), then from that cache
(a) feeds the value's tokens after the context, teacher-forced, for ``log p(value | context)``, and (b)
generates greedily up to :data:`MAX_NEW` tokens or the end-of-sequence token, scored by RULER's own
``process_results``.

Contents: :class:`Tokens` (its versions :meth:`~Tokens.real`, :meth:`~Tokens.gap`,
:meth:`~Tokens.at_distance`, :meth:`~Tokens.start_far`, and :meth:`~Tokens.version` by name),
:class:`Positions`, :class:`Answer`, :func:`answer`, :data:`VERSIONS`, :data:`AROUND`, :data:`START`,
:data:`MAX_NEW`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache

from tempo_lab.forward import DecodingCore, branch
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel
from tempo_lab.long_context.ruler import Sample, score
from tempo_lab.plumbing import checks

AROUND = 64  # haystack tokens kept on each side of the needle and before the question
START = 4  # tokens kept at the start in the start-far layout (StreamingLLM's four sinks)
#: the versions :meth:`Tokens.version` builds, by the names the study's plan gives them
VERSIONS = ("real", "gap", "distance", "natural", "start_far")
#: greedy tokens generated per answer: the 7-digit value takes at most 8 after RULER's answer prefix;
#: lm-eval's task asks for 128, which changes no score here (RULER's score is a substring match) but costs
MAX_NEW = 32


@dataclass(frozen=True)
class Positions:
    """The ids ``(1, k)`` and layout of one version of a sample, and where the needle and question sit:
    ``needle`` and ``question`` are the positions of their first tokens."""

    ids: torch.Tensor
    layout: Layout
    needle: float
    question: float

    @property
    def distance(self) -> float:
        """Positions from the needle's first token to the question's."""
        return self.question - self.needle

    @property
    def last(self) -> float:
        """The largest position: the last context token's."""
        return float(self.layout.positions.max())


@dataclass(frozen=True)
class Tokens:
    """A sample tokenized as lm-eval's ``HFLM`` tokenizes a request (the tokenizer's own special tokens:
    Gemma's BOS, none on SmolLM2), with the token spans of its parts: ``instruction`` ends at the first
    newline, ``needle`` ``(start, stop)``, ``question`` starts the question."""

    sample: Sample
    ids: torch.Tensor  # (1, n)
    instruction: int
    needle: tuple[int, int]
    question: int
    value: torch.Tensor  # (1, k): the tokens of " " + value as they follow the context

    @classmethod
    def of(cls, lm: LoadedModel, sample: Sample) -> Tokens:
        encoded = lm.tokenizer(sample.context, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]

        def token_at(char: int) -> int:  # the first token whose span ends past ``char``
            return next(i for i, (a, b) in enumerate(offsets) if b > char and b > a)

        # lm-eval's split of context + continuation: the whole encoded, the context's tokens removed
        whole = lm.tokenizer(sample.context + " " + sample.value)["input_ids"]
        if whole[: len(ids)] != ids:
            raise ValueError(f"the context of {sample.id} does not tokenize as a prefix of context + value")
        return cls(
            sample,
            torch.tensor([ids]),
            token_at(sample.context.index("\n")),
            (token_at(sample.needle[0]), token_at(sample.needle[1] - 1) + 1),
            token_at(sample.question),
            torch.tensor([whole[len(ids) :]]),
        )

    @property
    def n(self) -> int:
        return self.ids.shape[1]

    def real(self) -> Positions:
        """The sample as RULER builds it."""
        layout = Layout.contiguous(self.n, "real")
        return Positions(self.ids, layout, float(self.needle[0]), float(self.question))

    def runs(self) -> list[tuple[int, int]]:
        """The kept token runs of the gap version, ``(start, stop)`` slots, merged where they touch."""
        a, b = self.needle
        wanted = [(0, self.instruction + 1), (max(0, a - AROUND), min(self.n, b + AROUND)),
                  (max(0, self.question - AROUND), self.n)]  # fmt: skip
        runs: list[tuple[int, int]] = []
        for start, stop in sorted(wanted):
            if runs and start <= runs[-1][1]:
                runs[-1] = (runs[-1][0], max(runs[-1][1], stop))
            else:
                runs.append((start, stop))
        return runs

    def gap(self, length: int) -> Positions:
        """The gap version at ``length`` (see the module docstring)."""
        length = checks.count("length", length)
        keep, where, end = [], [], 0.0
        moved: dict[int, float] = {}
        for start, stop in self.runs():
            first = max(float(round(start * length / self.sample.max_length)), end)
            keep.append(torch.arange(start, stop))
            where.append(first + torch.arange(stop - start, dtype=torch.float32))
            end = first + (stop - start)
            for slot in (self.needle[0], self.question):
                if start <= slot < stop:
                    moved[slot] = first + (slot - start)
        slots = torch.cat(keep)
        positions = torch.cat(where)[None]
        layout = Layout(positions, None, f"gap {length}")
        return Positions(self.ids[:, slots], layout, moved[self.needle[0]], moved[self.question])

    def at_distance(self, distance: int) -> Positions:
        """The version at ``distance`` (see the module docstring): the question's first token ``distance``
        positions after the needle's real one. Refused below the least distance at which the moved runs still
        start after the runs before them (the message names it)."""
        distance = checks.count("distance", distance)
        a, b = self.needle
        runs: list[tuple[int, int, bool]] = []  # (start, stop, moved)
        for start, stop in self.runs():
            if start <= a < stop and self.question < stop:  # the needle's run holds the question: cut it
                runs += [(start, b, False), (b, stop, True)]
            else:
                runs.append((start, stop, start > a))
        first = next(i for i, run in enumerate(runs) if run[2])  # the question's run (or its part after b)
        least = runs[first - 1][1] - runs[first][0] + self.question - a  # moved runs right after the rest
        if distance < least:
            raise ValueError(
                f"distance = {distance} would put the question's run before the needle's end in sample "
                f"{self.sample.index}: the least distance there is {least}"
            )
        shift = float(a + distance - self.question)
        slots = torch.cat([torch.arange(start, stop) for start, stop, _ in runs])
        positions = torch.cat([torch.arange(start, stop, dtype=torch.float32) + (shift if moved else 0.0)
                               for start, stop, moved in runs])  # fmt: skip
        layout = Layout(positions[None], None, f"distance {distance}")
        return Positions(self.ids[:, slots], layout, float(a), float(a + distance))

    def version(self, name: str, length: int) -> Positions:
        """The version ``name`` (one of :data:`VERSIONS`) at ``length``: ``real`` and ``natural`` (the study's
        near samples at their own positions) :meth:`real`, ``gap`` :meth:`gap`, ``distance``
        :meth:`at_distance`, ``start_far`` :meth:`start_far`."""
        if name in ("real", "natural"):
            return self.real()
        if name == "gap":
            return self.gap(length)
        if name == "distance":
            return self.at_distance(length)
        if name == "start_far":
            return self.start_far(length)
        raise ValueError(f"unknown version {name!r}: one of {VERSIONS}")

    def start_far(self, length: int) -> Positions:
        """Start-far at ``length``: the first :data:`START` tokens at ``0..3``, the rest moved on so that the
        question's first token sits at ``length`` (see the module docstring)."""
        length = checks.count("length", length)
        jump = float(length - self.question)
        if jump < 0:
            raise ValueError(
                f"start-far moves the start away: length = {length} is below the question's slot "
                f"{self.question}"
            )
        positions = torch.arange(self.n, dtype=torch.float32)
        positions[START:] += jump
        return Positions(self.ids, Layout(positions[None], None, f"start-far {length}"),
                         self.needle[0] + jump, self.question + jump)  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """What :func:`answer` found: the greedy ``text``, RULER's ``score`` of it, ``logprob`` (nats) of the
    value's tokens after the context, teacher-forced, and ``first_logprob`` of its first token."""

    text: str
    score: float
    logprob: float
    first_logprob: float


def answer(lm: LoadedModel, version: Positions, tokens: Tokens, *, max_new: int = MAX_NEW) -> Answer:
    """Prefill ``version`` once, then the teacher-forced log-probability of the value and the greedy answer
    from the same cache (see the module docstring). Runs under whatever method is applied around it."""
    core = DecodingCore(lm)
    ids = version.ids.to(lm.device)
    cache = DynamicCache(config=lm.model.config)
    next_logits = core.forward(ids, version.layout, cache, last=True)[0, -1]  # (vocab,)
    after = version.last + 1
    value = tokens.value.to(lm.device)
    k = value.shape[1]
    rows = next_logits[None]
    if k > 1:
        forced = core.forward(value[:, :-1], Layout.contiguous(k - 1, start=after), branch(cache, 1))[0]
        rows = torch.cat([rows, forced])
    logprobs = torch.log_softmax(rows.double(), -1).gather(-1, value[0, :, None])[:, 0]
    generated: list[int] = []
    eos = lm.tokenizer.eos_token_id
    current, logits = branch(cache, 1), next_logits
    for i in range(max_new):
        token = int(logits.argmax())
        if token == eos:
            break
        generated.append(token)
        if i + 1 < max_new:
            new = torch.tensor([[token]], device=lm.device)
            logits = core.forward(new, Layout.contiguous(1, start=after + i), current, last=True)[0, -1]
    text = lm.tokenizer.decode(generated, skip_special_tokens=True)
    return Answer(text, score(tokens.sample, text), float(logprobs.sum()), float(logprobs[0]))
