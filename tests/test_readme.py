"""The README's numbers come from the outputs: the findings table from the committed notebooks, the verdict
counts from notebook 06's key numbers, the speed tables from the benchmarks' JSON files.

A number written by hand drifts from the outputs it reports (the README once said "4 confirmed, 3 refined"
where notebook 06 decided 3 and 4). These tests read the committed files, so a README that states a number
no output holds fails ``make unit``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tempo_lab import notebook
from tests.notebooks.test_record import NUMBER, load, output_numbers

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
ROW = re.compile(r"^\| \[(\d\d) [^\]]*\]\(notebooks/([^)]+)\) \| (.*) \| (.*) \|$", re.M)


def section(title: str) -> str:
    """The README's text from the heading ``## title`` to the next ``## `` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def findings() -> list[tuple[str, str, str, str]]:
    """``(number, notebook file, one-prompt finding, at-scale finding)`` per row of the findings table."""
    return ROW.findall(section("The notebooks and what they found"))


def matches(stated: str, found: set[float]) -> bool:
    """Whether a number written with ``d`` decimals is one of ``found`` rounded to ``d`` decimals."""
    digits = len(stated.split(".")[1])
    value = float(stated)
    return any(abs(round(f, digits) - value) < 0.5 * 10**-digits for f in found) or any(
        abs(round(-f, digits) - value) < 0.5 * 10**-digits for f in found
    )


def test_the_findings_table_has_a_row_per_notebook():
    rows = findings()
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [file for _, file, _, _ in rows] == notebooks


@pytest.mark.parametrize("row", findings(), ids=lambda r: r[0])
def test_every_number_of_a_finding_is_in_its_notebooks_outputs(row):
    number, file, one_prompt, at_scale = row
    own = output_numbers(load(ROOT / "notebooks" / file))
    study = output_numbers(load(next((ROOT / "notebooks").glob("06_*.ipynb"))))
    missing = [x for x in NUMBER.findall(one_prompt) if not matches(x.lstrip("-"), own)]
    assert not missing, f"notebook {number}: the README's finding quotes {missing}, which its outputs lack"
    missing = [x for x in NUMBER.findall(at_scale) if not matches(x.lstrip("-"), study | own)]
    assert not missing, f"notebook {number}: the at-scale column quotes {missing}, which notebook 06 lacks"


def test_the_verdict_counts_are_notebook_06s():
    verdicts = notebook.read_key_numbers(load(next((ROOT / "notebooks").glob("06_*.ipynb"))))["verdicts"]
    counts = Counter(verdicts.values())
    stated = re.findall(r"(\d+) confirmed, (\d+) refined, (\d+) refuted", README)
    assert stated, "the README states no verdict counts"
    for confirmed, refined, refuted in stated:
        assert (int(confirmed), int(refined), int(refuted)) == (
            counts["confirmed"], counts["refined"], counts["refuted"]
        ), counts


def benchmark_numbers() -> set[float]:
    """Every number the benchmarks wrote (the latest runs and ``benchmarks/history/``), except the individual
    timing rounds (the medians are kept)."""
    found: set[float] = set()

    def walk(value, key=""):
        if key == "rounds":
            return
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found.add(float(value))

    for path in (ROOT / "benchmarks").rglob("*.json"):  # benchmarks/history/: earlier machines and paths
        walk(json.loads(path.read_text()))
    return found


def test_every_number_of_the_speed_tables_is_in_the_benchmark_outputs():
    found = benchmark_numbers()
    rows = [line for line in section("Speed").splitlines() if line.startswith("|") and "---" not in line]
    measured = r"(?<![\w.=] )(?<![\w.=])\d+\.\d+(?=\s*(?:s\b|x\b|%|MiB))"  # not a target (<= 1.10x)
    stated = [x for line in rows[1:] for x in re.findall(measured, line)]
    assert stated, "the speed tables state no measured number"
    missing = [x for x in stated if not matches(x, found | {f * 100 for f in found})]
    assert not missing, f"the speed tables state {missing}, which no benchmark output holds"
