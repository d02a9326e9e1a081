"""The char-LMs past their trained length: bits per byte at 1x-16x the 128 bytes they were trained on, under
each context-extension method, measured into the runs' verified folder (notebook 10).

A RoPE char-LM runs as its GPT-NeoX twin (:func:`~tempo_lab.tpi.convert.as_transformers`, the same logits),
so each method is tempo_lab's own layout, the one the tests hold equal to transformers' ``rope_parameters``:

- ``plain``: positions 0..L-1, past the trained context (extrapolation);
- ``pi``, ``ntk``, ``yarn``: :class:`~tempo_lab.extension.scaling.RopeScaling` ``linear`` / ``ntk`` / ``yarn``
  with factor = L / L₀ (YaRN with its attention temperature);
- ``self-extend``: :func:`~tempo_lab.extension.self_extend.self_extended` with the neighbour ``window`` of
  the spec and the smallest group that keeps every grouped position inside the trained context
  (:func:`~tempo_lab.extension.methods.self_extend_group`).

A TPI model has no positions: its method is ``tpi``, its own forward at the same lengths. Every score is the
mean next-byte cross-entropy in bits over the validation split cut in non-overlapping windows of L bytes
(:func:`loss_by_position` keeps it per position in the window). The per-layer sweep applies ``pi`` or ``yarn``
in one layer only, at one factor, to see where a method's rotation matters.

Layout of the folder (a :class:`~tempo_lab.tpi.runs.RunsFolder`): beside the ``lm`` table of the trained
models, a ``lengths`` table with one part per model (architecture, seed), its identity the
:class:`LengthSpec`; a rerun measures what is missing.

The loss by position under each method, against a model that sees only the trained length before each
position, is the ``positions`` table of :mod:`tempo_lab.tpi.by_position`.

Contents: :data:`METHODS`, :class:`LengthSpec`, :func:`method`, :func:`loss_by_position`,
:func:`bits_per_byte`, :func:`score_model`, :func:`measure_lengths`, :func:`read_lengths`,
:func:`trained_length`, :func:`every_layer`, :func:`by_factor`, :func:`against_trained`, :func:`verdicts`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from tempo_lab.corpus import load_corpus
from tempo_lab.extension.methods import self_extend_group
from tempo_lab.extension.scaling import RopeScaling, scaled
from tempo_lab.extension.self_extend import self_extended
from tempo_lab.loaded import LoadedModel, beyond_context, trained_context
from tempo_lab.plumbing import checks
from tempo_lab.tpi.convert import as_transformers
from tempo_lab.tpi.model import VOCAB, CharLM
from tempo_lab.tpi.runs import LM, RunsFolder, checkpoint, key

METHODS = ("plain", "pi", "ntk", "yarn", "self-extend")
LENGTHS = "lengths"
_SCALINGS = {"pi": RopeScaling.linear, "ntk": RopeScaling.ntk, "yarn": RopeScaling.yarn}


@dataclass(frozen=True)
class LengthSpec:
    """What the ``lengths`` table measures: the factors of the trained length, the methods for RoPE models,
    Self-Extend's neighbour window, and the per-layer sweep (``layer_methods`` in one layer at a time, at
    ``layer_factor``)."""

    factors: tuple[float, ...] = (1, 2, 4, 8, 16)
    methods: tuple[str, ...] = METHODS
    window: int = 32
    layer_factor: float = 8
    layer_methods: tuple[str, ...] = ("pi", "yarn")
    max_bytes: int | None = None  # score the first max_bytes of the validation split (None: all of it)
    batch: int = 4

    def __post_init__(self) -> None:
        if not self.factors:
            raise ValueError("give at least one factor of the trained length")
        for i, f in enumerate(self.factors):
            checks.positive(f"factors[{i}]", f)
        checks.positive("layer_factor", self.layer_factor)
        checks.count("window", self.window)
        checks.count("batch", self.batch)
        if self.max_bytes is not None:
            checks.count("max_bytes", self.max_bytes)
        for name in (*self.methods, *self.layer_methods):
            if name not in METHODS:
                raise ValueError(f"unknown method {name!r}; expected one of {METHODS}")
        for name in self.layer_methods:
            if name not in _SCALINGS:
                raise ValueError(
                    f"the per-layer sweep scales rotations: {name!r} is not one of {tuple(_SCALINGS)}"
                )

    def header(self) -> dict:
        """The table's identity, as the manifest's JSON holds it (lists, not tuples)."""
        spec = asdict(self)
        spec.pop("batch")  # how many windows a pass holds changes nothing measured
        return json.loads(json.dumps(spec))


@contextmanager
def method(
    lm: LoadedModel, name: str, length: int, window: int = 32, layers: Sequence[int] | None = None
) -> Iterator[None]:
    """Run ``lm``'s passes inside the block under method ``name`` (one of :data:`METHODS`) for sequences of
    ``length`` tokens: the factor is ``length / trained_context(lm)`` (at least 1); ``layers`` limits a
    scaling to those layers (``self-extend`` and ``plain`` take none)."""
    trained = trained_context(lm)
    factor = max(1.0, length / trained)
    if name == "plain":
        if layers is not None:
            raise ValueError("plain changes no layer: layers= applies to pi, ntk and yarn")
        with beyond_context(lm):
            yield
    elif name in _SCALINGS:
        with scaled(lm, _SCALINGS[name](factor), layers=layers):
            yield
    elif name == "self-extend":
        if layers is not None:
            raise ValueError(
                "self-extend attends differently in every layer: layers= applies to pi, ntk, yarn"
            )
        with self_extended(lm, window, self_extend_group(length, trained, window)):
            yield
    else:
        raise ValueError(f"unknown method {name!r}; expected one of {METHODS}")


def _windows(data: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    usable = (len(data) - 1) // length * length
    if usable == 0:
        raise ValueError(f"{len(data)} bytes hold no window of {length} bytes and its next byte")
    return data[:usable].view(-1, length), data[1 : usable + 1].view(-1, length)


def _last_window_logits(lm: LoadedModel, ids: torch.Tensor, window: int, chunk: int = 4096) -> torch.Tensor:
    """``(batch, length - window + 1, 256)``: the logits at each position ``p >= window - 1`` of ``ids``
    ``(batch, length)`` computed from the ``window`` bytes ending at ``p`` alone, at positions
    ``0..window - 1``."""
    windows = ids.unfold(1, window, 1)  # (batch, length - window + 1, window)
    flat = windows.reshape(-1, window)
    positions = torch.arange(window).expand(len(flat), -1)
    out = []
    for i in range(0, len(flat), chunk):
        found = lm.model(input_ids=flat[i : i + chunk], position_ids=positions[i : i + chunk])
        out.append(found.logits[:, -1, :VOCAB])
    return torch.cat(out).view(windows.shape[0], windows.shape[1], -1)


@torch.no_grad()
def loss_by_position(
    model: LoadedModel | CharLM, data: torch.Tensor, length: int, batch: int = 4, window: int | None = None
) -> torch.Tensor:
    """Mean next-byte cross-entropy in bits at each position of a window, ``(length,)`` float64: ``data`` (1-D
    bytes) cut in non-overlapping windows of ``length``, each scored from its start. A :class:`LoadedModel`
    (a converted RoPE char-LM) is scored over its first 256 logits with positions ``0..length-1`` (and
    whatever method encloses the call); with ``window``, each position is predicted from the ``window`` bytes
    up to it alone (the model recomputed on them at positions ``0..window-1``: it sees nothing further back,
    as a model with a trained-length context would). A :class:`CharLM` is scored by its own forward (TPI: its
    phases)."""
    inputs, targets = _windows(data, checks.count("length", length))
    total = torch.zeros(length, dtype=torch.float64)
    if window is not None:
        window = checks.count("window", window)
        if not isinstance(model, LoadedModel):
            raise ValueError("window= applies to a RoPE char-LM run as its transformers twin")
    for i in range(0, len(inputs), batch):
        ids, want = inputs[i : i + batch], targets[i : i + batch]
        if isinstance(model, LoadedModel):
            positions = torch.arange(length).expand(len(ids), -1)
            logits = model.model(input_ids=ids, position_ids=positions).logits[..., :VOCAB]
            if window is not None and length > window:
                logits[:, window - 1 :] = _last_window_logits(model, ids, window)
        else:
            logits = model(ids)
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), want, reduction="none")
        total += loss.sum(0).double()
    return total / len(inputs) / math.log(2)


def bits_per_byte(model: LoadedModel | CharLM, data: torch.Tensor, length: int, batch: int = 4) -> float:
    """The mean of :func:`loss_by_position`: bits per byte over ``data`` in windows of ``length``."""
    return float(loss_by_position(model, data, length, batch).mean())


def score_model(model: CharLM, data: torch.Tensor, spec: LengthSpec, trained: int = 128) -> list[dict]:
    """One model's rows: ``{"method", "factor", "layer", "bpc"}`` for every factor and method (``tpi`` for a
    position-free model), then the per-layer sweep (``layer`` the one scaled layer; -1 means every layer)."""
    rows = []
    if model.config.is_tpi:
        for factor in spec.factors:
            bpc = bits_per_byte(model.eval(), data, round(factor * trained), spec.batch)
            rows.append({"method": "tpi", "factor": float(factor), "layer": -1, "bpc": bpc})
        return rows
    lm = as_transformers(model, context=trained)
    for factor in spec.factors:
        length = round(factor * trained)
        for name in spec.methods:
            with method(lm, name, length, spec.window):
                bpc = bits_per_byte(lm, data, length, spec.batch)
            rows.append({"method": name, "factor": float(factor), "layer": -1, "bpc": bpc})
    length = round(spec.layer_factor * trained)
    for name in spec.layer_methods:
        for layer in range(model.config.layers):
            with method(lm, name, length, layers=[layer]):
                bpc = bits_per_byte(lm, data, length, spec.batch)
            rows.append({"method": name, "factor": float(spec.layer_factor), "layer": layer, "bpc": bpc})
    return rows


def measure_lengths(
    folder: str | Path, spec: LengthSpec = LengthSpec(), progress: bool = True
) -> pd.DataFrame:
    """Score every trained model of ``folder``'s ``lm`` table (each seed's checkpoint) not yet in its
    ``lengths`` table, on the validation split at the trained length the runs used; returns
    :func:`read_lengths`."""
    runs = RunsFolder(folder)
    runs.check_writable()
    trained = trained_length(folder)
    models = runs.runs(LM)
    data = load_corpus().val[: spec.max_bytes]
    with runs.writing():
        keys = [key(a, s) for a, s in zip(models.architecture, models.seed, strict=True)]
        runs.claim_table(LENGTHS, spec.header(), keys)
        have = {key(a, s) for a, s in _done(runs)}
        todo = [
            (a, int(s))
            for a, s in zip(models.architecture, models.seed, strict=True)
            if key(a, s) not in have
        ]
        for arch, seed in tqdm(todo, desc="models past their length", disable=not progress):
            rows = score_model(checkpoint(arch, folder, seed), data, spec, trained)
            runs.add(LENGTHS, {"architecture": arch, "seed": seed, "trained": trained, "scores": rows})
    return read_lengths(folder)


def trained_length(folder: str | Path) -> int:
    """The sequence length (bytes) the language models of ``folder`` were trained on."""
    return int(RunsFolder(folder).read_manifest()[LM]["spec"]["train"]["seq_len"])


def _done(runs: RunsFolder) -> list[tuple[str, int]]:
    done = runs.runs(LENGTHS, required=False)
    return list(zip(done.get("architecture", []), done.get("seed", []), strict=True))


def read_lengths(folder: str | Path) -> pd.DataFrame:
    """The verified ``lengths`` table of ``folder``, one row per score: ``architecture, seed, trained, method,
    factor, length, layer, bpc`` (``layer`` -1: the method in every layer). Raises
    :class:`~tempo_lab.results.IncompleteResults` naming what is missing."""
    parts = RunsFolder(folder).runs(LENGTHS, resume="tempo_lab.tpi.lengths.measure_lengths")
    rows = [
        {"architecture": p.architecture, "seed": int(p.seed), "trained": int(p.trained), **score}
        for p in parts.itertuples()
        for score in p.scores
    ]
    table = pd.DataFrame(rows)
    table.insert(
        table.columns.get_loc("factor") + 1, "length", (table.factor * table.trained).round().astype(int)
    )
    return table.sort_values(["architecture", "seed", "layer", "method", "factor"], ignore_index=True)


def every_layer(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`read_lengths` with the method in every layer, and a ``model`` column: the method,
    or the architecture of a position-free (``tpi``) model."""
    every = table[table.layer == -1].copy()
    every["model"] = np.where(every.method == "tpi", every.architecture, every.method)
    return every


def by_factor(table: pd.DataFrame) -> pd.DataFrame:
    """Bits per byte by method (rows, TPI models by architecture) and factor (columns): ``mean ± std`` over
    the seeds, as text, from :func:`read_lengths`' every-layer rows."""
    every = every_layer(table)
    cells = every.groupby(["model", "factor"]).bpc.agg(["mean", "std"])
    text = cells.apply(lambda r: f"{r['mean']:.3f} ± {r['std']:.3f}", axis=1).unstack("factor")
    order = [m for m in (*METHODS, *sorted(set(every.model) - set(METHODS))) if m in text.index]
    text = text.loc[order]
    text.columns = [f"{f:g}x" for f in text.columns]
    return text


def against_trained(table: pd.DataFrame, factor: float, tolerance: float = 0.05, level: float = 0.95):
    """Per method (and TPI architecture): each seed's BPC at ``factor`` divided by its BPC at 1x, the mean
    ratio with its Student-t interval over the seeds, and the verdict on staying within ``tolerance``:
    ``within`` (the interval's top under ``1 + tolerance``), ``beyond`` (its bottom over it), else
    ``undecided``."""
    every = every_layer(table)
    one = every[every.factor == 1].set_index(["model", "seed"]).bpc
    far = every[every.factor == factor].set_index(["model", "seed"]).bpc
    if far.empty or one.empty:
        raise ValueError(f"the table has no rows at 1x and {factor:g}x; it holds {sorted(set(every.factor))}")
    ratio = (far / one).dropna()
    rows = []
    for model, values in ratio.groupby(level="model"):
        n, mean = len(values), float(values.mean())
        half = float(stats.t.ppf((1 + level) / 2, n - 1) * values.std() / math.sqrt(n)) if n > 1 else math.inf
        lo, hi = mean - half, mean + half
        verdict = "within" if hi < 1 + tolerance else "beyond" if lo > 1 + tolerance else "undecided"
        rows.append({"model": model, "seeds": n, "ratio": mean, "lo": lo, "hi": hi, "verdict": verdict})
    order = {m: i for i, m in enumerate(METHODS)}
    return pd.DataFrame(rows).sort_values(
        "model", key=lambda s: s.map(lambda m: order.get(m, 99)), ignore_index=True
    )


def verdicts(table: pd.DataFrame, tolerance: float = 0.05, level: float = 0.95) -> pd.DataFrame:
    """:func:`against_trained` at every factor past 1x, as text: rows the methods and TPI models, columns the
    factors, each cell ``ratio [lo, hi] verdict``."""
    cells = {}
    for factor in sorted(f for f in set(table.factor) if f > 1):
        found = against_trained(table, factor, tolerance, level).set_index("model")
        cells[f"{factor:g}x"] = [
            f"{r.ratio:.4f} [{r.lo:.4f}, {r.hi:.4f}] {r.verdict}" for r in found.itertuples()
        ]
        index = found.index
    return pd.DataFrame(cells, index=index)
