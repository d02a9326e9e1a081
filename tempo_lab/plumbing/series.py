"""Running the notebook series headless: discover the notebooks, plan their parameters, execute, summarise.

``tempo-lab run`` (:mod:`tempo_lab.cli`) is argument parsing over this module; each notebook is executed by
:func:`tempo_lab.plumbing.execution.execute`.

Contents: :func:`discover`, :func:`declared_parameters`, :func:`parse_value`, :func:`plan_parameters`,
:func:`run_series` → :class:`NotebookRun`, :func:`strip_run_metadata`, :func:`summary`,
:func:`default_notebook_dir`, :data:`NOTEBOOK_GLOB`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tempo_lab.labels import compact
from tempo_lab.notebook import read_key_numbers
from tempo_lab.plumbing.execution import execute

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


@dataclass
class NotebookRun:
    """The outcome of executing one notebook."""

    name: str
    source: Path
    output: Path
    parameters: dict[str, Any]
    seconds: float = 0.0
    key_numbers: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def default_notebook_dir() -> Path:
    """``./notebooks`` when run from a checkout's root, else the ``notebooks`` folder beside the package."""
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "notebooks"  # tempo_lab/plumbing/series.py -> the checkout


def discover(notebook_dir: Path, only: Sequence[str] | None = None) -> list[Path]:
    """The series' notebooks (``NN_name.ipynb``) in order; ``only`` keeps those whose name starts with, or
    equals, one of the given prefixes (``"01"``, ``"03_retroactive"``)."""
    found = sorted(notebook_dir.glob(NOTEBOOK_GLOB))
    if not found:
        raise ValueError(
            f"no notebooks matching {NOTEBOOK_GLOB} in {notebook_dir}: the series lives in the notebooks/ "
            "folder of a tempo_lab checkout, not in the installed package; run tempo-lab from the checkout's "
            "root, or pass --notebooks <checkout>/notebooks"
        )
    if not only:
        return found
    chosen = [p for p in found if any(p.stem.startswith(o) or p.name == o for o in only)]
    missing = [o for o in only if not any(p.stem.startswith(o) or p.name == o for p in found)]
    if missing:
        raise ValueError(f"--only {missing[0]!r} matches no notebook; have {[p.stem for p in found]}")
    return chosen


def parse_value(text: str, declared_type: str | None = None) -> Any:
    """A ``-p`` value: ``None``/``none``/``null`` is None; otherwise kept as text when the notebook's default
    is a string (so ``-p prompt 42`` gives ``"42"``), else read as JSON (``0.2``, ``[0, 5]``, ``true``),
    falling back to text."""
    if text in ("None", "none", "null"):
        return None
    if declared_type == "str":
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def declared_parameters(path: Path) -> dict[str, str]:
    """Name → type name of the default value (``"str"``, ``"float"``, ``"list"``, ``"NoneType"``; ``""`` when
    the default is not a literal) of every assignment in the notebook's ``parameters`` cell."""
    import ast

    import papermill

    out = {}
    for name, info in papermill.inspect_notebook(str(path)).items():
        try:
            out[name] = type(ast.literal_eval(info.get("default", ""))).__name__
        except (ValueError, SyntaxError):
            out[name] = ""
    return out


def plan_parameters(
    notebooks: Sequence[Path], model: str | None, pairs: Sequence[Sequence[str]]
) -> dict[Path, dict[str, Any]]:
    """Per notebook, the parameters to inject: ``model_name`` (when ``model`` is given; ``"bundled"`` = None)
    plus every ``-p KEY VALUE`` the notebook declares. ``ValueError`` for a key no notebook declares."""
    declared = {p: declared_parameters(p) for p in notebooks}
    requested: list[tuple[str, str]] = [(k, v) for k, v in pairs]
    known = set().union(*declared.values()) if declared else set()
    for key, _ in requested:
        if key not in known:
            raise ValueError(
                f"-p {key}: no selected notebook has a parameter {key!r}; known: {sorted(known)}"
            )
    plans: dict[Path, dict[str, Any]] = {}
    for path in notebooks:
        params: dict[str, Any] = {}
        if model is not None and "model_name" in declared[path]:
            params["model_name"] = None if model in ("bundled", "None", "none") else model
        for key, value in requested:
            if key in declared[path]:
                params[key] = parse_value(value, declared[path][key])
        plans[path] = params
    return plans


def strip_run_metadata(nb) -> None:
    """Drop the metadata that changes on every run (papermill timings, execution timestamps) and any saved
    widget state (the views keep their figure in their output), in place, so a re-executed notebook only
    differs from the committed one where its outputs do."""
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)


def run_series(
    notebooks: Sequence[Path],
    plans: dict[Path, dict[str, Any]],
    *,
    out_dir: Path,
    in_place: bool = False,
    progress: bool = True,
    cell_timeout: int = 900,
    echo=print,
) -> list[NotebookRun]:
    """Execute ``notebooks`` in order into ``out_dir``. With ``in_place``, each notebook that ran without
    error is then written over its source with the per-run metadata stripped (a failing one leaves its source
    alone; its partial output stays in ``out_dir``). Failures are recorded and the remaining notebooks still
    run."""
    import nbformat

    runs: list[NotebookRun] = []
    for i, source in enumerate(notebooks, start=1):
        params = plans.get(source, {})
        output = out_dir / source.name
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "default parameters"
        echo(f"[{i}/{len(notebooks)}] {source.name} ({shown})")
        run = NotebookRun(source.stem, source, output, params)
        start = time.perf_counter()
        try:
            nb = execute(source, output, params, progress=progress, cell_timeout=cell_timeout)
            run.key_numbers = read_key_numbers(nb)
            if in_place:
                strip_run_metadata(nb)
                nbformat.write(nb, str(source))
                run.output = source
        except Exception as exc:  # noqa: BLE001 - report every failing notebook, then exit non-zero
            lines = str(exc).strip().splitlines()
            run.error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
        run.seconds = time.perf_counter() - start
        status = f"FAILED ({run.error})" if run.error else "ok"
        echo(f"      {status} in {run.seconds:.1f} s -> {run.output}")
        runs.append(run)
    return runs


def summary(runs: Sequence[NotebookRun], total_seconds: float) -> str:
    """The closing report: per notebook its time and key numbers, then the total."""
    lines = ["", "Key numbers"]
    for run in runs:
        lines.append(f"  {run.name}  ({run.seconds:.1f} s{', FAILED' if run.error else ''})")
        if run.error:
            lines.append(f"    {run.error}  (see {run.output})")
        for key, value in run.key_numbers.items():
            lines.append(f"    {key}: {compact(value)}")
    failed = sum(r.error is not None for r in runs)
    lines.append(f"{len(runs) - failed}/{len(runs)} notebooks ran in {total_seconds:.1f} s")
    return "\n".join(lines)
