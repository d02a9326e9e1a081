"""``tempo-lab run``: execute the notebook series headless with papermill and print the key numbers.

    tempo-lab run                                   # bundled model, outputs in build/notebooks/
    tempo-lab run --model tiny-random -p prompt "The cat sat on the"
    tempo-lab run --only 01 03 --out /tmp/nb        # a subset
    tempo-lab run --in-place                        # re-execute the committed notebooks (default parameters)

Each notebook runs in a fresh ``python3`` kernel of the current environment, with its own folder as working
directory (so its relative ``fig_dir`` regenerates ``figures/``). Parameters given with ``-p`` go to every
notebook that declares them in its ``parameters`` cell; a name no notebook declares is an error. After each
notebook the cell tagged ``key-numbers`` is read back, and the run ends with a summary of those numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KERNEL = "python3"
KEY_NUMBERS_TAG = "key-numbers"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
ENGINE = "tempo_lab"


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
    return Path(__file__).resolve().parent.parent / "notebooks"


def discover(notebook_dir: Path, only: Sequence[str] | None = None) -> list[Path]:
    """The series' notebooks (``NN_name.ipynb``) in order; ``only`` keeps those whose name starts with, or
    equals, one of the given prefixes (``"01"``, ``"03_retroactive"``)."""
    found = sorted(notebook_dir.glob(NOTEBOOK_GLOB))
    if not found:
        raise ValueError(f"no notebooks matching {NOTEBOOK_GLOB} in {notebook_dir}")
    if not only:
        return found
    chosen = [p for p in found if any(p.stem.startswith(o) or p.name == o for o in only)]
    missing = [o for o in only if not any(p.stem.startswith(o) or p.name == o for p in found)]
    if missing:
        raise ValueError(f"--only {missing[0]!r} matches no notebook; have {[p.stem for p in found]}")
    return chosen


def parse_value(text: str, declared_type: str | None = None) -> Any:
    """A ``-p`` value: ``None``/``none``/``null`` is None; otherwise kept as text when the notebook's default
    is
    a string (so ``-p prompt 42`` gives ``"42"``), else read as JSON (``0.2``, ``[0, 5]``, ``true``), falling
    back to text."""
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


def key_numbers(nb) -> dict[str, Any]:
    """The JSON printed by the cell tagged ``key-numbers`` of an executed notebook (``{}`` if none)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and KEY_NUMBERS_TAG in cell.get("metadata", {}).get("tags", []):
            text = "".join(
                o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
            )
            try:
                return json.loads(text)
            except ValueError:
                return {}
    return {}


def strip_run_metadata(nb) -> None:
    """Drop the metadata that changes on every run (papermill timings, execution timestamps), in place, so a
    re-executed notebook only differs from the committed one where its outputs do."""
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)


# --- a papermill engine that cannot miss a kernel message ---
#
# papermill's client waits for a cell's reply with one ``socket.poll(timeout)`` on the kernel's sockets. On
# this
# stack (pyzmq 27, jupyter_client 8.10, nbclient 0.11, ipykernel 6 or 7) that wait occasionally is not woken
# when the reply arrives, typically after a cell that opens many widget comms: the kernel is idle, the reply
# sits in the socket, and the client sleeps until the cell timeout (forever without one). Polling in short
# slices re-checks the socket every second, so a missed wake-up costs at most that second.


def _engine():
    """Register (once) and return the papermill engine ``tempo_lab``: papermill's nbclient engine with a
    client
    that polls the kernel's shell and IOPub sockets in one-second slices."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines

    if ENGINE in papermill_engines._engines:
        return papermill_engines._engines[ENGINE]

    import asyncio
    from queue import Empty
    from time import monotonic

    from jupyter_core.utils import ensure_async
    from nbclient.client import timestamp
    from nbclient.exceptions import CellExecutionComplete, CellTimeoutError

    class PollingClient(PapermillNotebookClient):
        poll_seconds = 1.0

        async def _next(self, channel, deadline: float | None):
            while True:
                left = None if deadline is None else deadline - monotonic()
                try:
                    return await ensure_async(
                        channel.get_msg(
                            timeout=self.poll_seconds
                            if left is None
                            else max(0.0, min(self.poll_seconds, left))
                        )
                    )
                except Empty:
                    if left is not None and monotonic() >= deadline:
                        raise

        async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
            while True:
                msg = await self._next(self.kc.iopub_channel, None)
                if msg["parent_header"].get("msg_id") == parent_msg_id:
                    try:
                        self.process_message(msg, cell, cell_index)
                    except CellExecutionComplete:
                        return

        async def _async_poll_for_reply(
            self, msg_id, cell, timeout, task_poll_output_msg, task_poll_kernel_alive
        ):
            deadline = None if timeout is None else monotonic() + timeout
            while True:
                try:
                    msg = await self._next(self.kc.shell_channel, deadline)
                except Empty:
                    task_poll_kernel_alive.cancel()
                    await self._async_check_alive()
                    await self._async_handle_timeout(timeout, cell)  # raises CellTimeoutError
                    continue
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if self.record_timing:
                    cell["metadata"]["execution"]["shell.execute_reply"] = timestamp(msg)
                try:
                    await asyncio.wait_for(task_poll_output_msg, self.iopub_timeout)
                except (asyncio.TimeoutError, Empty):
                    task_poll_kernel_alive.cancel()
                    raise CellTimeoutError.error_from_timeout_and_cell(
                        "Timeout waiting for IOPub output", self.iopub_timeout, cell
                    ) from None
                task_poll_kernel_alive.cancel()
                return msg

    class PollingEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man,
            kernel_name,
            log_output=False,
            stdout_file=None,
            stderr_file=None,
            start_timeout=60,
            execution_timeout=None,
            **kwargs,
        ):
            kwargs.pop("input_path", None)
            return PollingClient(
                nb_man,
                timeout=execution_timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=logging.getLogger("papermill"),
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
                **kwargs,
            ).execute()

    papermill_engines.register(ENGINE, PollingEngine)
    return PollingEngine


def execute(
    source: Path, output: Path, parameters: dict[str, Any], *, progress: bool = True, cell_timeout: int = 900
):
    """Run one notebook with papermill in a ``python3`` kernel of this environment; returns the executed
    notebook node (also written to ``output``). Raises papermill's ``PapermillExecutionError`` on a failing
    cell (the partial notebook is written first)."""
    import papermill

    _engine()
    output.parent.mkdir(parents=True, exist_ok=True)
    return papermill.execute_notebook(
        str(source),
        str(output),
        parameters=parameters or None,
        engine_name=ENGINE,
        kernel_name=KERNEL,
        cwd=str(source.parent),
        progress_bar=progress,
        log_output=False,
        execution_timeout=cell_timeout,
    )


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
    error
    is then written over its source with the per-run metadata stripped (a failing one leaves its source alone;
    its partial output stays in ``out_dir``). Failures are recorded and the remaining notebooks still run."""
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
            run.key_numbers = key_numbers(nb)
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


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(round(value, 4))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value) if not isinstance(value, str) else repr(value)


def summary(runs: Sequence[NotebookRun], total_seconds: float) -> str:
    """The closing report: per notebook its time and key numbers, then the total."""
    lines = ["", "Key numbers"]
    for run in runs:
        lines.append(f"  {run.name}  ({run.seconds:.1f} s{', FAILED' if run.error else ''})")
        if run.error:
            lines.append(f"    {run.error}  (see {run.output})")
        for key, value in run.key_numbers.items():
            lines.append(f"    {key}: {_fmt(value)}")
    failed = sum(r.error is not None for r in runs)
    lines.append(f"{len(runs) - failed}/{len(runs)} notebooks ran in {total_seconds:.1f} s")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tempo-lab", description="tempo_lab notebook series")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebook series headless (papermill) and print key numbers")
    run.add_argument(
        "--model", help="model for every notebook: 'bundled' (default), 'tiny-random', an HF id or path"
    )
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="a notebook parameter for every notebook that declares it (JSON values: 0.2, '[0, 5]')",
    )
    run.add_argument("--out", default="build/notebooks", type=Path, help="folder for the executed notebooks")
    run.add_argument(
        "--in-place", action="store_true", help="overwrite the notebooks with their executed form"
    )
    run.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (name prefixes)")
    run.add_argument("--notebooks", type=Path, help="the notebook folder (default: ./notebooks)")
    run.add_argument("--no-progress", action="store_true", help="no per-cell progress bars")
    run.add_argument("--cell-timeout", type=int, default=900, help="seconds one cell may run (default 900)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        notebooks = discover(args.notebooks or default_notebook_dir(), args.only)
        if args.in_place and (args.model is not None or args.parameter):
            raise ValueError(
                "--in-place re-executes the committed notebooks with their default parameters (nbval "
                "compares against them); run with --model/-p into --out instead"
            )
        plans = plan_parameters(notebooks, args.model, args.parameter)
    except ValueError as exc:
        print(f"tempo-lab: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    runs = run_series(
        notebooks,
        plans,
        out_dir=args.out,
        in_place=args.in_place,
        progress=not args.no_progress,
        cell_timeout=args.cell_timeout,
    )
    print(summary(runs, time.perf_counter() - start))
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
