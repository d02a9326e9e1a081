"""The committed text: English prose that ships with every CPython, split once and for all (the TPI
char-LMs train on it, notebook 11 rolls caches over it, notebook 10 measures long-text loss on it).

Contents:
- ``Corpus``: train / val / test byte tensors, with provenance and a SHA-256 of the text.
- ``load_corpus()``: Python's documentation topics (``pydoc_data.topics``, the text behind ``help("if")``;
  PSF licence), every topic in sorted order joined by blank lines, UTF-8 bytes, split 90 / 5 / 5 by position.
- ``from_text(text)``: the same split over any text (an empty one is refused).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

SPLIT = (0.90, 0.05, 0.05)
PROVENANCE = (
    "pydoc_data.topics of CPython (the documentation topics behind help()), PSF licence; topics in sorted "
    "order joined by blank lines, UTF-8 bytes, split 90/5/5 by position"
)


@dataclass(frozen=True)
class Corpus:
    """Byte splits, each a 1-D int64 tensor of values in [0, 256)."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    sha256: str
    provenance: str

    def split(self, name: str) -> torch.Tensor:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; expected 'train', 'val' or 'test'")
        return getattr(self, name)


def from_text(text: str, provenance: str = "user text") -> Corpus:
    """Split ``text`` 90 / 5 / 5 by position into byte tensors."""
    data = text.encode("utf-8")
    if len(data) < 100:
        raise ValueError(f"the corpus is empty or too short to split ({len(data)} bytes; need at least 100)")
    ids = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
    a = int(len(ids) * SPLIT[0])
    b = a + int(len(ids) * SPLIT[1])
    return Corpus(ids[:a], ids[a:b], ids[b:], hashlib.sha256(data).hexdigest(), provenance)


def load_corpus() -> Corpus:
    """The bundled corpus: CPython's ``pydoc_data.topics``."""
    from pydoc_data.topics import topics

    return from_text("\n\n".join(topics[k] for k in sorted(topics)), PROVENANCE)
