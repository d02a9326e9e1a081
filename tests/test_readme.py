"""The README's and the documentation's numbers come from the outputs: the findings tables (README.md,
docs/notebooks.md, each phenomenon's page) from the committed notebooks, the verdict counts from notebook 06's
key numbers, the speed tables (README.md, docs/speed.md) from the benchmarks' JSON files; and the README's
quick start runs as written.

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
FINDINGS = (ROOT / "docs" / "notebooks.md").read_text()
SPEED = (ROOT / "docs" / "speed.md").read_text()
# a findings row: | [NN title](notebooks/file) | finding | (at scale |)
ROW = re.compile(r"^\| \[(\d\d) [^\]]*\]\((?:\.\./)?notebooks/([^)]+)\) \| (.*?) \|(?: (.*) \|)?$", re.M)


def section(title: str, text: str = README) -> str:
    """The text from the heading ``## title`` to the next ``## `` heading."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def findings(text: str) -> list[tuple[str, str, str, str]]:
    """``(number, notebook file, finding, at-scale finding or "")`` per row of a findings table."""
    return ROW.findall(text)


def all_findings() -> list[tuple[str, str, str, str, str]]:
    """Every findings row of the README, docs/notebooks.md and the phenomenon pages, with where it is."""
    rows = [("README.md", *r) for r in findings(section("The notebooks and what they found"))]
    rows += [("docs/notebooks.md", *r) for r in findings(FINDINGS)]
    for page in sorted((ROOT / "docs" / "phenomena").glob("*.md")):
        text = page.read_text()
        number, file = re.search(r"Notebook \[(\d\d)\]\(\.\./notebooks/([^)]+)\)", text).groups()
        rows.append(
            (
                f"docs/phenomena/{page.name}",
                number,
                file,
                section("The finding", text),
                section("At scale", text) if "\n## At scale\n" in text else "",
            )
        )
    return rows


def matches(stated: str, found: set[float]) -> bool:
    """Whether a number written with ``d`` decimals is one of ``found`` rounded to ``d`` decimals."""
    digits = len(stated.split(".")[1])
    value = float(stated)
    return any(abs(round(f, digits) - value) < 0.5 * 10**-digits for f in found) or any(
        abs(round(-f, digits) - value) < 0.5 * 10**-digits for f in found
    )


@pytest.mark.parametrize(
    "text", [section("The notebooks and what they found"), FINDINGS], ids=["README", "docs"]
)
def test_the_findings_tables_have_a_row_per_notebook(text):
    rows = findings(text)
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [file for _, file, _, _ in rows] == notebooks


@pytest.mark.parametrize("row", all_findings(), ids=lambda r: f"{r[0]}:{r[1]}")
def test_every_number_of_a_finding_is_in_its_notebooks_outputs(row):
    where, number, file, one_prompt, at_scale = row
    own = output_numbers(load(ROOT / "notebooks" / file))
    study = output_numbers(load(next((ROOT / "notebooks").glob("06_*.ipynb"))))
    missing = [x for x in NUMBER.findall(one_prompt) if not matches(x.lstrip("-"), own)]
    assert not missing, f"{where}, notebook {number}: the finding quotes {missing}, which its outputs lack"
    missing = [x for x in NUMBER.findall(at_scale) if not matches(x.lstrip("-"), study | own)]
    assert not missing, f"notebook {number}: the at-scale column quotes {missing}, which notebook 06 lacks"


def test_the_verdict_counts_are_notebook_06s():
    verdicts = notebook.read_key_numbers(load(next((ROOT / "notebooks").glob("06_*.ipynb"))))["verdicts"]
    counts = Counter(verdicts.values())
    stated = re.findall(r"(\d+) confirmed, (\d+) refined, (\d+) refuted", README + FINDINGS)
    assert stated, "the README states no verdict counts"
    for confirmed, refined, refuted in stated:
        assert (int(confirmed), int(refined), int(refuted)) == (
            counts["confirmed"],
            counts["refined"],
            counts["refuted"],
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


@pytest.mark.parametrize("text", [section("Speed"), SPEED], ids=["README", "docs"])
def test_every_number_of_the_speed_tables_is_in_the_benchmark_outputs(text):
    found = benchmark_numbers()
    rows = [line for line in text.splitlines() if line.startswith("|") and "---" not in line]
    measured = r"(?<![\w.=] )(?<![\w.=])\d+\.\d+(?=\s*(?:s\b|x\b|%|MiB))"  # not a target (<= 1.10x)
    stated = [x for line in rows[1:] for x in re.findall(measured, line)]
    assert stated, "the speed tables state no measured number"
    missing = [x for x in stated if not matches(x, found | {f * 100 for f in found})]
    assert not missing, f"the speed tables state {missing}, which no benchmark output holds"


def test_the_readme_fits_one_sitting():
    assert len(README.splitlines()) <= 250


@pytest.mark.bundled
def test_the_quick_start_runs_as_written(capsys):
    block = re.findall(r"```python\n(.*?)```", section("Quick start"), flags=re.S)
    assert len(block) == 1
    space: dict = {}
    exec(compile(block[0], "<README.md quick start>", "exec"), space)
    assert tuple(space["moved"].probs.shape)[0] == 2
    assert space["run"].text.startswith("The cat sat on the")
    table = space["result"].table("resid")
    assert table.shape == (space["lm"].model.config.num_hidden_layers, space["n"])
    assert float(table.max().max()) > 0.5  # the moved slot's residual carries the move in the last layers
    assert capsys.readouterr().out.count("\n") >= 3
