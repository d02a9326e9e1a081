"""A study's results folder: a manifest, then one Parquet part file per measurement and chunk of prompts.

Layout::

    folder/study.json                       model, dtype, prompt set, conditions, chunking, versions
    folder/<phenomenon>/part-00003.parquet  the rows of chunk 3 (written whole, then renamed into place)

A part file appears only once complete (written under a temporary name, then renamed), so a run killed at
any moment leaves whole parts behind, and a rerun recomputes exactly the chunks that have none. A folder
whose manifest names another model, prompt set, conditions or chunking is refused, never mixed in.

Contents: :class:`ResultsFolder` (``claim``, ``done``, ``write``, ``read``), :func:`manifest`.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import torch
import transformers

#: manifest keys that must match for a folder to be resumed or extended
IDENTITY = ("model", "dtype", "prompt_set", "n_prompts", "conditions", "batch_size", "seed")


def manifest(lm, prompts, conditions, batch_size: int, seed: int) -> dict:
    """What a results folder records about the run that wrote it."""
    return {
        "model": lm.name,
        "dtype": str(lm.dtype).removeprefix("torch."),
        "prompt_set": prompts.fingerprint,
        "prompt_set_name": prompts.name,
        "n_prompts": len(prompts),
        "conditions": conditions.as_dict(),
        "batch_size": batch_size,
        "seed": seed,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tempo_lab": version("tempo_lab"),
        },
    }


class ResultsFolder:
    """One study's folder (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def manifest_path(self) -> Path:
        return self.path / "study.json"

    def read_manifest(self) -> dict:
        if not self.manifest_path.exists():
            raise FileNotFoundError(f"no study in {self.path} (no study.json)")
        return json.loads(self.manifest_path.read_text())

    def claim(self, wanted: dict) -> None:
        """Create the folder for ``wanted`` (a :func:`manifest`), or check that it holds that study."""
        if self.manifest_path.exists():
            found = self.read_manifest()
            wrong = [k for k in IDENTITY if found.get(k) != wanted.get(k)]
            if wrong:
                k = wrong[0]
                raise ValueError(
                    f"{self.path} holds a study with another {k} ({found.get(k)!r}, not {wanted.get(k)!r}); "
                    "refusing to mix results: give a new folder"
                )
            return
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(wanted, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.manifest_path)

    def part(self, phenomenon: str, chunk: int) -> Path:
        return self.path / phenomenon / f"part-{chunk:05d}.parquet"

    def done(self, phenomenon: str) -> set[int]:
        """The chunks of ``phenomenon`` already written."""
        folder = self.path / phenomenon
        if not folder.exists():
            return set()
        return {int(p.stem.split("-")[1]) for p in folder.glob("part-*.parquet")}

    def write(self, phenomenon: str, chunk: int, rows: list[dict]) -> Path:
        """Write one chunk's rows whole, then move the file into place."""
        path = self.part(phenomenon, chunk)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        pd.DataFrame(rows).to_parquet(tmp, engine="pyarrow", index=False)
        tmp.replace(path)
        return path

    def read(self, phenomenon: str) -> pd.DataFrame:
        """Every part of ``phenomenon`` as one table, sorted by prompt (and condition)."""
        parts = sorted((self.path / phenomenon).glob("part-*.parquet"))
        if not parts:
            raise FileNotFoundError(f"no {phenomenon} results in {self.path}")
        table = pd.concat([pd.read_parquet(p, engine="pyarrow") for p in parts], ignore_index=True)
        keys = [c for c in ("prompt", "strategy", "mode", "gap", "threshold") if c in table.columns]
        return table.sort_values(keys, kind="stable", ignore_index=True)
