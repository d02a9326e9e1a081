"""tempo_lab.plots: PNGs are byte-for-byte reproducible, with a fixed size and no "Software" metadata."""

from __future__ import annotations

import zlib

import pytest

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
    # fixed dpi: 6.5 x 4.0 inches at plots.DPI
    ihdr = data[16:24]
    assert (int.from_bytes(ihdr[:4], "big"), int.from_bytes(ihdr[4:], "big")) == (
        6.5 * plots.DPI,
        4.0 * plots.DPI,
    )
    assert zlib.crc32(data) == zlib.crc32(b.read_bytes())
