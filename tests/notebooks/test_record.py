"""The committed notebooks as an experiment record: structure, and numbers in the text that match the outputs.

The markdown of each notebook (its claims table and its conclusion) quotes measured numbers. These tests read
the committed, executed notebooks (nbval checks separately that re-executing them reproduces those outputs)
and require every number with two or more decimals in the measured parts of the text to appear among the
outputs. Tests marked ``bundled`` recompute the key numbers of notebooks 01-03 with the package.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from tempo_lab import notebook
from tempo_lab.plumbing import series

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob(series.NOTEBOOK_GLOB))
NUMBER = re.compile(r"(?<![\w.#])-?\d+\.\d{2,}(?![\w.])")


def load(path: Path):
    return nbformat.read(str(path), 4)


def tagged(nb, tag: str) -> list:
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def parameters(nb) -> dict:
    (cell,) = tagged(nb, "parameters")
    scope: dict = {}
    exec(cell.source, {}, scope)  # literals only
    return scope


def output_numbers(nb) -> set[float]:
    """Every decimal number printed in a text output of a compared (not nbval-ignored) cell."""
    found: set[float] = set()
    for cell in nb.cells:
        if cell.cell_type != "code" or "nbval-ignore-output" in cell.metadata.get("tags", []):
            continue
        for out in cell.outputs:
            texts = [out.get("text", "")] + [out.get("data", {}).get("text/plain", "")]
            for text in texts:
                found.update(float(x) for x in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", text))
    return found


def measured_text(nb) -> str:
    """The conclusion, plus every column but the first (the original claim) of the claims table."""
    parts = [c.source for c in tagged(nb, "conclusion")]
    for cell in tagged(nb, "claims"):
        for line in cell.source.splitlines():
            if line.startswith("|") and not set(line) <= set("|- "):
                parts.append(" ".join(line.strip().strip("|").split("|")[1:]))
    return "\n".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = load(path)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {path.stem[:2]} ")
    assert len(tagged(nb, "parameters")) == 1
    params = parameters(nb)
    assert {"model_name", "prompt", "seed", "fig_dir"} <= set(params) and params["model_name"] is None
    (claims,) = tagged(nb, "claims")
    assert claims.cell_type == "markdown"
    verdicts = re.findall(r"\*\*(confirmed|refuted|refined)", claims.source)
    assert verdicts, "every claims table marks each claim confirmed, refuted or refined"
    (conclusion,) = tagged(nb, "conclusion")
    assert conclusion.cell_type == "markdown" and "TBD" not in conclusion.source
    assert len(tagged(nb, "key-numbers")) == 1
    interactive = [c for c in nb.cells if c.cell_type == "code" and "views.show(" in c.source]
    assert interactive and all("nbval-ignore-output" in c.metadata.get("tags", []) for c in interactive)
    # the interactive cells come after the conclusion
    order = [id(c) for c in nb.cells]
    assert min(order.index(id(c)) for c in interactive) > order.index(id(conclusion))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_executed_cleanly(path):
    nb = load(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), (
        "commit the notebooks executed (tempo-lab run --in-place)"
    )
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not [o for c in code for o in c.outputs if o.get("name") == "stderr"], (
        "stderr output in a notebook"
    )
    assert "papermill" not in nb.metadata and not any("papermill" in c.metadata for c in nb.cells)
    assert not tagged(nb, "injected-parameters"), "committed notebooks keep their default parameters"
    # every figure shown is an image, and every figure saved is committed
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    for name in re.findall(r'plots\.save\(fig, fig_dir, "([^"]+)"\)', "".join(c.source for c in code)):
        assert (ROOT / "figures" / f"{name}.png").is_file(), name
    assert notebook.read_key_numbers(nb), "the key-numbers cell printed nothing parseable"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_numbers_in_the_text_come_from_the_outputs(path):
    nb = load(path)
    shown = output_numbers(nb)
    missing = []
    for text in NUMBER.findall(measured_text(nb)):
        decimals = len(text.split(".")[1])
        value = float(text)
        if not any(round(x, decimals) == round(value, decimals) for x in shown):
            missing.append(text)
    assert not missing, f"numbers in the markdown that no output shows: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_claims_table_quotes_each_decided_claim_as_decided(path):
    """A row of the claims markdown that names a registered claim by its key (``| LC2. ...``) states the
    verdict and the measurement of the decided table the notebook records, not an earlier run's (a claim with
    post-hoc rules alone: its first post-hoc verdict, marked post hoc)."""
    nb = load(path)
    decided = {row["key"]: row for row in notebook.read_key_numbers(nb).get("decided", [])}
    stale = []
    for cell in tagged(nb, "claims"):
        for line in cell.source.splitlines():
            columns = [c.strip() for c in line.strip().strip("|").split("|")]
            key = columns[0].split(". ")[0] if line.startswith("|") and len(columns) == 3 else None
            if key not in decided:
                continue
            verdict = re.match(r"\*\*(\w+)\*\*", columns[2])
            want = decided[key]["verdict"]
            if want == "post hoc only":  # no registered rule: the row states its post-hoc verdict, so marked
                want = decided[key]["post hoc"].split(" ", 1)[0] if "post hoc" in columns[2] else None
            if columns[1] != decided[key]["at scale"] or not verdict or verdict[1] != want:
                stale.append(key)
    assert not stale, f"claims-table rows that disagree with the decided claims the notebook records: {stale}"


# --- the key numbers, recomputed with the package on the bundled model ---


@pytest.mark.bundled
def test_notebook_01_key_numbers_recomputed(bundled):
    from tempo_lab.phenomena.gap_dropout import gap_probe
    from tempo_lab.phenomena.gap_dropout.display import mass_table

    nb = load(NOTEBOOKS[0])
    p, committed = parameters(nb), notebook.read_key_numbers(nb)
    m = mass_table(gap_probe(bundled, p["prompt"], p["token"], p["gaps"]))
    after = [g for g in m.index if g > 0]
    assert after and (m.loc[after, "default_no_cache"] == 0).all()  # the dropout: exactly zero
    assert (m.loc[after, "additive_4d"] > 0.5).all()  # the explicit mask keeps the prompt visible
    assert committed["max_prompt_mass_after_gap_default_no_cache"] == 0.0
    for gap, value in committed["prompt_mass_additive_4d"].items():
        assert m.loc[int(gap), "additive_4d"] == pytest.approx(value, abs=1e-4)
    assert committed["prompt_mass_gap0"] == pytest.approx(float(m.loc[0].mean()), abs=1e-4)


@pytest.mark.bundled
def test_notebook_02_key_numbers_recomputed(bundled):
    from tempo_lab import positions
    from tempo_lab.phenomena.fractional import neighbour_divergence
    from tempo_lab.generators import RetroactivePositionGenerator

    nb = load(NOTEBOOKS[1])
    p, committed = parameters(nb), notebook.read_key_numbers(nb)
    natural = committed["natural_position"]  # start and stop are offsets from it
    grid = positions.grid(natural + p["start"], natural + p["stop"], p["step"])
    sweep = RetroactivePositionGenerator(bundled).sweep(p["prompt"], grid)
    assert sweep.natural == natural and committed["positions"] == [grid[0], grid[-1], len(sweep.positions)]
    div = neighbour_divergence(sweep).set_index("position")
    nat = sweep.natural
    assert committed["tv_half_step_back"] == pytest.approx(div.loc[nat - 0.5, "tv_natural"], abs=1e-4)
    assert committed["tv_half_step_forward"] == pytest.approx(div.loc[nat + 0.5, "tv_natural"], abs=1e-4)
    assert committed["max_abs_diff_half_step_back"] == pytest.approx(
        div.loc[nat - 0.5, "max_abs_diff"], abs=1e-4
    )


@pytest.mark.bundled
def test_notebook_03_key_numbers_recomputed(bundled):
    from tempo_lab.generators import RetroactivePositionGenerator

    nb = load(NOTEBOOKS[2])
    p, committed = parameters(nb), notebook.read_key_numbers(nb)
    res = RetroactivePositionGenerator(bundled).explore(p["prompt"], gaps=p["gaps"], token=p["token"])
    for gap, row in zip(res.gaps, res.top, strict=True):
        text, prob = row[0]
        assert committed["top1_by_gap"][f"{gap:g}"] == f"{text!r} {prob:.4f}"
    assert json.dumps(committed["tv_by_gap"])  # present and serialisable
    for gap, tv in zip(res.gaps, res.tv.tolist(), strict=True):
        assert committed["tv_by_gap"][f"{gap:g}"] == pytest.approx(tv, abs=1e-4)
