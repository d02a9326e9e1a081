"""Notebook 10's figures and live view: titled, labelled, drawn from the table they are given; the live view's
numbers are the char-LM's own bits per byte."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from tempo_lab import plots
from tempo_lab.extension import RopeScaling, display
from tempo_lab.extension.angles import band_angles
from tempo_lab.tpi import display as tpi_display
from tempo_lab.tpi import model, train
from tempo_lab.tpi.convert import as_transformers


def table() -> pd.DataFrame:
    """A lengths table of the shape :func:`tempo_lab.tpi.lengths.read_lengths` returns, two seeds."""
    rows = []
    for seed in (0, 1):
        for factor in (1.0, 2.0):
            for method in ("plain", "pi"):
                rows.append({"architecture": "rope", "seed": seed, "trained": 16, "method": method,
                             "factor": factor, "length": int(16 * factor), "layer": -1,
                             "bpc": 2 + factor * (method == "plain") + seed / 10})  # fmt: skip
            rows.append({"architecture": "tpi", "seed": seed, "trained": 16, "method": "tpi",
                         "factor": factor, "length": int(16 * factor), "layer": -1,
                         "bpc": 2.5 + seed / 10})  # fmt: skip
        for layer in (0, 1):
            rows.append({"architecture": "rope", "seed": seed, "trained": 16, "method": "pi", "factor": 2.0,
                         "length": 32, "layer": layer, "bpc": 3 + layer})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_figures_are_titled_labelled_and_drawn_from_the_table():
    fig = tpi_display.factor_figure(table())
    ax, own = fig.axes
    assert plots.figure_problems(fig) == []
    assert set(own.get_legend_handles_labels()[1]) == {"plain", "pi", "tpi", "its own 1x + 5%"}
    curves = {c.get_label(): c.lines[0] for c in ax.containers}
    assert list(curves["plain"].get_ydata()) == pytest.approx([3.05, 4.05])  # the mean over the two seeds
    assert list(curves["pi"].get_ydata()) == pytest.approx([2.05, 2.05])
    ratios = {line.get_label(): list(line.get_ydata()) for line in own.lines}
    assert ratios["plain"] == pytest.approx([1.0, 4.05 / 3.05])  # each over its own 1x, as the verdicts read
    fig = tpi_display.layer_figure(table())
    points = [float(c.lines[0].get_ydata()[i]) for c in fig.axes[0].containers for i in range(2)]
    assert points == pytest.approx([3.0, 4.0]) and plots.figure_problems(fig) == []
    with pytest.raises(ValueError, match="no per-layer sweep"):
        tpi_display.layer_figure(table().query("layer == -1"))


def test_the_band_figure_has_a_row_per_method():
    lm = as_transformers(model.build("rope", dim=16, layers=1), context=16)
    angles = band_angles(lm, 64, {"plain": None, "pi": RopeScaling.linear(4)})
    fig = display.angles_figure(angles, "bands")
    top = fig.axes[0]
    assert [t.get_text() for t in top.get_yticklabels()] == ["plain", "pi"] and fig.get_suptitle() == "bands"
    assert plots.figure_problems(fig) == []


def test_the_live_view_reports_the_char_lms_own_bits_per_byte():
    torch.manual_seed(0)
    m = model.build("rope", dim=16, layers=1, dropout=0.0).eval()
    data = torch.randint(0, 256, (300,), generator=torch.Generator().manual_seed(1))
    view = tpi_display.length_view(m, data, trained=16)
    rendered = view.render(factor=2, method="pi", window=8)
    assert rendered.state["plain"] == pytest.approx(train.bits_per_byte(m, data, 32), abs=1e-5)
    # PI at 2x is the char-LM at positions halved
    inputs, targets = data[:288].view(-1, 32), data[1:289].view(-1, 32)
    with torch.no_grad():
        logits = m(inputs, positions=torch.arange(32) / 2)
    bits = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten()) / torch.log(
        torch.tensor(2.0)
    )
    assert rendered.state["bpc"] == pytest.approx(float(bits), abs=1e-5)
    assert "pi at 2x (32 bytes)" in rendered.text
    with pytest.raises(ValueError, match="more than 256 bytes of text, not 100"):
        tpi_display.length_view(m, data[:100], trained=16)
