"""Fractional positions (notebook 02): the prompt's last token moved to a position between two integers.

Driver: :meth:`RetroactivePositionGenerator.sweep <tempo_lab.generators.RetroactivePositionGenerator.sweep>`
(a :class:`~tempo_lab.generators.PositionSweep`).

- :mod:`.probe`: :func:`neighbour_divergence`, :func:`top_token_curves`, :func:`compare_positions`;
- :mod:`.display`: :func:`position_sweep_plot` (notebook 02's figure), the :func:`render` its replay
  :func:`view` and live :func:`explorer` share, the study's :func:`figure`;
- :mod:`.study`: :func:`measure` / :func:`single_rows` and :data:`CLAIMS`: the half step over a prompt set.
"""

from tempo_lab.phenomena.fractional.probe import (
    NAME,
    TITLE,
    compare_positions,
    neighbour_divergence,
    top_token_curves,
)

__all__ = [
    "NAME",
    "TITLE",
    "compare_positions",
    "neighbour_divergence",
    "top_token_curves",
]
