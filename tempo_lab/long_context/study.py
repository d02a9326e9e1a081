"""Notebook 10 (b)'s study: passkey retrieval by distance and by length, and long-text loss by position, for
every extension method, kept in a verified results folder (:mod:`tempo_lab.results`), resumable per part.

    run_long_context("results/10_long_context")           # in the background: hours on a 2-core CPU
    study = read_long_context("results/10_long_context")  # .passkey, .loss, .manifest

The plan (:meth:`LongContextSpec.cells`) is a list of cells, computed in priority order: the cells the
registered rules (:mod:`tempo_lab.long_context.rules`) read come first. A cell is one model, one version of
the samples, one method and one length:

- ``real``: RULER's ``niah_single_1`` samples at that length (:mod:`.ruler`), as RULER builds them;
- ``gap``: the gap version (:meth:`~tempo_lab.long_context.passkey.Tokens.gap`) at that distance of the
  samples RULER sized for :attr:`LongContextSpec.gap_source` tokens;
- ``distance``: the same samples cut the same way, the question that many positions after the needle's real
  position (:meth:`~tempo_lab.long_context.passkey.Tokens.at_distance`, the gap version as the claims file
  defines it), at the two lengths LC4 reads (4k and 16k), plain only;
- ``natural`` / ``start_far``: the samples sized for :attr:`LongContextSpec.near_source` tokens whose needle
  lies within :attr:`LongContextSpec.near` tokens of the question, at their own positions and start-far
  (:meth:`~tempo_lab.long_context.passkey.Tokens.start_far`);
- ``loss``: the loss by position of :attr:`LongContextSpec.windows` disjoint windows of
  :attr:`LongContextSpec.window` tokens of the TPI corpus's text (CPython's ``pydoc_data.topics``, PSF
  licence), in :data:`~tempo_lab.long_context.cells.BIN`-position bins.

Each method is set for the cell's length by :meth:`~tempo_lab.extension.methods.Method.for_length`; a
method that is the plain model at that length (every method inside the trained context) is not recomputed:
:func:`read_long_context` gives it the plain rows, marked ``as plain``. Rows carry the seconds each sample
took, so the study states its own CPU time.

Contents: :class:`LongContextSpec`, :class:`Cell`, :class:`LongContextStudy`, :func:`run_long_context`,
:func:`read_long_context`, :func:`load_study_model`, :data:`TABLES`, :data:`DISTANCES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from tempo_lab.claims import fingerprints
from tempo_lab.extension.methods import METHODS, Method
from tempo_lab.loaded import LoadedModel
from tempo_lab.long_context.cells import Samples, long_text, loss_rows, passkey_rows
from tempo_lab.plumbing import checks
from tempo_lab.results import IncompleteResults, ResultsFolder, identity_hash

TABLES = ("passkey", "loss")
#: the distances of the ``distance`` version (LC4's two)
DISTANCES = (4096, 16384)


@dataclass(frozen=True)
class Cell:
    """One cell of the plan: ``table`` ("passkey" or "loss"), ``model``, ``version`` (a passkey version, or
    "loss"), ``method``, ``length`` and ``n`` (samples, or windows)."""

    table: str
    model: str
    version: str
    method: str
    length: int
    n: int

    @property
    def key(self) -> str:
        return f"{self.model}-{self.version}-{self.method}-{self.length}"


@dataclass(frozen=True)
class LongContextSpec:
    """The study's settings (its identity: a folder holds one spec's results). Lengths are in tokens;
    ``per_part``: samples per part of an expensive cell (a real one at 8k tokens or more), so an interrupted
    run loses at most that many."""

    models: tuple[str, ...] = ("smollm2-135m", "gemma3-270m")
    methods: tuple[str, ...] = METHODS
    real: tuple[int, ...] = (4096, 16384, 8192)
    real_n: int = 20
    real_n_more: int = 10  # the real cells no rule reads (lengths but 4k and 16k)
    gaps: tuple[int, ...] = (2048, 4096, 8192, 16384, 32768, 65536)
    gap_source: int = 16384
    gap_n: int = 50
    near_source: int = 2048
    near: int = 300
    near_n: int = 50
    start_far: tuple[int, ...] = (4096, 8192, 16384)
    window: int = 16384
    windows: int = 6
    per_part: int = 5

    def __post_init__(self) -> None:
        counts = ("real_n", "real_n_more", "gap_source", "gap_n", "near_source", "near", "near_n", "window",
                  "windows", "per_part")  # fmt: skip
        for name in counts:
            checks.count(name, getattr(self, name))
        for name in ("real", "gaps", "start_far", "methods", "models"):
            values = getattr(self, name)
            if isinstance(values, (str, bytes)) or not isinstance(values, (tuple, list)) or not values:
                raise ValueError(f"{name} must be a non-empty list, got {values!r}")
        for name in ("real", "gaps", "start_far"):
            for i, v in enumerate(getattr(self, name)):
                checks.count(f"{name}[{i}]", v)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or "plain" not in self.methods:
            raise ValueError(f"methods must include 'plain' and come from {METHODS}, got {self.methods!r}")
        for i, name in enumerate(self.models):
            if not isinstance(name, str) or not name:
                raise ValueError(f"models[{i}] must be a model name, got {name!r}")
        if max(self.real_n, self.gap_n, self.near_n) > 500:
            raise ValueError("RULER generates 500 samples per length: n must be at most 500")

    def header(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def cells(self) -> list[Cell]:
        """Every cell, in the order they are computed (the rules' cells first; see the module docstring)."""
        first, *others = self.models
        out: list[Cell] = []
        ruled = [length for length in self.real if length in (4096, 16384)]
        out += [Cell("passkey", first, "real", "plain", length, self.real_n) for length in ruled]
        for model in self.models:
            out += [Cell("passkey", model, "gap", "plain", d, self.gap_n) for d in self.gaps]
        out += [Cell("passkey", first, "distance", "plain", d, self.gap_n) for d in DISTANCES]
        out += [Cell("passkey", first, "natural", "plain", self.near_source, self.near_n)]
        out += [Cell("passkey", first, "start_far", "plain", d, self.near_n) for d in self.start_far]
        loss_first = [m for m in ("plain", "pi", "yarn", "self_extend") if m in self.methods]
        out += [Cell("loss", first, "loss", m, self.window, self.windows) for m in loss_first]
        methods = [m for m in self.methods if m != "plain"]
        rank = {"self_extend": 0, "yarn": 1, "pi": 2, "ntk": 3, "dynamic": 4}
        for m in sorted(methods, key=lambda m: rank.get(m, 9)):
            out += [Cell("passkey", first, "real", m, length, self.real_n) for length in ruled]
        for model in self.models:
            out += [Cell("passkey", model, "gap", m, d, self.gap_n) for m in methods for d in self.gaps]
        out += [Cell("loss", first, "loss", m, self.window, self.windows) for m in self.methods
                if m not in loss_first]  # fmt: skip
        out += [Cell("passkey", first, "real", m, length, self.real_n_more) for length in self.real
                if length not in ruled for m in self.methods]  # fmt: skip
        return out

    def parts(self, cell: Cell) -> list[str]:
        """The part keys of a cell: one per ``per_part`` samples of an expensive cell, else one; a loss cell
        has one per window."""
        if cell.table == "loss":
            return [f"{cell.key}-w{w}" for w in range(cell.n)]
        if cell.version == "real" and cell.length >= 8192:
            return [f"{cell.key}-s{s:03d}" for s in range(0, cell.n, self.per_part)]
        return [f"{cell.key}-s000"]

    def plan(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {t: [] for t in TABLES}
        for cell in self.cells():
            out[cell.table] += self.parts(cell)
        return out


def _manifest(spec: LongContextSpec) -> dict:
    from tempo_lab.long_context.evidence import CLAIMS

    rules = fingerprints(CLAIMS)
    return {"study": "long_context", "spec": spec.header(), "plan": spec.plan(), "rules": rules}


def load_study_model(name: str) -> LoadedModel:
    """The model ``name`` as the study (and its benchmark and tests) load it: float32 with SDPA attention,
    whose causal path keeps a 16k forward small (eager attention holds a 16k x 16k score matrix per head, for
    SmolLM2 about 9.7 GB a layer in float32)."""
    from tempo_lab.models import load_model

    return load_model(name, attn_implementation="sdpa")


def run_long_context(
    folder: str | Path,
    spec: LongContextSpec = LongContextSpec(),
    *,
    cells: Sequence[str] | None = None,
    progress: bool = True,
    load: Callable[[str], LoadedModel] | None = None,
) -> LongContextStudy:
    """Compute every missing part of ``folder`` for ``spec``, cell by cell in the plan's order (see the module
    docstring); ``cells``: only the cells whose keys start with one of these. Returns
    :func:`read_long_context` with ``allow_partial=True``. A folder of another spec is refused; one writer at
    a time; a new folder is claimed only once every model has loaded. ``load``: how a model name becomes a
    model (default: :func:`load_study_model`)."""
    load = load or load_study_model
    store = ResultsFolder(folder)
    store.check_writable()
    plan = spec.plan()
    with store.writing():
        models = store.load_before_claiming(spec.models, load)
        store.claim(_manifest(spec), ["study", "spec"], grows=["plan"])  # a plan grown by a version
        identity = identity_hash({"spec": spec.header()})
        verified = {t: store.verified(t, {k: k for k in plan[t]}, identity) for t in TABLES}
        have = {t: set(parts) for t, parts in verified.items()}
        trained = _trained({t: pd.concat(list(parts.values())) if parts else pd.DataFrame()
                            for t, parts in verified.items()})  # fmt: skip
        todo = [c for c in spec.cells() if cells is None or any(c.key.startswith(p) for p in cells)]
        todo = [c for c in todo if any(k not in have[c.table] for k in spec.parts(c))]
        # a method inside a known trained context is the plain model: nothing to compute, no model to load
        todo = [c for c in todo if c.method == "plain" or c.length > trained.get(c.model, 0)]
        samples: dict[str, Samples] = {m: Samples(lm, spec) for m, lm in models.items()}
        texts: dict[str, torch.Tensor] = {}
        bar = tqdm(todo, desc="long-context cells", unit="cell", disable=not progress)
        for cell in bar:
            bar.set_postfix_str(cell.key)
            if cell.model not in models:
                models.clear(), samples.clear(), texts.clear()  # one model in memory at a time
                models[cell.model] = load(cell.model)
                samples[cell.model] = Samples(models[cell.model], spec)
            lm = models[cell.model]
            if Method.for_length(lm, cell.method, cell.length).is_plain and cell.method != "plain":
                continue  # the plain rows stand for it (read_long_context)
            for key in spec.parts(cell):
                if key in have[cell.table]:
                    continue
                if cell.table == "loss":
                    if cell.model not in texts:
                        texts[cell.model] = long_text(lm)
                    rows = loss_rows(lm, cell.model, cell, int(key.rsplit("-w", 1)[1]), texts[cell.model])
                else:
                    every = samples[cell.model].of(cell)
                    first = int(key.rsplit("-s", 1)[1]) if "-s" in key else 0
                    size = spec.per_part if len(spec.parts(cell)) > 1 else cell.n
                    rows = passkey_rows(lm, cell.model, cell, every[first : first + size])
                store.write(cell.table, key, rows, identity, key)
                have[cell.table].add(key)
    return read_long_context(folder, allow_partial=True)


@dataclass
class LongContextStudy:
    """A long-context study read from its folder: ``passkey`` and ``loss`` tables (the methods that are the
    plain model at a length filled in from the plain rows, ``setting`` "as plain"), the ``manifest`` and the
    ``missing`` part keys per table."""

    passkey: pd.DataFrame
    loss: pd.DataFrame
    manifest: dict
    missing: dict[str, list[str]]

    @property
    def spec(self) -> LongContextSpec:
        return _spec(self.manifest)

    def decided_by(self) -> str:
        """The models, the dtype, how many answers and window losses (a text window under one method) were
        computed, and over how many text windows (the rows that stand for a method inside the trained context,
        copied from plain, not counted)."""
        answers = len(_computed(self.passkey))
        loss = _computed(self.loss)
        losses = loss.groupby(["window", "method"]).ngroups if len(loss) else 0
        windows = loss.window.nunique() if len(loss) else 0
        models = ", ".join(self.spec.models)
        return (f"{models}, float32, {answers} passkey answers and {losses} window losses "
                f"({windows} text windows) computed")

    def cpu_hours(self) -> float:
        """The CPU time the computed rows took (the rows copied from plain not counted), in hours."""
        own, loss = _computed(self.passkey), _computed(self.loss)
        return float(own.seconds.sum() + (loss.seconds.sum() if len(loss) else 0.0)) / 3600


def _computed(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``table`` that were computed (not copied from plain for a method inside the trained
    context); an empty table as it is."""
    return table[table.setting != "as plain"] if len(table) else table


def _spec(manifest: dict) -> LongContextSpec:
    if manifest.get("study") != "long_context":
        raise ValueError(f"no long-context study here (its manifest names {manifest.get('study')!r})")
    return LongContextSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest["spec"].items()})


def _as_plain(table: pd.DataFrame, methods: Sequence[str], keys: list[str]) -> pd.DataFrame:
    """``table`` with the plain rows at a length inside the model's trained context (each row's ``trained``)
    copied under every other method, which is the plain model there (``setting`` "as plain")."""
    if table.empty:
        return table
    inside = table[(table.method == "plain") & (table.length <= table.trained)]
    extra = [inside.assign(method=m, setting="as plain") for m in methods if m != "plain" and len(inside)]
    return pd.concat([table, *extra], ignore_index=True).sort_values(keys, kind="stable", ignore_index=True)


def _trained(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Each model's trained context, as its rows recorded it."""
    out: dict[str, int] = {}
    for frame in tables.values():
        if len(frame):
            out.update(frame.groupby("model").trained.first().astype(int).to_dict())
    return out


def read_long_context(folder: str | Path, *, allow_partial: bool = False) -> LongContextStudy:
    """The verified tables of ``folder``; a missing part raises
    :class:`~tempo_lab.results.IncompleteResults` naming it and the call that completes it
    (``allow_partial``: read what is there, and say what is missing in ``missing``). The parts of methods
    that are the plain model at a length are not missing: the plain rows stand for them."""
    store = ResultsFolder(folder)
    manifest = store.read_manifest()
    spec = _spec(manifest)
    identity = identity_hash({"spec": manifest["spec"]})
    tables, found = {}, {}
    for table in TABLES:
        found[table] = store.verified(table, {k: k for k in manifest["plan"][table]}, identity)
        frames = [found[table][k] for k in manifest["plan"][table] if k in found[table]]
        tables[table] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    trained = _trained(tables)
    missing = {}
    for cell in spec.cells():
        if cell.method != "plain" and cell.length <= trained.get(cell.model, 0):
            continue  # the plain rows stand for it
        lost = [k for k in spec.parts(cell) if k not in found[cell.table]]
        missing.setdefault(cell.table, []).extend(lost)
    missing = {t: k for t, k in missing.items() if k}
    if missing and not allow_partial:
        call = f"tempo-lab long-context --results {store.path}"
        raise IncompleteResults(store.path, missing, call)
    passkey = _as_plain(tables["passkey"], spec.methods, ["model", "version", "method", "length", "sample"])
    loss = _as_plain(tables["loss"], spec.methods, ["model", "method", "window", "bin"])
    return LongContextStudy(passkey, loss, manifest, missing)
