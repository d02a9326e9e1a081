"""Notebook 11's study: attention sinks, massive activations and chunk reuse over a prompt set, and rolling
caches over a long text, on one or more models, kept in a verified results folder (:mod:`tempo_lab.results`).

    run_cache_study("results/11_caches", CacheSpec())   # resumable: only missing parts are computed
    tables = read_cache_study("results/11_caches")      # sinks, massive, chunks, partial, rolling

Per model and chunk of ``per_part`` prompts (one part of each prompt table):

- ``sinks``: the last token's attention on the first token, per layer and head (:func:`sink_mass`);
- ``massive``: the residual-stream entries >= ``ratio`` x their layer's median (:func:`massive_activations`);
- ``ablation`` (the first ``ablate`` prompts' parts, once every prompt's massive activations are in): the
  next-token TV when the first token's massive entries are set to zero or to their mean over all the
  prompts (Sun et al.), or the first token is masked out (:func:`sink_ablation`);
- ``single`` (the same prompts): Sun et al.'s ablation of the single dimension (the one :func:`massive_dims`
  ranks first over every prompt) beside zeroing all the massive entries and setting them to their mean, each
  with the sink mass after it: the last token's attention on the first token, mean over the heads and the
  second half of the layers (``ablation`` "none": the mass before);
- ``chunks``: prompt ``i`` reused behind prompt ``i + 1`` (:func:`reuse_chunk`): per layer the keys' and
  values' relative error and the TV left when that layer's recomputed cache is put back, with the TV and
  top-1 agreement of the reuse itself;
- ``partial``: the TV and top-1 agreement when ``k`` of the chunk's tokens are recomputed (``first`` and
  ``deviating``, ``k`` in ``partial``).

Per model and segment of ``segment`` tokens of the long text (the TPI corpus's training text, CPython's
documentation topics): ``rolling``, each variant's log-probability of each next token (StreamingLLM with
``sinks`` + ``window``, and a plain window of the same size, run together as batch rows) and, every
``reference_every`` steps, the recomputed window's. The rolling cache after each segment is saved beside the
parts (``rolling/state-<model>.pt``, deleted once the stream is whole), so an interrupted run resumes at the
segment it stopped in.

Contents: :func:`run_cache_study`, :func:`read_cache_study`, :func:`study_spec`, :data:`TABLES` (the settings,
:class:`~tempo_lab.caches.spec.CacheSpec`, are in :mod:`tempo_lab.caches.spec`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from tempo_lab.caches.chunks import SELECTIONS, reuse_chunk
from tempo_lab.caches.rolling import recomputed_steps, rolled_steps
from tempo_lab.caches.sinks import (
    ABLATIONS,
    ablated,
    massive_activations,
    massive_means,
    sink_ablation,
    sink_mass,
)
from tempo_lab.caches.spec import PROMPT_TABLES, CacheSpec
from tempo_lab.caches.tables import massive_dims
from tempo_lab.corpus import load_corpus
from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.prompts import bundled_prompts, encode
from tempo_lab.results import IncompleteResults, ResultsFolder, identity_hash

TABLES = (*PROMPT_TABLES, "single", "rolling")


def _manifest(spec: CacheSpec) -> dict:
    return {"study": "caches", "spec": spec.header(), "plan": spec.plan()}


def _load(name: str) -> LoadedModel:
    from tempo_lab.models import load_model

    return load_model(name)


def _sinks(lm, model, spec, i, ids, prefix) -> list[dict]:
    mass = sink_mass(lm, ids)
    return [
        {"model": model, "prompt": i, "layer": layer, "head": head, "mass": float(mass[layer, head])}
        for layer in range(mass.shape[0])
        for head in range(mass.shape[1])
    ]


def _massive(lm, model, spec, i, ids, prefix) -> list[dict]:
    found = massive_activations(lm, ids, spec.ratio)
    return [{"model": model, "prompt": i, **r} for r in found.to_dict("records")]


def _ablations(lm, model, spec, indices, means) -> list[dict]:
    prompts, rows = bundled_prompts(), []
    for i in indices:
        ids = encode(lm, prompts, i)
        found = massive_activations(lm, ids, spec.ratio)
        rows += [{"model": model, "prompt": i, "mode": mode, "entries": int((found.slot == 0).sum()),
                  "tv": sink_ablation(lm, ids, mode, found, means=means)} for mode in ABLATIONS]  # fmt: skip
    return rows


def _deep_sink(lm: LoadedModel, ids: torch.Tensor) -> float:
    """The last token's attention on the first token, mean over the heads of the second half of the layers."""
    mass = sink_mass(lm, ids)
    return float(mass[mass.shape[0] // 2 :].mean())


def _single(lm, model, spec, indices, means, dim) -> list[dict]:
    prompts, rows = bundled_prompts(), []
    for i in indices:
        ids = encode(lm, prompts, i)
        found = massive_activations(lm, ids, spec.ratio)
        rows.append({"model": model, "prompt": i, "ablation": "none", "dim": dim, "tv": 0.0,
                     "sink": _deep_sink(lm, ids)})  # fmt: skip
        for name, mode, dims in (("zero", "zero", None), ("zero one dimension", "zero", [dim]),
                                 ("mean", "mean", None)):  # fmt: skip
            tv = sink_ablation(lm, ids, mode, found, means=means, dims=dims)
            with ablated(lm, ids, mode, found, means=means, dims=dims):
                sink = _deep_sink(lm, ids)
            rows.append({"model": model, "prompt": i, "ablation": name, "dim": dim, "tv": tv, "sink": sink})
    return rows


def _chunks(lm, model, spec, i, ids, prefix) -> tuple[list[dict], list[dict]]:
    asked = [(kind, k) for kind in SELECTIONS for k in spec.partial if k <= ids.shape[1] - 1]
    reuse = reuse_chunk(lm, prefix, ids, partial=asked)
    layers = [{"model": model, "prompt": i, "layer": int(r.layer), "key_error": r.key_error,
               "value_error": r.value_error, "restored": float(reuse.restored[int(r.layer)]), "tv": reuse.tv,
               "top1_agrees": reuse.top1_agrees, "tokens": ids.shape[1]}
              for r in reuse.deviation.itertuples()]  # fmt: skip
    partial = [{"model": model, "prompt": i, "tokens_in_chunk": ids.shape[1] - 1, **r}
               for r in reuse.partial.to_dict("records")]  # fmt: skip
    return layers, partial


PER_PROMPT = {"sinks": _sinks, "massive": _massive}


def _prompt_rows(lm: LoadedModel, model: str, spec: CacheSpec, indices: list[int], tables: set[str]):
    """The rows of ``tables`` (of :data:`PROMPT_TABLES`) for prompts ``indices``: prompt ``i`` is also the
    chunk reused behind prompt ``i + 1``."""
    prompts, n = bundled_prompts(), spec.prompt_count()
    rows: dict[str, list[dict]] = {t: [] for t in tables}
    for i in indices:
        ids, prefix = encode(lm, prompts, i), encode(lm, prompts, (i + 1) % n)
        for table, measure in PER_PROMPT.items():
            if table in tables:
                rows[table] += measure(lm, model, spec, i, ids, prefix)
        if {"chunks", "partial"} & tables:
            layers, partial = _chunks(lm, model, spec, i, ids, prefix)
            rows["chunks"] = rows.get("chunks", []) + layers
            rows["partial"] = rows.get("partial", []) + partial
    return rows


def _long_text(lm: LoadedModel, length: int) -> torch.Tensor:
    text = bytes(load_corpus().train.tolist()).decode("utf-8", errors="replace")
    ids = lm.encode(text)
    if ids.shape[1] < length:
        raise ValueError(
            f"the long text gives {ids.shape[1]} tokens on {lm.name}, fewer than length={length}"
        )
    return ids[:, :length]


def _save_state(path: Path, step: int, cache: DynamicCache) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"step": step, "layers": [(c.keys, c.values) for c in cache.layers]}, tmp)
    tmp.replace(path)


def _load_state(path: Path, lm: LoadedModel, step: int) -> DynamicCache | None:
    if not path.is_file():
        return None
    state = torch.load(path, weights_only=True)
    if state["step"] != step:
        return None
    cache = DynamicCache(config=lm.model.config)
    for layer, (keys, values) in enumerate(state["layers"]):
        cache.update(keys, values, layer)
    return cache


def _rolling_part(lm, model, spec, ids, start, cache) -> tuple[list[dict], DynamicCache]:
    names, variants = list(spec.variants), list(spec.variants.values())
    stop = min(start + spec.segment, ids.shape[1] - 1)
    logp = torch.full((len(variants), stop - start), float("nan"))
    ref = logp.clone()
    for t, logits, held in rolled_steps(lm, ids, variants, range(start, stop), cache):
        cache = held
        logp[:, t - start] = torch.log_softmax(widened(logits[:, -1]), -1)[:, ids[0, t + 1]].cpu()
    sampled = [t for t in range(start, stop) if t % spec.reference_every == spec.reference_every - 1]
    for t, logits in recomputed_steps(lm, ids, variants, sampled):
        ref[:, t - start] = torch.log_softmax(widened(logits[:, -1]), -1)[:, ids[0, t + 1]].cpu()
    rows = [{"model": model, "variant": name, "step": t, "logprob": float(logp[v, t - start]),
             "reference": float(ref[v, t - start])}
            for v, name in enumerate(names) for t in range(start, stop)]  # fmt: skip
    return rows, cache


def run_cache_study(
    folder: str | Path,
    spec: CacheSpec = CacheSpec(),
    progress: bool = True,
    load: Callable[[str], LoadedModel] | None = None,
) -> dict[str, pd.DataFrame]:
    """Compute every missing part of ``folder`` for ``spec`` (see the module docstring); returns
    :func:`read_cache_study`. A folder of another spec is refused; one writer at a time. ``load``: how a
    model name becomes a model (default :func:`~tempo_lab.load_model`). A new folder is claimed only once
    every model has loaded: a name that does not load leaves no folder behind, and the corrected retry
    runs."""
    load = load or _load
    store = ResultsFolder(folder)
    store.check_writable()
    manifest = _manifest(spec)
    with store.writing():
        ready = store.load_before_claiming(spec.models, load)
        store.claim(manifest, ["study", "spec"], grows=["plan"])
        identity, plan = identity_hash({"spec": spec.header()}), spec.plan()
        have = {t: set(store.verified(t, {k: k for k in plan[t]}, identity)) for t in TABLES}
        for model in spec.models:
            lm = ready.pop(model, None)
            starts = range(0, spec.prompt_count(), spec.per_part)
            lacking = {s: {t for t in PROMPT_TABLES if t != "ablation" and f"{model}-p{s:03d}" in plan[t]
                           and f"{model}-p{s:03d}" not in have[t]} for s in starts}  # fmt: skip
            todo = [s for s in starts if lacking[s]]
            for s in tqdm(todo, desc=f"{model}: prompts", disable=not progress):
                lm = lm or load(model)
                key = f"{model}-p{s:03d}"
                indices = list(range(s, min(s + spec.per_part, spec.prompt_count())))
                for table, rows in _prompt_rows(lm, model, spec, indices, lacking[s]).items():
                    store.write(table, key, rows, identity, key)
            ablating = [
                k for k in plan["ablation"] if k.startswith(f"{model}-p") and k not in have["ablation"]
            ]
            if ablating:  # after every prompt's massive activations: the mean ablation needs their means
                lm = lm or load(model)
                found = store.verified("massive", {k: k for k in plan["massive"]}, identity).values()
                rows = [f[f.model == model] for f in found if len(f)]
                means = massive_means(pd.concat(rows)) if rows else {}
                for key in tqdm(ablating, desc=f"{model}: ablations", disable=not progress):
                    s = int(key.rsplit("-p", 1)[1])
                    indices = list(range(s, min(s + spec.per_part, spec.prompt_count())))
                    store.write("ablation", key, _ablations(lm, model, spec, indices, means), identity, key)
            single = [k for k in plan["single"] if k.startswith(f"{model}-p") and k not in have["single"]]
            if single:  # the dimension ranked first over every prompt
                lm = lm or load(model)
                found = store.verified("massive", {k: k for k in plan["massive"]}, identity).values()
                massive = pd.concat([f[f.model == model] for f in found if len(f)])
                means = massive_means(massive)
                dim = int(massive_dims(massive, spec.prompt_count(), top=1).dim.iloc[0])
                for key in tqdm(single, desc=f"{model}: one dimension", disable=not progress):
                    s = int(key.rsplit("-p", 1)[1])
                    indices = list(range(s, min(s + spec.per_part, spec.prompt_count())))
                    store.write("single", key, _single(lm, model, spec, indices, means, dim), identity, key)
            segments = range(0, spec.length - 1, spec.segment)
            missing = [s for s in segments if f"{model}-t{s:05d}" not in have["rolling"]]
            if not missing:
                continue
            lm = lm or load(model)
            ids, state = _long_text(lm, spec.length), store.path / "rolling" / f"state-{model}.pt"
            first = missing[0]
            cache = _load_state(state, lm, first) if first else None
            first = first if first == 0 or cache is not None else 0  # no saved state: start over
            for s in tqdm(
                [s for s in segments if s >= first], desc=f"{model}: rolling", disable=not progress
            ):
                rows, cache = _rolling_part(lm, model, spec, ids, s, cache)
                key = f"{model}-t{s:05d}"
                store.write("rolling", key, rows, identity, key)
                _save_state(state, s + spec.segment, cache)
            state.unlink(missing_ok=True)  # the stream is whole: nothing to resume
    return read_cache_study(folder)


def study_spec(folder: str | Path) -> CacheSpec:
    """The :class:`CacheSpec` that ``folder``'s study was run with."""
    manifest = ResultsFolder(folder).read_manifest()
    if manifest.get("study") != "caches":
        raise ValueError(f"{folder} holds no cache study (its manifest names {manifest.get('study')!r})")
    spec = manifest["spec"]
    return CacheSpec(**{**spec, "models": tuple(spec["models"]), "partial": tuple(spec["partial"])})


def read_cache_study(folder: str | Path, *, allow_partial: bool = False) -> dict[str, pd.DataFrame]:
    """The verified tables of ``folder`` by name (:data:`TABLES`); a missing part raises
    :class:`~tempo_lab.results.IncompleteResults` naming it and the call that completes it
    (``allow_partial``: read what is there)."""
    store = ResultsFolder(folder)
    manifest = store.read_manifest()
    if manifest.get("study") != "caches":
        raise ValueError(f"{store.path} holds no cache study (its manifest names {manifest.get('study')!r})")
    identity = identity_hash({"spec": manifest["spec"]})
    out, missing = {}, {}
    for table in TABLES:
        expected = manifest["plan"].get(table, [])  # a table added after the folder was made: none yet
        parts = store.verified(table, {k: k for k in expected}, identity)
        lost = [k for k in expected if k not in parts]
        if lost:
            missing[table] = lost
        frames = [parts[k] for k in expected if k in parts]
        out[table] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if missing and not allow_partial:
        spec = manifest["spec"]
        call = f"tempo_lab.caches.run_cache_study({str(store.path)!r}, CacheSpec(**{spec!r}))"
        raise IncompleteResults(store.path, missing, call)
    return out
