"""tempo_lab.plots: every figure has a title and labelled axes, and PNGs are byte-for-byte reproducible."""

from __future__ import annotations

import zlib

import pytest
from matplotlib.figure import Figure

from tempo_lab import experiments, metrics, plots, positions, tables
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.probe import gap_probe

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


def check_axes(fig: Figure, *, n_axes_with_labels: int = 1) -> None:
    """At least ``n_axes_with_labels`` axes carry a title and both axis labels; the figure draws."""
    labelled = [ax for ax in fig.axes if ax.get_title() and ax.get_xlabel() and ax.get_ylabel()]
    assert len(labelled) >= n_axes_with_labels, [
        (a.get_title(), a.get_xlabel(), a.get_ylabel()) for a in fig.axes
    ]
    fig.canvas.draw()  # must render without error


@pytest.fixture(scope="module")
def probe_frame(tiny):
    return gap_probe(tiny, PROMPT, "!", [0, 1, 5], top_k=3)


def test_save_writes_reproducible_png_without_software_metadata(tmp_path, probe_frame):
    fig = plots.prompt_mass_lines(probe_frame)
    a = plots.save(fig, tmp_path / "a", "01_x")
    b = plots.save(plots.prompt_mass_lines(probe_frame), tmp_path / "b", "01_x")
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


def test_gap_plots(probe_frame):
    fig = plots.prompt_mass_lines(probe_frame)
    check_axes(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "5"]
    assert {line.get_label() for line in ax.get_lines()} == set(probe_frame["strategy"])
    heat = plots.layer_mass_heatmaps(probe_frame)
    assert [a.get_title() for a in heat.axes[:4]] == list(dict.fromkeys(probe_frame["strategy"]))
    heat.canvas.draw()


def test_position_sweep_plot(tiny):
    t = tiny.encode(PROMPT).shape[1]
    sweep = RetroactivePositionGenerator(tiny).sweep(PROMPT, positions.grid(t - 1, t + 1, 0.5))
    fig = plots.position_sweep_plot(
        metrics.neighbour_divergence(sweep), tables.top_token_curves(sweep, 3), sweep.natural, sweep.token
    )
    check_axes(fig, n_axes_with_labels=2)
    assert len(fig.axes[1].get_lines()) == 3 + 1  # three token curves and the natural-position marker


def test_retro_heatmap_and_token_curve(tiny):
    res = RetroactivePositionGenerator(tiny).explore(PROMPT, gaps=list(range(0, 30, 3)), token="!")
    table = tables.retro_heat_table(tiny, res, 3)
    fig = plots.retro_heatmap(table)
    check_axes(fig)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(table.index)
    fig2 = plots.figure()
    ax = fig2.add_subplot()
    plots.token_curve(table, table.index[0], 9, ax)
    assert list(ax.get_lines()[0].get_xdata()) == [0, 3, 6, 9]


def test_parallel_and_compressed_plots(tiny):
    pairs = experiments.parallel_pairs(tiny, "ab", [0.02], max_steps=5, max_set_size=3)
    pair = pairs[0.02]
    spans = metrics.set_spans(pair.isolated)
    fig = plots.mode_maps(
        pair.isolated.attention_map(), pair.replay.attention_map(), pair.slot_tokens, spans, "t"
    )
    check_axes(fig, n_axes_with_labels=3)
    n_outlined = sum(1 for _, a, b in spans if b - a > 1)
    assert len(fig.axes[0].patches) == n_outlined
    bars = plots.mode_mass_bars(tables.mode_mass_table(pair))
    check_axes(bars)

    runs = experiments.compressed_runs(tiny, PROMPT, [0, 4], threshold=0.01, max_candidates=3, path_length=4)
    fig = plots.thought_paths_by_gap(runs, PROMPT)
    check_axes(fig, n_axes_with_labels=2)
    n_boxes = sum(len(p.tokens) for p in runs[0].paths)
    assert len(fig.axes[0].patches) == n_boxes
