"""A study's results folder: the verified store of :mod:`tempo_lab.results`, one table per measurement.

    folder/manifest.json                    model, dtype, prompts, conditions, chunks of prompts, versions
    folder/<phenomenon>/part-00003.parquet  the rows of chunk 3, with the record of what they hold

A part's key is its chunk number and it holds that chunk's prompt indices (the plan in the manifest), so a
copied, foreign, truncated or altered part is caught on resume and on read (:mod:`tempo_lab.results`).

Contents: :class:`StudyFolder`, :func:`manifest`, :data:`IDENTITY`.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import torch
import transformers

from tempo_lab.results import IncompleteResults, ResultsFolder, identity_hash

#: manifest keys that must match for a folder to be resumed, extended or read
IDENTITY = ("model", "dtype", "prompt_set", "n_prompts", "conditions", "batch_size", "seed", "chunks")


def manifest(
    lm, prompts, conditions, batch_size: int, seed: int, chunks: list[list[int]], resume: str
) -> dict:
    """What a results folder records about the run that writes it; ``resume``: the command completing it."""
    return {
        "model": lm.name,
        "dtype": str(lm.dtype).removeprefix("torch."),
        "prompt_set": prompts.fingerprint,
        "prompt_set_name": prompts.name,
        "n_prompts": len(prompts),
        "conditions": conditions.as_dict(),
        "batch_size": batch_size,
        "seed": seed,
        "chunks": chunks,
        "resume": resume,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tempo_lab": version("tempo_lab"),
        },
    }


class StudyFolder(ResultsFolder):
    """A study's folder: parts keyed by chunk, verified against the manifest's chunks."""

    def identity(self, m: dict) -> str:
        return identity_hash({k: m.get(k) for k in IDENTITY})

    @staticmethod
    def key(chunk: int) -> str:
        return f"{chunk:05d}"

    def expected(self, m: dict) -> dict[str, list[int]]:
        """Part key -> the prompt indices that part holds."""
        return {self.key(c): list(prompts) for c, prompts in enumerate(m["chunks"])}

    def write_chunk(self, m: dict, phenomenon: str, chunk: int, rows: list[dict]) -> Path:
        return self.write(phenomenon, self.key(chunk), rows, self.identity(m), m["chunks"][chunk])

    def done(self, m: dict, phenomenon: str) -> set[int]:
        """The chunks of ``phenomenon`` whose parts verify (failing parts are quarantined)."""
        return {int(k) for k in self.verified(phenomenon, self.expected(m), self.identity(m))}

    def read(
        self, m: dict, phenomenon: str, *, allow_partial: bool = False
    ) -> tuple[pd.DataFrame, list[int]]:
        """Every verified part of ``phenomenon`` as one table sorted by prompt (and condition), and the
        missing chunks; :class:`~tempo_lab.results.IncompleteResults` when some are missing, unless
        ``allow_partial``."""
        parts = self.verified(phenomenon, self.expected(m), self.identity(m))
        missing = [c for c in range(len(m["chunks"])) if self.key(c) not in parts]
        if not parts:
            raise FileNotFoundError(f"no {phenomenon} results in {self.path}")
        if missing and not allow_partial:
            raise IncompleteResults(self.path, {phenomenon: [self.key(c) for c in missing]}, m["resume"])
        table = pd.concat([parts[k] for k in sorted(parts)], ignore_index=True)
        keys = [c for c in ("prompt", "strategy", "mode", "gap", "threshold") if c in table.columns]
        return table.sort_values(keys, kind="stable", ignore_index=True), missing

    def missing(self, m: dict, phenomena: Sequence[str]) -> dict[str, list[str]]:
        """Per measurement with any part, the keys of its missing chunks (after verification)."""
        out = {}
        for phenomenon in phenomena:
            have = self.done(m, phenomenon)
            out[phenomenon] = [self.key(c) for c in range(len(m["chunks"])) if c not in have]
        return {p: k for p, k in out.items() if k}
