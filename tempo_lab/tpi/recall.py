"""The synthetic associative-recall probe: key -> value pairs in context, then a key, then its value.

A sequence of ``pairs`` distinct keys (lower-case letters), each followed by its value (a digit), then ``;``,
then every key again in a new order, each followed by its value: ``"c3a7f1;a7f1c3"``. The values after ``;``
are the answers: each is fixed by the key just before it and the pairs stored before ``;``. The seed
document predicts TPI cannot do this, because
storage and retrieval share one phase. The answer depends on content alone (which key), so any model that can
address by content can learn it.

Contents:
- ``RecallTask``: the task's shape (pairs per sequence), checked.
- ``RecallTask.sample(n, generator)``: ``(inputs (n, 4 * pairs), answers (n, pairs))`` byte ids; the answers
  sit
  at ``RecallTask.answer_slots`` of the next-byte predictions.
- ``train_recall(config, task, steps, seed)``: train a ``CharLM`` on the answer byte only; returns the model
  and
  its accuracy curve.
- ``accuracy(model, task, inputs, answers)``: per query index, the share of answers whose argmax is right.
- ``blind_accuracy(task)``: the first-query accuracy of the best guess that knows the stored values but not
  which key holds which (the most frequent stored value): the floor that recall must beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from tempo_lab.tpi.model import CharLM, ModelConfig

KEYS = b"abcdefghijklmnopqrstuvwxyz"
VALUES = b"0123456789"
QUERY = ord(";")


@dataclass(frozen=True)
class RecallTask:
    """``pairs`` key/value pairs per sequence (1..26)."""

    pairs: int = 6

    def __post_init__(self) -> None:
        if not 1 <= self.pairs <= len(KEYS):
            raise ValueError(f"pairs must be in 1..{len(KEYS)}, got {self.pairs!r}")

    @property
    def answer_slots(self) -> torch.Tensor:
        """Input positions whose next-byte prediction is an answer: the queried keys after ``;``. (pairs,)"""
        return 2 * self.pairs + 1 + 2 * torch.arange(self.pairs)

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n sequences: inputs (n, 4 * pairs) and answers (n, pairs), byte ids."""
        keys = torch.tensor(list(KEYS))[
            torch.rand(n, len(KEYS), generator=generator).argsort(dim=1)[:, : self.pairs]
        ]
        values = torch.tensor(list(VALUES))[
            torch.randint(0, len(VALUES), (n, self.pairs), generator=generator)
        ]
        order = torch.rand(n, self.pairs, generator=generator).argsort(dim=1)
        asked, answers = keys.gather(1, order), values.gather(1, order)
        inputs = torch.cat(
            [
                torch.stack([keys, values], dim=2).flatten(1),
                torch.full((n, 1), QUERY),
                torch.stack([asked, answers], dim=2).flatten(1)[:, :-1],
            ],
            dim=1,
        )
        return inputs, answers


@torch.no_grad()
def accuracy(model: CharLM, task: RecallTask, inputs: torch.Tensor, answers: torch.Tensor) -> list[float]:
    """Per query index (first asked key first), the share of sequences whose argmax answer is right:
    ``(pairs,)`` floats. The first query is the clean test: later ones can also be narrowed down by
    elimination (values not yet asked), without recalling anything."""
    was = model.training
    model.eval()
    right = (model(inputs)[:, task.answer_slots].argmax(-1) == answers).float().mean(0).tolist()
    model.train(was)
    return right


def blind_accuracy(task: RecallTask, n: int = 20000, seed: int = 0) -> float:
    """First-query accuracy of always answering the most frequent stored value (no key lookup)."""
    inputs, answers = task.sample(n, torch.Generator().manual_seed(seed))
    stored = inputs[:, 1 : 2 * task.pairs : 2]  # (n, pairs) the values, in storage order
    guess = torch.mode(stored, dim=1).values
    return float((guess == answers[:, 0]).float().mean())


def train_recall(
    config: ModelConfig,
    task: RecallTask = RecallTask(),
    steps: int = 8000,
    seed: int = 0,
    batch: int = 64,
    lr: float = 1e-3,
    eval_every: int = 500,
    progress: bool = True,
) -> tuple[CharLM, list[dict]]:
    """Train ``CharLM(config)`` on the answers of fresh recall sequences; accuracy on 1000 held-out ones."""
    torch.manual_seed(seed)
    model = CharLM(config)
    generator = torch.Generator().manual_seed(seed)
    held_out = task.sample(1000, torch.Generator().manual_seed(10_000 + seed))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    curve = []
    model.train()
    for step in tqdm(
        range(1, steps + 1), desc=f"recall {config.architecture} seed {seed}", disable=not progress
    ):
        inputs, answers = task.sample(batch, generator)
        logits = model(inputs)[:, task.answer_slots]  # (batch, pairs, 256)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), answers.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % eval_every == 0 or step == steps:
            per_query = accuracy(model, task, *held_out)
            curve.append({"step": step, "accuracy": sum(per_query) / len(per_query), "first": per_query[0]})
    return model.eval(), curve
