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


def test_the_claims_page_lists_every_registered_claim_with_its_words():
    from tempo_lab.phenomena import ALL_CLAIMS

    page = (ROOT / "docs" / "claims.md").read_text()
    for claim in ALL_CLAIMS:
        row = next((line for line in page.splitlines() if line.startswith(f"| `{claim.key}` |")), None)
        assert row is not None, f"docs/claims.md lacks {claim.key}"
        assert claim.text.replace("|", "\\|") in row and claim.source.replace("|", "\\|") in row, claim.key


def test_no_file_refers_to_design_notes_outside_the_repository():
    names = ("CLAIMS" + ".md", "DESIGN" + ".md")
    files = [p for pattern in ("*.md", "*.py", "*.ipynb", "*.yml") for p in ROOT.rglob(pattern)
             if not {".venv", "build", ".git"} & set(p.relative_to(ROOT).parts)]  # fmt: skip
    bad = [str(p.relative_to(ROOT)) for p in files if any(n in p.read_text(errors="replace") for n in names)]
    assert not bad


def built_site(tmp_path: Path) -> Path:
    """The site `make docs` built (build/site) if newer than every source of it, else a fresh build."""
    import os
    import subprocess
    import sys

    site = ROOT / "build" / "site"
    sources = [ROOT / "mkdocs.yml", *ROOT.glob("docs/**/*.md"), *ROOT.glob("docs/hooks/*.py"),
               *ROOT.glob("tempo_lab/**/*.py"), *ROOT.glob("notebooks/*.ipynb")]  # fmt: skip
    if (site / "index.html").exists() and (site / "index.html").stat().st_mtime > max(
        p.stat().st_mtime for p in sources
    ):
        return site
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return tmp_path


def test_the_site_renders_every_notebook_and_shows_no_raw_sphinx_role(tmp_path):
    """The docstrings' roles become links or code on the pages (docs/hooks/roles.py): none reaches the
    HTML; every committed notebook is a rendered page (mkdocs-jupyter, outputs as committed), without the
    key numbers' cell (kept in the notebook for the tests) and without a widget's repr line."""
    site = built_site(tmp_path)
    raw = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):(?:`|&#96;|<code>)")
    pages = list(site.rglob("*.html"))
    bad = [str(p.relative_to(site)) for p in pages if raw.search(p.read_text())]
    assert pages and not bad
    foundations = (site / "reference" / "foundations" / "index.html").read_text()
    assert 'class="autorefs autorefs-internal"' in foundations  # the roles became links
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        page = site / "notebooks" / notebook.stem / "index.html"
        assert page.exists() and "<img" in page.read_text(), notebook.name
        html = page.read_text()
        assert "print_key_numbers" not in html, f"{notebook.name}: the key numbers' cell reached the page"
        assert "Panel at 0x" not in html, f"{notebook.name}: a widget's repr line reached the page"
    for page in (ROOT / "docs" / "phenomena").glob("*.md"):  # docs/hooks/claims.py fills the claims tables
        if "<!-- claims:" in page.read_text():
            html = (site / "phenomena" / page.stem / "index.html").read_text()
            assert "<!-- claims:" not in html and "<table>" in html.split('id="the-claims"')[1], page.name


def test_contributing_maps_every_module_and_names_no_missing_one():
    """CONTRIBUTING's "Where things are" tree, held to the package: every module it names exists under the
    directory its line sits in, and every module of the package is named somewhere in the tree."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    tree = text.split("## Where things are", 1)[1].split("```", 2)[1]
    named, folder = set(), ""
    for line in tree.split("tempo_lab/\n", 1)[1].split("\nnotebooks/", 1)[0].splitlines():
        tokens = line[:57].split()  # the names' column; the description starts at column 57
        if not tokens:
            continue
        if len(line) - len(line.lstrip()) == 2:  # a line of the package's root or a directory's first line
            folder = tokens[0] if tokens[0].endswith("/") else ""
        named |= {folder + t for t in tokens if t.endswith(".py")}
    package = ROOT / "tempo_lab"
    missing = sorted(p for p in named if not (package / p).is_file())
    assert not missing, f"CONTRIBUTING names modules that do not exist: {missing}"
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py") if p.name != "__init__.py"}
    phenomena = {m for m in modules if m.startswith("phenomena/") and m.count("/") == 2}  # listed as slices
    unnamed = sorted(modules - named - phenomena)
    assert not unnamed, f"CONTRIBUTING's tree does not name: {unnamed}"
