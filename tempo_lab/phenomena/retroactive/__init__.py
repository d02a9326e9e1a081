"""Retroactive exploration (notebook 03): one token re-placed after the prompt at many positions.

Driver: :meth:`RetroactivePositionGenerator.explore
<tempo_lab.generators.RetroactivePositionGenerator.explore>` (a
:class:`~tempo_lab.generators.RetroactiveResult`: one prefill, one batched step).

- :mod:`.probe`: :func:`heat_table` (:class:`HeatTable`), :func:`top1_changes`, and the layers and bands
  that see a move (:func:`band_choices`);
- :mod:`.display`: :func:`heatmap`, the :func:`render` its replay :func:`view` and live :func:`explorer`
  share, the study's :func:`figure` and :func:`study_view`;
- :mod:`.study`: :func:`measure` / :func:`single_rows` and :data:`CLAIMS`, over a prompt set.
"""

from tempo_lab.phenomena.retroactive.probe import (
    NAME,
    TITLE,
    HeatTable,
    band_choices,
    heat_table,
    top1_changes,
)

__all__ = [
    "HeatTable",
    "NAME",
    "TITLE",
    "band_choices",
    "heat_table",
    "top1_changes",
]
