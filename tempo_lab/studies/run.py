"""Running a study: every measurement over every prompt, in batches, written as it goes, resumable, sharded.

    study = run_study(lm, bundled_prompts(), results="results/my_study")   # or a list of strings, a file
    study.table("retroactive")                                             # one row per prompt x condition

Prompts are sorted by token length and cut into chunks of ``batch_size`` (similar lengths share a batch, so
little is padded). For each measurement, every chunk without a verified part is computed and written
(:class:`~tempo_lab.studies.folder.StudyFolder`); an interrupted run resumes at the first missing chunk, and a
part that fails verification (corrupt, truncated, copied, of another run) is quarantined and recomputed. One
run writes a folder at a time (a second one is refused, naming the first).

Sharding: under ``torchrun --nproc_per_node N`` or ``accelerate launch`` (``WORLD_SIZE > 1``), the chunks are
split between the processes with accelerate's ``PartialState().split_between_processes``; every process
writes its own chunks into the shared folder, all wait for each other, and every process then reads the
merged table. The chunking does not depend on the number of processes, so the table is the one a single
process writes.

Bad prompts: a prompt that encodes to no tokens, or whose positions would pass the model's context, is left
out and named by its index; the other prompts' results are computed and kept, and the run then raises
:class:`PromptProblems` (``problems="skip"`` records them in ``study.problems`` instead).

Contents: :class:`Study`, :class:`PromptProblems`, :func:`run_study`, :func:`read_study`, :func:`chunks`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from tempo_lab.claims import fingerprints
from tempo_lab.models import LoadedModel, load_model
from tempo_lab.phenomena import CLAIMS, DEFAULT_STUDY, MEASURES
from tempo_lab.phenomena.conditions import Conditions, context_needed
from tempo_lab.plumbing import checks
from tempo_lab.prompts import PromptSet, as_prompt_set, bundled_prompts, encode
from tempo_lab.results import IncompleteResults, ResultsWarning
from tempo_lab.studies.folder import IDENTITY, StudyFolder, manifest

#: the study's tables: one per phenomenon with a batched measurement
PHENOMENA: tuple[str, ...] = tuple(MEASURES)


class PromptProblems(ValueError):
    """Some prompts could not be measured; ``problems`` maps each one's index to why."""

    def __init__(self, problems: dict[int, str]):
        self.problems = problems
        lines = "; ".join(f"prompt {i}: {why}" for i, why in sorted(problems.items()))
        super().__init__(f"{len(problems)} prompt(s) left out, the others' results are kept: {lines}")


@dataclass
class Study:
    """A study read from its folder: manifest, prompts, left-out prompts, and its verified tables.

    ``missing``: per measurement, the chunks that had no verified part when the study was read (empty unless
    read with ``allow_partial=True``)."""

    folder: StudyFolder
    manifest: dict
    prompts: PromptSet
    problems: dict[int, str] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    allow_partial: bool = False
    _tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def table(self, phenomenon: str) -> pd.DataFrame:
        """One row per prompt x condition of ``phenomenon``, with the prompt's kind and text and the model,
        dtype, library versions and seed the folder was written with. Every part is verified on first read
        (:mod:`tempo_lab.results`)."""
        if phenomenon not in PHENOMENA:
            raise ValueError(f"unknown phenomenon {phenomenon!r}; expected one of {PHENOMENA}")
        if phenomenon not in self._tables:
            table, _ = self.folder.read(self.manifest, phenomenon, allow_partial=self.allow_partial)
            table.insert(1, "kind", [self.prompts.kinds[i] for i in table["prompt"]])
            table.insert(2, "prompt_text", [self.prompts.prompts[i] for i in table["prompt"]])
            m = self.manifest
            meta = {"model": m["model"], "dtype": m["dtype"], "seed": m["seed"], **m["versions"]}
            self._tables[phenomenon] = table.assign(**meta)
        return self._tables[phenomenon].copy()

    @property
    def phenomena(self) -> list[str]:
        """The measurements this folder's runs asked for, in :data:`PHENOMENA` order."""
        return [p for p in PHENOMENA if p in self.manifest.get("phenomena", [])]


def chunks(lengths: Sequence[int | None], batch_size: int) -> list[list[int]]:
    """Prompt indices sorted by token length (``None``: left out), cut into chunks of ``batch_size``."""
    order = sorted((n, i) for i, n in enumerate(lengths) if n is not None)
    return [[i for _, i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]


def _encode_all(lm: LoadedModel, prompts: PromptSet, cond: Conditions):
    """Every prompt's ids ``(1, T)`` (``None`` when left out) and why each left-out prompt is."""
    ids: list[torch.Tensor | None] = []
    bad: dict[int, str] = {}
    for i in range(len(prompts)):
        try:
            x = encode(lm, prompts, i)
        except ValueError as exc:
            x, bad[i] = None, str(exc)
        if x is not None and (why := _problem(lm, x, cond)):
            x, bad[i] = None, why
        ids.append(x)
    return ids, bad


def _problem(lm: LoadedModel, ids: torch.Tensor, cond: Conditions) -> str | None:
    t = ids.shape[1]
    if t == 0:
        return "it encodes to no tokens"
    if t < 2:
        return "it has one token; the fractional probe needs two"
    need = context_needed(t, cond)
    if lm.max_positions is not None and need > lm.max_positions:
        return f"with {t} tokens it needs position {need - 1}, past the model's context of {lm.max_positions}"
    return None


def _process_device() -> str:
    """This process's device: its own GPU under a multi-GPU launch (``LOCAL_RANK``), else the first GPU, else
    the CPU."""
    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"


def _split(todo: list[int]) -> tuple[list[int], object | None]:
    """This process's share of ``todo`` under torchrun / accelerate launch, and the state to wait on."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return todo, None
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    with state.split_between_processes(todo) as mine:
        return list(mine), state


def _launch_group() -> str | None:
    """The id shared by the processes of one sharded launch (torchrun, accelerate), or ``None``."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    where = f"{os.environ.get('MASTER_ADDR', '')}:{os.environ.get('MASTER_PORT', '')}"
    return f"{run_id or where}/{os.environ['WORLD_SIZE']}"


def run_study(
    model: LoadedModel | str | None = None,
    prompts=None,
    *,
    results: str | Path,
    phenomena: Sequence[str] = DEFAULT_STUDY,
    conditions: Conditions | None = None,
    n: int | None = None,
    batch_size: int = 32,
    seed: int = 0,
    problems: str = "raise",
    progress: bool = True,
    resume: str | None = None,
    dtype: str | torch.dtype | None = None,
) -> Study:
    """Run ``phenomena`` over ``prompts`` (default: the bundled 302; ``n``: the first ``n``, spread over the
    kinds; more than the set means all of it) into the folder ``results``; see the module docstring.
    ``model``: a loaded model, or a name for :func:`~tempo_lab.load_model` (``None``: the bundled model),
    loaded on this process's GPU when there is one (each process of a multi-GPU launch takes its
    ``LOCAL_RANK``'s). ``resume``: the command that completes this folder, quoted when a read finds it
    incomplete (default: this call). ``dtype``: the weights' dtype when the model is loaded here (default
    float32, float64 for the tiny random model; ``"bfloat16"`` halves the memory, and is fast only where the
    CPU or GPU has bfloat16 matmul units); the folder records it, its tables carry it, and a folder written in
    another dtype is refused.

    The folder is checked writable and its writer lock taken
    (:meth:`~tempo_lab.results.ResultsFolder.writing`) before the model is loaded; every existing part is
    verified, and a part that fails is quarantined and recomputed."""
    unknown = [p for p in phenomena if p not in PHENOMENA]
    if unknown or not phenomena:
        raise ValueError(f"unknown phenomenon {unknown[0] if unknown else None!r}; choose from {PHENOMENA}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if problems not in ("raise", "skip"):
        raise ValueError(f"problems must be 'raise' or 'skip', got {problems!r}")
    if dtype is not None and isinstance(model, LoadedModel):
        raise ValueError(
            f"dtype={dtype!r} applies when run_study loads the model; this one is loaded, in "
            f"{str(model.dtype).removeprefix('torch.')}: load it in the dtype you want instead"
        )
    prompts = bundled_prompts() if prompts is None else as_prompt_set(prompts)
    if n is not None:
        n = checks.count("n", n)
        prompts = prompts.head(min(n, len(prompts)))
    folder = StudyFolder(results)
    folder.check_writable()
    with folder.writing(group=_launch_group()):
        lm = (
            model
            if isinstance(model, LoadedModel)
            else load_model(model, device=_process_device(), dtype=dtype)
        )
        return _run(lm, prompts, folder, list(phenomena), conditions or Conditions(), batch_size, seed,
                    problems, progress, resume)  # fmt: skip


def _run(lm, prompts, folder, phenomena, cond, batch_size, seed, problems, progress, resume) -> Study:
    torch.manual_seed(seed)
    ids, bad = _encode_all(lm, prompts, cond)
    plan = chunks([None if x is None else x.shape[1] for x in ids], batch_size)
    resume = resume or (
        f"run_study(model={lm.name!r}, results={str(folder.path)!r}, ...) again with the same arguments"
    )
    m = manifest(lm, prompts, cond, batch_size, seed, plan, resume)
    if folder.manifest_path.exists():  # keep what earlier runs asked for
        earlier = folder.read_manifest()
        m["phenomena"] = [p for p in PHENOMENA if p in {*earlier.get("phenomena", []), *phenomena}]
    else:
        m["phenomena"] = [p for p in PHENOMENA if p in phenomena]
    folder.claim(m, IDENTITY, grows=["phenomena"])  # every process checks; any may write it (same content)
    done = {p: folder.done(m, p) for p in phenomena}  # verified once per run, failing parts quarantined
    # the rules in force when a measurement's data is first computed; never rewritten afterwards
    recorded = folder.read_manifest().get("rules") if folder.manifest_path.exists() else None
    fresh = fingerprints([c for c in CLAIMS if c.phenomenon in phenomena and not done[c.phenomenon]])
    if fresh or recorded is not None:
        m["rules"] = {**fresh, **(recorded or {})}
        folder.claim(m, IDENTITY, grows=["rules"])
    todo = [(p, c) for p in phenomena for c in range(len(plan)) if c not in done[p]]
    mine, state = _split(todo)
    if state is not None:
        print(f"process {state.process_index} of {state.num_processes}: {len(mine)} of {len(todo)} batches")
    bar = tqdm(mine, desc=f"study of {len(prompts) - len(bad)} prompts", disable=not progress, unit="batch")
    for phenomenon, c in bar:
        bar.set_postfix_str(phenomenon)
        batch = [(i, ids[i]) for i in plan[c]]
        folder.write_chunk(m, phenomenon, c, MEASURES[phenomenon](lm, batch, cond))
    if state is not None:
        state.wait_for_everyone()
    study = Study(folder, folder.read_manifest(), prompts, bad)
    if bad and problems == "raise":
        raise PromptProblems(bad)
    return study


def read_study(results: str | Path, prompts=None, *, allow_partial: bool = False) -> Study:
    """A study from its folder, without running anything (``prompts``: the set it was run on; default the
    bundled set, cut to the folder's size when it was run with ``n``).

    Every part of every measurement the folder's runs asked for is verified (:mod:`tempo_lab.results`): a
    folder with missing or failing parts is refused with :class:`~tempo_lab.results.IncompleteResults`, which
    names the missing chunks and the command that completes them. ``allow_partial=True`` reads what is there
    instead, warns with the missing chunks, and records them in ``study.missing``."""
    folder = StudyFolder(results)
    m = folder.read_manifest()
    prompts = bundled_prompts() if prompts is None else as_prompt_set(prompts)
    if len(prompts) != m["n_prompts"]:
        prompts = prompts.head(min(m["n_prompts"], len(prompts)))
    if prompts.fingerprint != m["prompt_set"]:
        raise ValueError(
            f"{results} was run on another prompt set ({m['prompt_set_name']!r}): pass it as prompts"
        )
    missing = folder.missing(m, m.get("phenomena", []))
    if missing and not allow_partial:
        raise IncompleteResults(folder.path, missing, m["resume"])
    if missing:
        shown = "; ".join(f"{p}: chunks {', '.join(k)}" for p, k in missing.items())
        warnings.warn(f"reading a partial study in {folder.path}: missing {shown}", ResultsWarning,
                      stacklevel=2)  # fmt: skip
    return Study(folder, m, prompts, missing=missing, allow_partial=allow_partial)
