"""The whole study from an empty results folder, as a user runs it: ``run_study`` over the bundled 302
prompts (bundled model, float32, chunks of 32, default conditions), one measurement after another into one
fresh folder, each timed, then the folder read back whole.

Run: ``.venv/bin/python benchmarks/study_from_empty.py [--n 302] [--dtype float32]
[--against results/06_claims_at_scale] [--out benchmarks/study_from_empty.json]``. Target (issue 23): the 302
prompts in <= 4 min in float32 on the 2-core CPU.

Rows: every table is compared with the same table of ``--against``, a folder of the same prompts and
conditions written by an earlier path (the committed notebook 06 folder was written before each prompt's
prefill was shared and before the attention maps came from the runs' own passes): floats to 1e-4, everything
else exactly. A bfloat16 study has no such folder (it rounds differently): its verdicts are compared instead
with those of ``--verdicts-against`` (default: the committed float32 folder), claim by claim, with the paired
test of each claim's headline (``tempo_lab.phenomena.compare_claims``). The single-prompt loop gives the same
rows as the batched measurements (``tests/phenomena/test_registry.py``, every measurement;
``benchmarks/study.py`` side by side, timed). Time only a quiet machine: two torch processes on two cores slow
each other by far more than 2x.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path

import nbformat
import pandas as pd
import torch

from tempo_lab import load_model, notebook, phenomena, timing
from tempo_lab.phenomena import DEFAULT_STUDY
from tempo_lab.studies import read_study, run_study

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["prompt", "strategy", "mode", "gap", "threshold"]


def rows_only(study, phenomenon: str) -> pd.DataFrame:
    """A study's table without the columns that say how it was made (model, dtype, seed, versions)."""
    made = {"model", "dtype", "seed", *study.manifest["versions"]}
    table = study.table(phenomenon)  # a copy of the cached table
    return table.drop(columns=[c for c in made if c in table])


def largest_difference(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """The largest absolute difference between two tables' float columns, matched on their key columns;
    ``inf`` when their keys, columns or any non-float value differ."""
    keys = [k for k in KEYS if k in a.columns]
    a, b = a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True)
    if list(a.columns) != list(b.columns) or not a[keys].equals(b[keys]):
        return float("inf")
    worst = 0.0
    for column in a.columns:
        if a[column].dtype.kind == "f":
            same_nan = (a[column].isna() == b[column].isna()).all()
            worst = max(worst, float((a[column] - b[column]).abs().max()) if same_nan else float("inf"))
        elif not a[column].equals(b[column]):
            return float("inf")
    return worst


def verdicts(study, other) -> dict:
    """``study``'s claims decided beside ``other``'s (same prompts, another dtype): how many verdicts agree,
    and per claim both verdicts and the paired difference of its headline (``study`` minus ``other``)."""
    single = {nb.name[:2]: notebook.read_key_numbers(nbformat.read(nb, 4))
              for nb in sorted((ROOT / "notebooks").glob("0[1-5]_*.ipynb"))}  # fmt: skip
    names = (other.manifest["dtype"], study.manifest["dtype"])
    table = phenomena.compare_claims(other, study, single, phenomena=DEFAULT_STUDY, names=names)
    claims = [{"claim": row["claim"], **{n: row[f"{n}: verdict"] for n in names}, "headline": row["headline"],
               "difference": row["difference"], "p": row["p"]} for _, row in table.iterrows()]  # fmt: skip
    agree = int(table["verdicts agree"].sum())
    print(f"verdicts: {agree} of {len(table)} agree with {names[0]}'s")
    for c in claims:
        if c[names[0]] != c[names[1]]:
            print(f"  {c['claim']}: {c[names[0]]} in {names[0]}, {c[names[1]]} in {names[1]}")
    return {"against": names[0], "agree": agree, "claims": claims}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=302)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--against", type=Path, default=None,
                        help="an earlier folder of the same dtype (float32: results/06_claims_at_scale)")
    parser.add_argument("--verdicts-against", type=Path, default=None,
                        help="without --against (another dtype): the folder whose verdicts to compare "
                             "(default results/06_claims_at_scale)")
    parser.add_argument("--keep", type=Path, default=None, help="write the study here and keep it")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("study_from_empty.json"))
    args = parser.parse_args(argv)
    if args.against is None and args.dtype == "float32":
        args.against = ROOT / "results" / "06_claims_at_scale"
    if args.verdicts_against is None and args.against is None:
        args.verdicts_against = ROOT / "results" / "06_claims_at_scale"
    lm = load_model(dtype=getattr(torch, args.dtype))
    seconds: dict[str, float] = {}
    decided = None
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "study"
        if folder.exists():
            raise SystemExit(f"{folder} exists: the study is timed from an empty folder")
        for phenomenon in DEFAULT_STUDY:
            start = time.perf_counter()
            run_study(lm, results=folder, phenomena=[phenomenon], n=args.n, progress=False)
            seconds[phenomenon] = time.perf_counter() - start
            print(f"{phenomenon:<12} {seconds[phenomenon]:7.1f} s", flush=True)
        start = time.perf_counter()
        study = read_study(folder)
        tables = {p: rows_only(study, p) for p in DEFAULT_STUDY}
        read = time.perf_counter() - start
        if args.against is None:  # decided while the folder exists (a temporary one goes with the block)
            decided = verdicts(study, read_study(args.verdicts_against))
    differences, against = None, None
    if args.against is not None:
        earlier = read_study(args.against)
        differences = {p: largest_difference(t, rows_only(earlier, p)) for p, t in tables.items()}
        against = args.against.resolve()
        against = against.relative_to(ROOT) if against.is_relative_to(ROOT) else against
    total = sum(seconds.values())
    out = {"date": date.today().isoformat(), "machine": timing.machine(), "model": lm.name,
           "dtype": args.dtype, "prompts": args.n, "seconds": seconds,
           "rows": {p: len(t) for p, t in tables.items()}, "read_seconds": read, "total_seconds": total,
           "target_seconds": 240.0, "against": against and str(against),
           "largest_difference": differences}  # fmt: skip
    if decided is not None:
        out["verdicts"] = decided
    print(f"{'the study':<12} {total:7.1f} s ({total / 60:.1f} min; read back in {read:.1f} s)")
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    if differences is None:
        return out
    print(f"largest difference from {against}: " + ", ".join(f"{p} {d:.1e}" for p, d in differences.items()))
    if any(d > 1e-4 for d in differences.values()):
        raise SystemExit(f"rows differ from {args.against} by more than 1e-4: {differences}")
    return out


if __name__ == "__main__":
    main()
