"""Compressed thoughts (notebook 05): candidates placed after a position gap, each expanded into a path.

- :mod:`.probe`: the runs notebook 05 compares (:func:`compressed_runs`, :func:`combined_exploration`) and
  their tables (:func:`paths_table`, :func:`path_agreement`);
- :mod:`.display`: its figures, the render its replay view and live explorer share, and the study's figure
  (loaded on first use);
- :mod:`.study`: the measurement over a prompt set and its claim.
"""

from tempo_lab.phenomena.compressed.probe import (
    combined_exploration,
    compressed_runs,
    path_agreement,
    paths_table,
)
from tempo_lab.phenomena.compressed.study import CLAIMS, NAME, measure, single_rows
from tempo_lab.phenomena.phenomenon import Phenomenon, display_attributes

DISPLAY = ("explorer", "figure", "render", "thought_paths", "thought_paths_by_gap", "view")
__getattr__ = display_attributes(__name__, DISPLAY)

PHENOMENON = Phenomenon(
    NAME,
    "05",
    "Compressed",
    measure=measure,
    single=single_rows,
    explorer=f"{__name__}.display",
    claims=CLAIMS,
)

__all__ = [
    "CLAIMS",
    "NAME",
    "PHENOMENON",
    "combined_exploration",
    "compressed_runs",
    "measure",
    "path_agreement",
    "paths_table",
    "single_rows",
    *DISPLAY,
]
