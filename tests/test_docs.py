"""The documentation's code: every ``python`` block of ``docs/guide.md`` runs as written, in order, in one
namespace, on the tiny random Llama the page loads (the interop page's blocks are the README's, which
``tests/interop/test_readme.py`` runs on the bundled model)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import matplotlib

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(page: Path) -> list[str]:
    """The page's ``python`` fenced blocks, dedented (they may sit in a list item)."""
    found = re.findall(r"^( *)```python\n(.*?)^\1```", page.read_text(), flags=re.S | re.M)
    return [textwrap.dedent(body) for _, body in found]


def test_every_code_block_of_the_guide_runs(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(ROOT / "docs" / "guide.md")
    assert len(blocks) == 4
    space: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"<docs/guide.md block {i}>", "exec"), space)
    assert space["result"].frame.effect.abs().max() > 0  # the patching sweep found the move somewhere
    assert set(space["store"]) == {"resid", "model.layers.1.mlp"}
    assert len(space["study"].table("retroactive")) > 0


def test_the_interop_page_shows_the_readme_examples():
    readme = (ROOT / "README.md").read_text()
    assert all(block in readme for block in python_blocks(ROOT / "docs" / "interop.md"))
