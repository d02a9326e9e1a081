"""The ``positions`` table of notebook 10's runs folder: each RoPE char-LM's loss by position at each factor
past its trained length, under every extension method of :mod:`tempo_lab.tpi.lengths` and with each position
predicted from the trained length of bytes before it alone (``window``): whether a method uses the context
past the trained length, or only survives it.

    measure_positions("results/10_context_extension")   # resumes per model
    past_trained(read_positions("results/10_context_extension"))

Contents: :data:`POSITION_METHODS`, :class:`PositionSpec`, :func:`position_rows`, :func:`measure_positions`,
:func:`read_positions`, :func:`past_trained`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from tempo_lab.corpus import load_corpus
from tempo_lab.plumbing import checks
from tempo_lab.tpi.convert import as_transformers
from tempo_lab.tpi.lengths import METHODS, loss_by_position, method, trained_length
from tempo_lab.tpi.model import CharLM
from tempo_lab.tpi.runs import LM, RunsFolder, checkpoint, key

#: the loss-by-position table's methods: every method and the model seeing only the trained length before each
#: position (``window``), the baseline that shows whether a method uses the longer context or only survives it
POSITION_METHODS = (*METHODS, "window")
POSITIONS = "positions"


@dataclass(frozen=True)
class PositionSpec:
    """What the ``positions`` table measures for each RoPE char-LM: the loss by position (bits, in bins of
    ``bin`` positions) at each factor under each of :data:`POSITION_METHODS` (``window``: each position
    predicted from the trained length of bytes before it alone)."""

    factors: tuple[float, ...] = (2, 4, 8, 16)
    methods: tuple[str, ...] = POSITION_METHODS
    window: int = 32  # Self-Extend's neighbour window, as the lengths table's
    bin: int = 16
    max_bytes: int | None = None
    batch: int = 4

    def __post_init__(self) -> None:
        for i, f in enumerate(self.factors):
            checks.positive(f"factors[{i}]", f)
        for name in ("window", "bin", "batch"):
            checks.count(name, getattr(self, name))
        for name in self.methods:
            if name not in POSITION_METHODS:
                raise ValueError(f"unknown method {name!r}; expected one of {POSITION_METHODS}")

    def header(self) -> dict:
        spec = asdict(self)
        spec.pop("batch")
        return json.loads(json.dumps(spec))


def position_rows(model: CharLM, data: torch.Tensor, spec: PositionSpec, trained: int = 128) -> list[dict]:
    """One RoPE char-LM's rows: ``{"method", "factor", "bin", "bits"}``, the mean loss of the positions
    ``bin .. bin + spec.bin - 1`` of a window of ``factor x trained`` bytes."""
    lm = as_transformers(model, context=trained)
    rows = []
    for factor in spec.factors:
        length = round(factor * trained)
        for name in spec.methods:
            with method(lm, "plain" if name == "window" else name, length, spec.window):
                loss = loss_by_position(lm, data, length, spec.batch, trained if name == "window" else None)
            for b in range(0, length, spec.bin):
                rows.append({"method": name, "factor": float(factor), "bin": b,
                             "bits": float(loss[b : b + spec.bin].mean())})  # fmt: skip
    return rows


def measure_positions(
    folder: str | Path, spec: PositionSpec = PositionSpec(), progress: bool = True
) -> pd.DataFrame:
    """Measure every RoPE model of ``folder``'s ``lm`` table not yet in its ``positions`` table (see
    :class:`PositionSpec`); returns :func:`read_positions`."""
    runs = RunsFolder(folder)
    runs.check_writable()
    trained = trained_length(folder)
    models = runs.runs(LM)
    models = models[models.architecture == "rope"]
    data = load_corpus().val[: spec.max_bytes]
    with runs.writing():
        keys = [key(a, s) for a, s in zip(models.architecture, models.seed, strict=True)]
        runs.claim_table(POSITIONS, spec.header(), keys)
        done = runs.runs(POSITIONS, required=False)
        have = {key(a, s) for a, s in zip(done.get("architecture", []), done.get("seed", []), strict=True)}
        todo = [int(s) for s in models.seed if key("rope", s) not in have]
        for seed in tqdm(todo, desc="loss by position", disable=not progress):
            rows = position_rows(checkpoint("rope", folder, seed), data, spec, trained)
            runs.add(POSITIONS, {"architecture": "rope", "seed": seed, "trained": trained, "scores": rows})
    return read_positions(folder)


def read_positions(folder: str | Path) -> pd.DataFrame:
    """The verified ``positions`` table: ``seed, trained, method, factor, bin, bits``."""
    parts = RunsFolder(folder).runs(POSITIONS, resume="tempo_lab.tpi.by_position.measure_positions")
    rows = [{"seed": int(p.seed), "trained": int(p.trained), **score} for p in parts.itertuples()
            for score in p.scores]  # fmt: skip
    return pd.DataFrame(rows).sort_values(["seed", "method", "factor", "bin"], ignore_index=True)


def past_trained(positions: pd.DataFrame) -> pd.DataFrame:
    """Per seed, method and factor: the mean bits of the positions past the trained length (bins from
    ``trained`` on): what a method makes of the context a trained-length window cannot see."""
    far = positions[positions.bin >= positions.trained]
    return far.groupby(["seed", "method", "factor"], as_index=False).bits.mean()
