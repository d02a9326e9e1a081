"""Fractional positions (notebook 02): the prompt's last token moved to a position between two integers.

Driver: :meth:`RetroactivePositionGenerator.sweep <tempo_lab.generators.RetroactivePositionGenerator.sweep>`
(a :class:`~tempo_lab.generators.PositionSweep`).

- :mod:`.probe`: :func:`neighbour_divergence`, :func:`top_token_curves`, :func:`compare_positions`;
- :mod:`.display`: :func:`position_sweep_plot` (notebook 02's figure), the :func:`render` its replay
  :func:`view` and live :func:`explorer` share, the study's :func:`figure` (loaded on first use);
- :mod:`.study`: :func:`measure` / :func:`single_rows` and :data:`CLAIMS`: the half step over a prompt set.
"""

from tempo_lab.phenomena.fractional.probe import (
    NAME,
    TITLE,
    compare_positions,
    neighbour_divergence,
    top_token_curves,
)
from tempo_lab.phenomena.fractional.study import CLAIMS, measure, single_rows
from tempo_lab.phenomena.phenomenon import Phenomenon, display_attributes

DISPLAY = ("explorer", "figure", "position_sweep_plot", "render", "view")
__getattr__ = display_attributes(__name__, DISPLAY)

PHENOMENON = Phenomenon(
    NAME, "02", TITLE, measure=measure, single=single_rows, explorer=f"{__name__}.display", claims=CLAIMS
)
__all__ = [
    "CLAIMS",
    "NAME",
    "PHENOMENON",
    "TITLE",
    "compare_positions",
    "measure",
    "neighbour_divergence",
    "single_rows",
    "top_token_curves",
    *DISPLAY,
]
