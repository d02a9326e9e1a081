"""Retroactive exploration (notebook 03): one token re-placed after the prompt at many positions.

Driver: :meth:`RetroactivePositionGenerator.explore
<tempo_lab.generators.RetroactivePositionGenerator.explore>` (a
:class:`~tempo_lab.generators.RetroactiveResult`: one prefill, one batched step).

- :mod:`.probe`: :func:`heat_table` (:class:`HeatTable`), :func:`top1_changes`, and the layers and bands
  that see a move (:func:`band_choices`);
- :mod:`.display`: :func:`heatmap`, the :func:`render` its replay :func:`view` and live :func:`explorer`
  share, the study's :func:`figure` and :func:`study_view` (loaded on first use);
- :mod:`.study`: :func:`measure` / :func:`single_rows` and :data:`CLAIMS`, over a prompt set.
"""

from tempo_lab.phenomena.phenomenon import Phenomenon, display_attributes
from tempo_lab.phenomena.retroactive.probe import (
    NAME,
    TITLE,
    HeatTable,
    band_choices,
    heat_table,
    top1_changes,
)
from tempo_lab.phenomena.retroactive.study import CLAIMS, measure, single_rows

DISPLAY = ("explorer", "figure", "heatmap", "render", "study_view", "view")
__getattr__ = display_attributes(__name__, DISPLAY)

PHENOMENON = Phenomenon(
    NAME, "03", TITLE, measure=measure, single=single_rows, explorer=f"{__name__}.display", claims=CLAIMS
)

__all__ = [
    "CLAIMS",
    "NAME",
    "PHENOMENON",
    "TITLE",
    "HeatTable",
    "band_choices",
    "heat_table",
    "measure",
    "single_rows",
    "top1_changes",
    *DISPLAY,
]
