"""Computing one cell of the long-context study (:mod:`tempo_lab.long_context.study`): the samples of a
model (RULER's, built once per run), the passkey rows of a cell's samples, and the loss rows of one window of
the long text.

Contents: :class:`Samples`, :func:`passkey_rows`, :func:`long_text`, :func:`loss_rows`, :data:`BIN`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from tempo_lab.corpus import load_corpus
from tempo_lab.extension.methods import Method
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel
from tempo_lab.long_context.passkey import Tokens, answer
from tempo_lab.long_context.ruler import ruler_samples

if TYPE_CHECKING:
    from tempo_lab.long_context.study import Cell, LongContextSpec

BIN = 256  # positions per bin of the loss table


@dataclass
class Samples:
    """The samples of one model, built once per run (building a RULER length generates 500 samples)."""

    lm: LoadedModel
    spec: LongContextSpec
    built: dict = field(default_factory=dict)

    def of(self, cell: Cell) -> list[Tokens]:
        if cell.version == "real":
            source, n, near = cell.length, cell.n, False
        elif cell.version in ("gap", "distance"):
            source, n, near = self.spec.gap_source, cell.n, False
        else:
            source, n, near = self.spec.near_source, cell.n, True
        key = (source, n, near)
        if key not in self.built:
            if near:  # the needle within `near` tokens of the question, from RULER's 500 at the source length
                found = []
                for s in ruler_samples(self.lm, source, 500):
                    tokens = Tokens.of(self.lm, s)
                    if tokens.question - tokens.needle[1] <= self.spec.near:
                        found.append(tokens)
                    if len(found) == n:
                        break
                self.built[key] = found
            else:
                self.built[key] = [Tokens.of(self.lm, s) for s in ruler_samples(self.lm, source, n)]
        return self.built[key]


def passkey_rows(lm: LoadedModel, model: str, cell: Cell, tokens: Sequence[Tokens]) -> list[dict]:
    method = Method.for_length(lm, cell.method, cell.length)
    rows = []
    with method.applied(lm):
        for t in tokens:
            version = t.version(cell.version, cell.length)
            start = time.perf_counter()
            found = answer(lm, version, t)
            rows.append({
                "model": model, "version": cell.version, "method": cell.method, "setting": method.setting,
                "length": cell.length, "trained": method.trained, "sample": t.sample.index,
                "source": t.sample.max_length, "depth": t.sample.depth, "tokens": int(version.ids.shape[1]),
                "needle": version.needle, "distance": version.distance, "last": version.last,
                "answer": found.text, "score": found.score, "logprob": found.logprob,
                "first_logprob": found.first_logprob, "seconds": time.perf_counter() - start,
            })  # fmt: skip
    return rows


def long_text(lm: LoadedModel) -> torch.Tensor:
    """The TPI corpus's whole text (train, validation and test splits in order: CPython's
    ``pydoc_data.topics``), tokenized: ``(1, n)`` ids; 113,108 tokens on SmolLM2."""
    corpus = load_corpus()
    raw = bytes(torch.cat([corpus.train, corpus.val, corpus.test]).tolist())
    return lm.encode(raw.decode("utf-8", errors="replace"))


def loss_rows(lm: LoadedModel, model: str, cell: Cell, window: int, ids: torch.Tensor) -> list[dict]:
    method = Method.for_length(lm, cell.method, cell.length)
    n = cell.length
    if ids.shape[1] < (window + 1) * n:
        raise ValueError(f"the long text has {ids.shape[1]} tokens on {lm.name}: no window {window} of {n}")
    part = ids[:, window * n : (window + 1) * n]
    start = time.perf_counter()
    with method.applied(lm):
        logprobs = DecodingCore(lm).token_logprobs(part, Layout.contiguous(n))[0]  # (n - 1,)
    seconds = time.perf_counter() - start
    loss = -logprobs.double()
    rows = []
    for b in range(0, n - 1, BIN):  # bin b holds the predictions of positions b+1 .. b+BIN
        chunk = loss[b : b + BIN]
        rows.append({"model": model, "method": cell.method, "setting": method.setting, "length": n,
                     "trained": method.trained,
                     "window": window, "bin": b, "loss": float(chunk.mean()), "tokens": int(chunk.numel()),
                     "seconds": seconds if b == 0 else 0.0})  # fmt: skip
    return rows
