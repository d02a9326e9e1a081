"""tempo_lab.plots: PNGs are byte-for-byte reproducible, with a fixed size and no "Software" metadata; a
figure without a title, with an unlabelled axis or with text under 8 pt is refused; every committed figure
was written by :func:`tempo_lab.plots.save` at 150 dpi, from a notebook that names it."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tempo_lab import plots
from tempo_lab.phenomena.gap_dropout import gap_probe
from tempo_lab.phenomena.gap_dropout.display import prompt_mass_lines

PROMPT = "The cat sat"


def png_text_keys(data: bytes) -> set[str]:
    """Keys of the tEXt/zTXt/iTXt metadata chunks of a PNG file."""
    keys, i = set(), 8
    while i < len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        body = data[i + 8 : i + 8 + length]
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            keys.add(body.split(b"\0", 1)[0].decode("latin-1"))
        i += 12 + length
    return keys


@pytest.fixture(scope="module")
def probe_frame(tiny):
    return gap_probe(tiny, PROMPT, "!", [0, 1, 5], top_k=3)


def test_save_writes_reproducible_png_without_software_metadata(tmp_path, probe_frame):
    fig = prompt_mass_lines(probe_frame)
    a = plots.save(fig, tmp_path / "a", "01_x")
    b = plots.save(prompt_mass_lines(probe_frame), tmp_path / "b", "01_x")
    assert a.name == "01_x.png" and a.parent == tmp_path / "a"
    data = a.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data == b.read_bytes()  # same numbers -> same bytes
    assert "Software" not in png_text_keys(data)
    # fixed dpi: 6.5 x 4.0 inches at plots.SAVE_DPI
    ihdr = data[16:24]
    assert (int.from_bytes(ihdr[:4], "big"), int.from_bytes(ihdr[4:], "big")) == (
        6.5 * plots.SAVE_DPI,
        4.0 * plots.SAVE_DPI,
    )
    assert zlib.crc32(data) == zlib.crc32(b.read_bytes())


ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = {"live_explorer"}  # JupyterLab in Chromium (the README's picture), not a plotted figure


def _figure(title: str = "t", xlabel: str = "x", ylabel: str = "y", size: float = 10):
    fig, ax = plots.figure_with_axes(4, 3)
    ax.plot([0, 1], [0, 1], label="a line")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=size)
    return fig


def test_a_figure_not_ready_to_print_is_refused_naming_what_it_lacks(tmp_path):
    assert plots.figure_problems(_figure()) == []
    assert plots.figure_problems(_figure(title="")) == ["panel 0 has no title"]
    assert plots.figure_problems(_figure(ylabel="")) == ["panel 0 ('t') has no y label"]
    assert plots.figure_problems(_figure(size=6)) == ["panel 0 ('t') has text of 6 pt (at least 8 pt)"]
    with pytest.raises(ValueError, match="'unlabelled' is not ready to print: panel 0 .* has no x label"):
        plots.save(_figure(xlabel=""), tmp_path, "unlabelled")
    assert not (tmp_path / "unlabelled.png").exists()


def test_a_shared_axis_label_a_figure_title_and_a_colour_bar_count_as_they_should():
    fig = plots.figure(6, 3)
    left, right = fig.subplots(1, 2, sharey=True)
    left.set(xlabel="x", ylabel="shared y")
    image = right.imshow([[0, 1], [1, 0]])
    right.set(xlabel="x")
    fig.colorbar(image, ax=right)  # a colour bar is no panel: it needs no title or labels of its own
    fig.suptitle("one title for both panels")
    assert plots.figure_problems(fig) == []
    right.set(xlabel="")
    assert plots.figure_problems(fig) == ["panel 1 has no x label"]


def test_every_committed_figure_was_saved_at_150_dpi_by_a_notebook_that_names_it():
    """The committed PNGs passed :func:`plots.save` (its checks, its dpi, no "Software" key): each is named by
    its notebook's ``plots.save`` call and carries 150 dpi."""
    sources = {nb.stem: "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
               for nb in (ROOT / "notebooks").glob("[0-9]*.ipynb")}  # fmt: skip
    figures = sorted((ROOT / "figures").glob("*.png"))
    assert figures
    for png in figures:
        if png.stem in SCREENSHOTS:
            continue
        stem = next((s for s in sources if png.stem.startswith(s)), None)
        assert stem is not None, f"{png.name}: no notebook's name starts it"
        saved = re.search(rf'plots\.save\([^)]*"{re.escape(png.stem)}"\)', sources[stem])
        assert saved, f"{png.name}: notebook {stem} has no plots.save call that writes it"
        with Image.open(png) as image:
            dpi = image.info.get("dpi", (0, 0))
        assert round(dpi[0]) >= 150, f"{png.name} is saved at {dpi[0]:.0f} dpi (at least 150)"
        assert "Software" not in png_text_keys(png.read_bytes()), png.name
