"""Compressed thoughts (notebook 05): candidates placed after a position gap, each expanded into a path.

- :mod:`.probe`: the runs notebook 05 compares (:func:`compressed_runs`, :func:`combined_exploration`) and
  their tables (:func:`paths_table`, :func:`path_agreement`);
- :mod:`.display`: its figures, the render its replay view and live explorer share, and the study's figure;
- :mod:`.study`: the measurement over a prompt set and its claim.
"""

from tempo_lab.phenomena.compressed.probe import (
    combined_exploration,
    compressed_runs,
    path_agreement,
    paths_table,
)

__all__ = [
    "combined_exploration",
    "compressed_runs",
    "path_agreement",
    "paths_table",
]
