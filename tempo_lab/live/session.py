"""A live prompt: one prefilled prefix cache, kept between updates, so that moving a token is one cached step.

    session = LiveSession(lm)
    session.use_prompt("Once upon a time")        # prefills (once per distinct prompt)
    probs = session.place(" there", [16.0, 18.5])  # one batched cached step: (2, vocab) probabilities
    session.prefills                               # how many prefills so far (tests watch it)

The session holds one prefix at a time: a new prompt replaces the old cache. Every check (an empty prompt, a
prompt past the context, a token that is not one token, a position inside the prompt) raises ``ValueError``
with tempo_lab's message, and the session stays usable.

Contents: :class:`LiveSession`.
"""

from __future__ import annotations

import torch

from tempo_lab.forward import Prefix
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.plumbing import checks


class LiveSession:
    """The model, its generators' core, and the prefix cache of the current prompt."""

    def __init__(self, lm: LoadedModel):
        self.lm = lm
        self.retro = RetroactivePositionGenerator(lm)
        self.core = self.retro.core
        self.prompt: str | None = None
        self.key: tuple[str, bool] | None = None
        self.prefix: Prefix | None = None
        self.prefills = 0

    def use_prompt(self, prompt: str, *, drop_last: bool = False) -> Prefix:
        """The prefix of ``prompt`` (of all its tokens but the last with ``drop_last``, for moving that last
        token): the one held when unchanged, else a new prefill (which replaces the held one)."""
        key = (prompt, drop_last)
        if key == self.key and self.prefix is not None:
            return self.prefix
        text, ids = self.lm.encode_prompt(prompt)
        checks.in_context(f"the prompt ({ids.shape[1]} tokens)", ids.shape[1] - 1, self.lm.max_positions)
        if drop_last and ids.shape[1] < 2:
            raise ValueError(f"the prompt {text!r} has one token; moving its last token needs two or more")
        self.key, self.prompt, self.prefix = None, None, None  # drop the old cache before the new one
        self.prefix = self.core.prefill(ids[:, :-1] if drop_last else ids)
        self.key, self.prompt = key, text
        self.prefills += 1
        return self.prefix

    def note(self) -> dict[str, int]:
        """What a live view's state reports of the session: how many prefills it has run."""
        return {"prefills": self.prefills}

    @property
    def prompt_len(self) -> int:
        if self.prefix is None:
            raise ValueError("no prompt yet: call use_prompt first")
        return self.prefix.length

    def token_id(self, token: str | int | None) -> int:
        """A token given as one-token text or an id; ``None`` or ``""`` = the prompt's greedy next token."""
        if token is None or token == "":
            return int(self.prefix.next_logits.argmax()) if self.prefix is not None else 0
        return self.lm.token_id(token)

    def place(self, token: str | int | None, positions: list[float]) -> torch.Tensor:
        """Next-token probabilities ``(P, vocab)`` with ``token`` placed right after the prompt at each
        position (each ``>= prompt_len``): one cached step over ``P`` branches of the held prefix."""
        prefix = self.prefix
        if prefix is None:
            raise ValueError("no prompt yet: call use_prompt first")
        for i, p in enumerate(positions):
            p = checks.nonnegative(f"position[{i}]", p)
            if p < prefix.length:
                raise ValueError(
                    f"position {p:g} is inside the prompt ({prefix.length} tokens, positions 0.."
                    f"{prefix.length - 1}); place the token at {prefix.length} or later"
                )
        logits = self.retro.place(prefix, self.token_id(token), [float(p) for p in positions])
        return torch.softmax(widened(logits), dim=-1)
