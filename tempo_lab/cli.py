"""``tempo-lab``: the command line. Argument parsing and error reporting; the work is done by
:mod:`tempo_lab.plumbing.series` (the notebook series) and :mod:`tempo_lab.studies` (a study over a prompt
set).

    tempo-lab run                                   # bundled model, outputs in build/notebooks/
    tempo-lab run --model tiny-random -p prompt "The cat sat on the"
    tempo-lab run --only 01 03 --out /tmp/nb        # a subset
    tempo-lab run --in-place                        # re-execute the committed notebooks (default parameters)
    tempo-lab study --results results/mine --limit 300   # every measurement over the bundled prompts
    torchrun --nproc_per_node 2 -m tempo_lab.cli study --results results/mine   # the same, sharded
    tempo-lab long-context --results results/10_long_context   # notebook 10 (b)'s study, resumable
    tempo-lab eval --model tempo_lab --model_args method=yarn,factor=2 --tasks niah_single_1 ...  # lm-eval

Each notebook runs in a fresh ``python3`` kernel of the current environment, with its own folder as working
directory (so its relative ``fig_dir`` regenerates ``figures/``). Parameters given with ``-p`` go to every
notebook that declares them in its ``parameters`` cell; a name no notebook declares is an error. After each
notebook the cell tagged ``key-numbers`` is read back, and the run ends with a summary of those numbers.

Every expected failure (a bad argument, a missing model or file, a folder that cannot be written or is being
written by another run) ends with one line, ``tempo-lab: ...``, and exit status 2, without a traceback.
Ctrl-C says what was kept and how to resume (exit status 130). Heavy libraries load only once a command runs,
so ``tempo-lab --help`` answers at once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: the errors a user can cause and mend (bad input, a missing file or package, a folder that cannot be
#: written): reported in one line, never as a traceback
EXPECTED = (ValueError, OSError, ModuleNotFoundError)
#: what --model takes
MODELS_HELP = "'bundled' (default), 'gemma3-270m', 'tiny-random', a .gguf file, an HF id or a folder"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tempo-lab", description="tempo_lab notebook series and studies")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the notebook series headless (papermill) and print key numbers")
    run.add_argument("--model", help=f"model for every notebook: {MODELS_HELP}")
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
    study = sub.add_parser("study", help="run measurements over a prompt set into a results folder")
    study.add_argument("--results", required=True, type=Path, help="results folder (resumed if it exists)")
    study.add_argument("--model", help=MODELS_HELP)
    study.add_argument("--prompts", help="a .txt (a prompt per line) or .tsv (kind<TAB>prompt) file")
    study.add_argument(
        "--limit", type=int, help="only the first N prompts, spread over the kinds (more than the set: all)"
    )
    study.add_argument(
        "--phenomena", nargs="+", help="which measurements (default: notebook 06's six; 09's: localisation)"
    )
    study.add_argument("--batch-size", type=int, default=32, help="prompts per batch (default 32)")
    study.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16", "float64"], default=None,
        help="the weights' dtype (default float32, float64 for tiny-random); the folder records it",
    )  # fmt: skip
    study.add_argument("--seed", type=int, default=0)
    study.add_argument("--no-progress", action="store_true", help="no progress bar")
    long = sub.add_parser("long-context", help="notebook 10 (b)'s passkey and loss study, into a folder")
    long.add_argument("--results", required=True, type=Path, help="results folder (resumed if it exists)")
    long.add_argument("--cells", nargs="+", help="only the cells whose keys start with these")
    long.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_parser("eval", help="lm-evaluation-harness's command line with the model 'tempo_lab' registered",
                   add_help=False)  # fmt: skip
    return parser


def run_long_context_command(args: argparse.Namespace) -> int:
    check_results(args.results)
    from tempo_lab.long_context.study import run_long_context

    study = run_long_context(args.results, cells=args.cells, progress=not args.no_progress)
    for table, keys in study.missing.items():
        print(f"{table}: {len(keys)} part(s) still missing in {args.results}")
    rows = f"passkey: {len(study.passkey)} rows, loss: {len(study.loss)} rows"
    print(f"{rows}, {study.cpu_hours():.2f} CPU hours")
    return 0


def check_results(path: Path) -> None:
    """An empty ``--results`` would write into the current folder: refused."""
    if not str(path).strip() or str(path) == ".":
        raise ValueError(f"--results must name a folder to write the results in, got {str(path)!r}")


def run_study_command(args: argparse.Namespace, argv: Sequence[str]) -> int:
    check_results(args.results)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be an integer >= 1, got {args.limit}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be an integer >= 1, got {args.batch_size}")
    from tempo_lab.phenomena import DEFAULT_STUDY
    from tempo_lab.prompts import as_prompt_set, bundled_prompts
    from tempo_lab.studies import PromptProblems, run_study

    prompts = bundled_prompts() if args.prompts is None else as_prompt_set(args.prompts)
    if args.limit is not None and args.limit > len(prompts):
        print(f"tempo-lab: --limit {args.limit} is more than the {len(prompts)} prompts: running all of them",
              file=sys.stderr)  # fmt: skip
    model = None if args.model in (None, "bundled") else args.model
    resume = shlex.join(["tempo-lab", *argv])
    try:
        study = run_study(
            model, prompts, results=args.results, n=args.limit, phenomena=args.phenomena or DEFAULT_STUDY,
            batch_size=args.batch_size, seed=args.seed, progress=not args.no_progress, resume=resume,
            dtype=args.dtype,
        )  # fmt: skip
    except PromptProblems as exc:
        print(f"tempo-lab: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, the first process reports
    for phenomenon in study.phenomena:
        print(f"{phenomenon}: {len(study.table(phenomenon))} rows in {args.results / phenomenon}")
    return 0


def run_series_command(args: argparse.Namespace) -> int:
    from tempo_lab.plumbing import series

    notebooks = series.discover(args.notebooks or series.default_notebook_dir(), args.only)
    if args.in_place and (args.model is not None or args.parameter):
        raise ValueError(
            "--in-place re-executes the committed notebooks with their default parameters (nbval "
            "compares against them); run with --model/-p into --out instead"
        )
    plans = series.plan_parameters(notebooks, args.model, args.parameter)
    start = time.perf_counter()
    runs = series.run_series(
        notebooks,
        plans,
        out_dir=args.out,
        in_place=args.in_place,
        progress=not args.no_progress,
        cell_timeout=args.cell_timeout,
    )
    print(series.summary(runs, time.perf_counter() - start))
    return 1 if any(r.error for r in runs) else 0


def interrupted(args: argparse.Namespace) -> str:
    """What Ctrl-C leaves behind, and how to go on."""
    if args.command in ("study", "long-context"):
        kept = len(list(Path(args.results).glob("*/part-*.parquet")))
        return (
            f"interrupted; the {kept} part file(s) written so far are kept in {args.results}; run the same "
            "command again to resume from there"
        )
    return f"interrupted; the notebooks finished so far are in {args.out}"


def unknown_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """The options in ``argv`` that its command does not take (``--bogus``), in order."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = commands.choices.get(argv[0]) if argv else None
    known = set(parser._option_string_actions) | (set(command._option_string_actions) if command else set())
    out = []
    for token in argv[1:] if command else argv:
        if token == "--":
            break
        if token.startswith("-") and not _is_number(token) and token.split("=", 1)[0] not in known:
            out.append(token)
    return out


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["eval"]:  # every argument is lm-eval's
        from tempo_lab.interop.harness import main as harness

        harness(argv[1:])
        return 0
    parser = build_parser()
    unknown = unknown_options(parser, argv)
    if unknown:  # named first: argparse would report a missing required argument instead
        parser.error(f"unrecognised argument{'s' if len(unknown) > 1 else ''}: {' '.join(unknown)}")
    args = parser.parse_args(argv)
    try:
        if args.command == "study":
            return run_study_command(args, argv)
        if args.command == "long-context":
            return run_long_context_command(args)
        return run_series_command(args)
    except KeyboardInterrupt:
        print(f"tempo-lab: {interrupted(args)}", file=sys.stderr)
        return 130
    except EXPECTED as exc:
        print(f"tempo-lab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
