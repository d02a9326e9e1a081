"""Smoke test of an installed tempo_lab wheel, run by ``make wheel-smoke`` from an empty folder.

    build/wheel-venv/bin/python tools/wheel_smoke.py --checkout /path/to/tempo_lab

Checks that the package works outside the checkout: it is imported from the venv (not the source tree), the
``tempo-lab`` command starts, a tiny model runs each generator, the bundled prompt set ships as package data,
a 4-prompt study writes and reads a results folder, and the TPI report reads the committed results given the
checkout's path, while without it the error says where they are. Exits non-zero at the first failure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def check(what: str, ok: bool) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, required=True, help="the tempo_lab checkout (for results/)")
    checkout = parser.parse_args().checkout.resolve()

    import tempo_lab

    where = Path(tempo_lab.__file__).resolve()
    installed = "site-packages" in where.parts and where.parent != checkout / "tempo_lab"
    check(f"tempo_lab is imported from the installed wheel ({where})", installed)
    help_text = subprocess.run(
        [str(Path(sys.executable).with_name("tempo-lab")), "--help"], capture_output=True, text=True
    )
    check("the tempo-lab command starts", help_text.returncode == 0 and "study" in help_text.stdout)

    from tempo_lab import load_model
    from tempo_lab.generators import (
        CompressedThoughtGenerator,
        ParallelTokenGenerator,
        RetroactivePositionGenerator,
    )

    lm = load_model("tiny-random")
    retro = RetroactivePositionGenerator(lm).explore("Once upon a time", gaps=[0, 2.5, 10])
    check("the retroactive generator runs", retro.probs.shape[0] == 3)
    paths = CompressedThoughtGenerator(lm).generate("The answer is", gap=5, path_length=3, progress=False)
    check("the compressed-thought generator runs", len(paths.paths) >= 1)
    sets = ParallelTokenGenerator(lm).generate("The cat", threshold=0.1, max_steps=3, progress=False)
    check("the parallel-token generator runs", len(sets.steps) >= 1)

    from tempo_lab.prompts import bundled_prompts
    from tempo_lab.studies import read_study, run_study

    prompts = bundled_prompts()
    check(f"the bundled prompt set ships with the package ({len(prompts)} prompts)", len(prompts) == 302)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "study"
        run_study(lm, prompts, results=folder, n=4, batch_size=2, progress=False)
        table = read_study(folder).table("retroactive")
        check("a 4-prompt study writes and reads its results folder", table["prompt"].nunique() == 4)

    from tempo_lab.tpi import display, runs

    try:
        runs.read_runs()
        check("without a checkout, reading the committed TPI runs fails", False)
    except FileNotFoundError as exc:
        check(f"without a checkout, the error says where the TPI results are: {exc}", "checkout" in str(exc))
    trained, recall = runs.read_runs(checkout / "results" / "08_tpi")
    table = display.bpc_table(trained)
    read = bool(len(table) and len(recall))
    check(f"the TPI report reads the committed results ({len(trained)} runs)", read)
    print("wheel smoke test passed")


if __name__ == "__main__":
    main()
