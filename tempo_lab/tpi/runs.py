"""The trained models behind notebook 08: every architecture, several seeds, one budget, written as it goes.

The runs live in a verified results folder (:mod:`tempo_lab.results`, the same verification as the studies'):

    folder/manifest.json              the settings, model shape and corpus hash of each table; the plan
    folder/lm/part-<arch>-s<seed>.parquet       one trained language model: curves, BPC, gradient norms
    folder/recall/part-<arch>-s<seed>.parquet   one recall model
    folder/checkpoints/<name>.pt      the first seed's weights, <name>-s<seed>.pt the other seeds' (each
                                      SHA-256 is in its run's part; folders of older runs keep the first's)

A rerun trains what is missing; a part that fails verification is quarantined and trained again; a folder
written with other settings or another corpus is refused; a checkpoint that does not match its run's
recorded SHA-256 is refused.

Contents:
- ``TrainingSpec``: architectures, seeds, LM budget, model shape; ``RecallSpec``: the recall probe's.
- ``train_language_models(folder, spec)`` / ``train_recall_models(folder, spec)``: train what is missing.
- ``read_runs(folder)``: ``(runs, recall)`` DataFrames, without training.
- ``checkpoint(name, folder, seed)``: a trained model (``name``: an architecture or
  ``recall-<architecture>``; the first seed's unless ``seed`` is given); ``checkpoint_name``: its file stem.
- ``committed_results()``: the committed folder of a checkout (``results/08_tpi``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from tempo_lab.corpus import Corpus, load_corpus
from tempo_lab.results import IncompleteResults, ResultsFolder, identity_hash
from tempo_lab.tpi.model import ARCHITECTURES, ModelConfig
from tempo_lab.tpi.recall import RecallTask, train_recall
from tempo_lab.tpi.train import TrainSettings, load, save, train

CHECKOUT_RESULTS = Path(__file__).resolve().parents[2] / "results" / "08_tpi"
LM, RECALL = "lm", "recall"
NESTED = ("bpc", "curve", "grad_norms")  # stored as JSON text in a part


def committed_results() -> Path:
    """The committed folder notebook 08 reads: ``results/08_tpi`` of the tempo_lab checkout this package
    runs from. An installed wheel holds no results: the error says where they are and what to pass instead."""
    if not (CHECKOUT_RESULTS / "manifest.json").is_file():
        raise FileNotFoundError(
            f"the committed TPI runs are not at {CHECKOUT_RESULTS}: they live in a tempo_lab checkout "
            "(results/08_tpi), not in the installed package; pass folder=<checkout>/results/08_tpi, or "
            "train runs of your own with tempo_lab.tpi.runs.train_language_models(folder)"
        )
    return CHECKOUT_RESULTS


@dataclass(frozen=True)
class TrainingSpec:
    """What one folder trains: every architecture under every seed, on one budget."""

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
            raise ValueError("training needs at least one seed")

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


def key(architecture: str, seed: int) -> str:
    return f"{architecture}-s{seed}"


class RunsFolder(ResultsFolder):
    """The TPI runs' folder: a table of language models and one of recall models, each with its own
    identity (the settings it was trained with) and plan (the runs asked for; it may grow)."""

    def claim_table(self, table: str, header: dict, keys: list[str]) -> dict:
        """Record ``header`` as ``table``'s identity (refusing another) and add ``keys`` to its plan."""
        found = self.read_manifest() if self.manifest_path.exists() else {}
        plan = dict(found.get("plan", {}))
        plan[table] = sorted({*plan.get(table, []), *keys})
        manifest = {**found, table: header, "plan": plan}
        self.claim(manifest, [table], grows=["plan"])
        return self.read_manifest()

    def runs(self, table: str, *, required: bool = True, resume: str | None = None) -> pd.DataFrame:
        """The verified runs of ``table`` (nested fields decoded), one row per run; missing runs raise
        :class:`~tempo_lab.results.IncompleteResults` when ``required``, naming ``resume`` (the function that
        completes the table, ``tempo_lab.tpi.runs``' trainers by default) as the call to make."""
        m = self.read_manifest()
        if table not in m:
            return pd.DataFrame()
        expected = {k: k for k in m["plan"][table]}
        parts = self.verified(table, expected, identity_hash(m[table]))
        missing = [k for k in expected if k not in parts]
        if missing and required:
            call = resume or "tempo_lab.tpi.runs." + (
                "train_language_models" if table == LM else "train_recall_models"
            )
            raise IncompleteResults(self.path, {table: missing}, f"{call}({str(self.path)!r})")
        if not parts:
            return pd.DataFrame()
        rows = pd.concat([parts[k] for k in sorted(parts)], ignore_index=True)
        for name in [c for c in rows.columns if c.endswith("_json")]:
            rows[name.removesuffix("_json")] = [json.loads(v) for v in rows.pop(name)]
        return rows

    def have(self, table: str) -> set[str]:
        """The keys of the verified runs of ``table``."""
        done = self.runs(table, required=False)
        return {key(a, s) for a, s in zip(done.get("architecture", []), done.get("seed", []), strict=True)}

    def add(self, table: str, row: dict, model=None, stem: str | None = None) -> None:
        """Write one run's part (after saving its checkpoint, whose SHA-256 the part records)."""
        m = self.read_manifest()
        row = dict(row)
        if stem is not None:
            path = save(model, self.path / "checkpoints" / f"{stem}.pt")
            row["checkpoint_sha256"] = _sha256(path)
        for name in [k for k in row if isinstance(row[k], (dict, list))]:
            row[f"{name}_json"] = json.dumps(row.pop(name), sort_keys=True)
        k = key(row["architecture"], row["seed"])
        self.write(table, k, [row], identity_hash(m[table]), k)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _folder(folder: str | Path | None) -> RunsFolder:
    return RunsFolder(committed_results() if folder is None else folder)


def train_language_models(
    folder: str | Path, spec: TrainingSpec = TrainingSpec(), progress: bool = True
) -> pd.DataFrame:
    """Train every (architecture, seed) language model of ``spec`` not yet in ``folder``; returns the runs."""
    runs = RunsFolder(folder)
    runs.check_writable()
    corpus = load_corpus()
    with runs.writing():
        runs.claim_table(LM, spec.header(corpus), [key(a, s) for a in spec.architectures for s in spec.seeds])
        have = runs.have(LM)
        for arch in spec.architectures:
            for seed in spec.seeds:
                if key(arch, seed) in have:
                    continue
                model, run = train(spec.model(arch), corpus, spec.train, seed, progress=progress)
                runs.add(LM, run.as_dict(), model, checkpoint_name(arch, seed, first=seed == spec.seeds[0]))
    return read_runs(folder)[0]


def train_recall_models(
    folder: str | Path, spec: RecallSpec = RecallSpec(), progress: bool = True
) -> pd.DataFrame:
    """Train every (architecture, seed) recall model of ``spec`` not yet in ``folder``; one row per model."""
    runs = RunsFolder(folder)
    runs.check_writable()
    task = RecallTask(spec.pairs)
    with runs.writing():
        runs.claim_table(RECALL, spec.header(), [key(a, s) for a in spec.architectures for s in spec.seeds])
        have = runs.have(RECALL)
        for arch in spec.architectures:
            for seed in spec.seeds:
                if key(arch, seed) in have:
                    continue
                config = ModelConfig(architecture=arch, dim=spec.dim, layers=spec.layers, dropout=0.0)
                model, curve = train_recall(
                    config, task, spec.steps, seed, spec.batch, spec.lr, progress=progress
                )
                row = {"architecture": arch, "seed": seed, "curve": curve, "accuracy": curve[-1]["accuracy"]}
                runs.add(
                    RECALL, row, model, checkpoint_name(f"recall-{arch}", seed, first=seed == spec.seeds[0])
                )
    return read_runs(folder)[1]


def read_runs(folder: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(runs, recall)`` of ``folder`` (default :func:`committed_results`), every part verified: one row per
    trained LM (columns ``architecture, seed, parameters, train, val, test, val_long, seconds, curve,
    grad_norms``) and one per recall model (``architecture, seed, accuracy`` over all queries, ``first``:
    accuracy on the first query, ``curve``)."""
    runs = _folder(folder)
    if not runs.manifest_path.is_file():
        raise FileNotFoundError(
            f"no TPI runs in {runs.path}; train them with "
            f"tempo_lab.tpi.runs.train_language_models({str(runs.path)!r})"
        )
    lm = runs.runs(LM)
    table = pd.concat([lm.drop(columns=["bpc"]), pd.DataFrame(list(lm["bpc"]))], axis=1)
    recall = runs.runs(RECALL)
    if len(recall):  # the first query of a sequence cannot be answered by elimination: the clean measure
        recall["first"] = [curve[-1]["first"] for curve in recall["curve"]]
        recall = recall.sort_values(["architecture", "seed"], ignore_index=True)
    return table.sort_values(["architecture", "seed"], ignore_index=True), recall


def checkpoint_name(name: str, seed: int, first: bool) -> str:
    """The file stem of a run's checkpoint: ``name`` for the first seed a folder trained (what notebook 08
    reads), ``name-s<seed>`` for the others."""
    return name if first else f"{name}-s{seed}"


def checkpoint(name: str, folder: str | Path | None = None, seed: int | None = None):
    """The saved model ``name`` (an architecture, or ``recall-<architecture>``) from ``folder`` (default
    :func:`committed_results`): the first seed's, or seed ``seed``'s, checked against the SHA-256 its run
    recorded. Folders trained before every seed was kept hold only the first seed's."""
    runs = _folder(folder)
    table, arch = (RECALL, name.removeprefix("recall-")) if name.startswith("recall-") else (LM, name)
    rows = runs.runs(table, required=False)
    if len(rows) and seed is not None:
        rows = rows[rows["seed"] == seed]
    recorded = rows[(rows["architecture"] == arch)].get("checkpoint_sha256") if len(rows) else None
    recorded = [v for v in ([] if recorded is None else recorded.tolist()) if isinstance(v, str)]
    what = name if seed is None else f"{name} (seed {seed})"
    if not recorded:
        raise FileNotFoundError(f"no checkpoint of {what!r} is recorded in {runs.path}")
    stems = [name] if seed is None else [checkpoint_name(name, seed, first=False), name]
    paths = [runs.path / "checkpoints" / f"{stem}.pt" for stem in stems]
    path = next((p for p in paths if p.is_file() and _sha256(p) == recorded[0]), paths[0])
    if not path.is_file() or _sha256(path) != recorded[0]:
        raise ValueError(
            f"{path} is missing or does not match the run that wrote it (SHA-256 {recorded[0][:12]}...); "
            f"train it again with tempo_lab.tpi.runs in a new folder"
        )
    return load(path)
