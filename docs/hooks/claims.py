"""A mkdocs hook for the phenomenon pages: a marker ``<!-- claims: NN prefix ... -->`` becomes the claims
table that the committed notebook NN decided, as its key numbers record it
(:func:`tempo_lab.notebook.claims_record`), limited to the claims whose keys start with one of the prefixes.

The table is read from the executed notebook at build time, so a page shows what the notebook decided and
cannot drift from it; nothing is recomputed (the site builds in seconds). A marker whose notebook records no
claims, or whose prefixes match none, fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat

from tempo_lab.notebook import read_key_numbers

MARKER = re.compile(r"<!-- claims: (?P<notebook>\d\d) (?P<prefixes>[^>]*?) -->")
ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("claim", "source", "statistic", "at scale", "verdict", "rule")


def _record(number: str) -> list[dict[str, str]]:
    """The ``decided`` list of notebook ``number``'s key numbers (``notebook.read_key_numbers``)."""
    path = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    decided = read_key_numbers(nbformat.read(path, as_version=4)).get("decided")
    if not decided:
        raise ValueError(f"{path.name} records no decided claims in its key numbers")
    return decided


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(number: str, prefixes: list[str]) -> str:
    """The Markdown table of notebook ``number``'s decided claims whose keys start with one of
    ``prefixes``."""
    rows = [r for r in _record(number) if any(r["key"].startswith(p) for p in prefixes)]
    if not rows:
        raise ValueError(f"notebook {number} decided no claim whose key starts with {prefixes}")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        verdict = f"**{r['verdict']}**" + (f"; post hoc: {r['post hoc']}" if r["post hoc"] else "")
        claim = f"{r['claim']} (`{r['key']}`)"
        cells = [claim, r["source"], r["statistic"], r["at scale"], verdict, r["rule"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return MARKER.sub(lambda m: table(m["notebook"], m["prefixes"].split()), markdown)
