"""The TPI study behind notebook 08: every architecture, several seeds, one budget, written as it goes.

A study folder holds ``study.json`` (the settings, model shape and corpus hash the language models were run
with), ``runs.jsonl`` (one line per trained language model: curves, BPC, gradient norms), ``recall.json`` and
``recall.jsonl`` (the same for the recall models) and ``checkpoints/<name>.pt`` for the first seed of each. A
rerun skips every run already written, so an interrupted study resumes where it stopped; a folder written with
other settings or another corpus is refused.

Contents:
- ``StudySpec``: architectures, seeds, LM budget, model shape.
- ``committed_results()``: the folder of the committed study (``results/08_tpi`` of a tempo_lab checkout).
- ``RecallSpec``: the recall probe's task size, budget and depth.
- ``run_study(folder, spec)`` / ``run_recall(folder, spec)``: train what is missing.
- ``read_study(folder)``: ``(runs, recall)`` DataFrames from a folder, without training.
- ``checkpoint(folder, name)``: a trained model from the folder (``name``: an architecture or
  ``recall-<arch>``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from tempo_lab.tpi.corpus import Corpus, load_corpus
from tempo_lab.tpi.model import ARCHITECTURES, ModelConfig
from tempo_lab.tpi.recall import RecallTask, train_recall
from tempo_lab.tpi.train import TrainSettings, load, save, train

CHECKOUT_RESULTS = Path(__file__).resolve().parents[2] / "results" / "08_tpi"


def committed_results() -> Path:
    """The committed study notebook 08 reads: ``results/08_tpi`` of the tempo_lab checkout this package runs
    from. An installed wheel holds no results: the error says where they are and what to pass instead."""
    if not (CHECKOUT_RESULTS / "runs.jsonl").is_file():
        raise FileNotFoundError(
            f"the committed TPI study is not at {CHECKOUT_RESULTS}: it lives in a tempo_lab checkout "
            "(results/08_tpi), not in the installed package; pass folder=<checkout>/results/08_tpi, or train "
            "a study of your own with tempo_lab.tpi.study.run_study(folder)"
        )
    return CHECKOUT_RESULTS


def _folder(folder: str | Path | None) -> Path:
    return committed_results() if folder is None else Path(folder)


@dataclass(frozen=True)
class StudySpec:
    """What one study trains: every architecture under every seed, on one budget."""

    architectures: tuple[str, ...] = tuple(ARCHITECTURES)
    seeds: tuple[int, ...] = (0, 1, 2)
    train: TrainSettings = field(default_factory=TrainSettings)
    dim: int = 64
    layers: int = 4

    def __post_init__(self) -> None:
        unknown = [a for a in self.architectures if a not in ARCHITECTURES]
        if unknown:
            raise ValueError(f"unknown architecture {unknown[0]!r}; expected some of {tuple(ARCHITECTURES)}")
        if not self.seeds:
            raise ValueError("a study needs at least one seed")

    def header(self, corpus: Corpus) -> dict:
        """What a folder must agree on to be resumed (architectures and seeds may grow)."""
        spec = asdict(self)
        for key in ("architectures", "seeds"):
            spec.pop(key)
        return {"spec": spec, "corpus_sha256": corpus.sha256, "provenance": corpus.provenance}

    def model(self, architecture: str, **overrides) -> ModelConfig:
        return ModelConfig(
            **{"architecture": architecture, "dim": self.dim, "layers": self.layers, **overrides}
        )


@dataclass(frozen=True)
class RecallSpec:
    """The recall probe's models: each architecture under every seed, ``layers`` deep, ``dim`` wide. The
    default compares the baseline with single-omega TPI and with decoupled phases (a separate query phase is
    the variant that could, in principle, address by content)."""

    architectures: tuple[str, ...] = ("rope", "tpi", "tpi-decoupled")
    seeds: tuple[int, ...] = (0, 1, 2)
    pairs: int = 4
    steps: int = 8000
    batch: int = 64
    lr: float = 1e-3
    dim: int = 64
    layers: int = 2

    def header(self) -> dict:
        spec = asdict(self)
        for key in ("architectures", "seeds"):
            spec.pop(key)
        return {"recall": spec}


def _claim_folder(folder: Path, header: dict, name: str = "study.json") -> None:
    path = folder / name
    if path.exists():
        found = json.loads(path.read_text())
        if found != header:
            raise ValueError(
                f"{folder} holds a TPI study run with other settings or another corpus ({found}); "
                "use a new folder instead of mixing them"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(header, indent=1, sort_keys=True) + "\n")


def _done(path: Path) -> dict[tuple[str, int], dict]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["architecture"], r["seed"]): r for r in rows}


def _append(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def run_study(
    folder: str | Path, spec: StudySpec = StudySpec(), progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every (architecture, seed) language model not yet in ``folder``."""
    folder = Path(folder)
    corpus = load_corpus()
    _claim_folder(folder, spec.header(corpus))
    runs_path = folder / "runs.jsonl"
    for arch in spec.architectures:
        for seed in spec.seeds:
            if (arch, seed) not in _done(runs_path):
                model, run = train(spec.model(arch), corpus, spec.train, seed, progress=progress)
                if seed == spec.seeds[0]:
                    save(model, folder / "checkpoints" / f"{arch}.pt")
                _append(runs_path, run.as_dict())
    return read_study(folder)[0]


def run_recall(folder: str | Path, spec: RecallSpec = RecallSpec(), progress: bool = True) -> pd.DataFrame:
    """Train every (architecture, seed) recall model not yet in ``folder``; one row per model."""
    folder = Path(folder)
    _claim_folder(folder, spec.header(), "recall.json")
    path = folder / "recall.jsonl"
    task = RecallTask(spec.pairs)
    for arch in spec.architectures:
        for seed in spec.seeds:
            if (arch, seed) in _done(path):
                continue
            config = ModelConfig(architecture=arch, dim=spec.dim, layers=spec.layers, dropout=0.0)
            model, curve = train_recall(
                config, task, spec.steps, seed, spec.batch, spec.lr, progress=progress
            )
            if seed == spec.seeds[0]:
                save(model, folder / "checkpoints" / f"recall-{arch}.pt")
            _append(
                path, {"architecture": arch, "seed": seed, "curve": curve, "accuracy": curve[-1]["accuracy"]}
            )
    return read_study(folder)[1]


def read_study(folder: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(runs, recall)`` of ``folder`` (default :func:`committed_results`): one row per trained LM (columns
    ``architecture, seed, parameters, train, val, test, val_long, seconds, curve, grad_norms``) and one per
    recall model (``architecture, seed, accuracy`` over all queries, ``first``: accuracy on the first query,
    ``curve``)."""
    folder = _folder(folder)
    runs = list(_done(folder / "runs.jsonl").values())
    if not runs:
        raise FileNotFoundError(
            f"no TPI study in {folder}; run tempo_lab.tpi.study.run_study({str(folder)!r})"
        )
    table = pd.DataFrame([{**{k: v for k, v in r.items() if k != "bpc"}, **r["bpc"]} for r in runs])
    recall = pd.DataFrame(list(_done(folder / "recall.jsonl").values()))
    if len(recall):  # the first query of a sequence cannot be answered by elimination: the clean measure
        recall["first"] = [curve[-1]["first"] for curve in recall["curve"]]
    return table.sort_values(["architecture", "seed"], ignore_index=True), recall


def checkpoint(name: str, folder: str | Path | None = None):
    """The saved first-seed model ``name`` (an architecture, or ``recall-<architecture>``) from ``folder``
    (default :func:`committed_results`)."""
    return load(_folder(folder) / "checkpoints" / f"{name}.pt")
