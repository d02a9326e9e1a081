"""Compressed thoughts (notebook 05): candidates placed after a position gap, each expanded into a path.
:mod:`.display` holds the drivers, tables, figures and the render its replay view and live explorer share;
:mod:`.study` the measurement over a prompt set and its claim."""

from tempo_lab.phenomena.base import Phenomenon
from tempo_lab.phenomena.compressed.display import (
    combined_exploration,
    compressed_runs,
    explorer,
    path_agreement,
    paths_table,
    render,
    thought_paths,
    thought_paths_by_gap,
    view,
)
from tempo_lab.phenomena.compressed.study import CLAIMS, figure, measure, single_rows

PHENOMENON = Phenomenon("compressed", "05", "Compressed", measure=measure, single=single_rows,
                        explorer=explorer, claims=CLAIMS)  # fmt: skip

__all__ = [
    "PHENOMENON",
    "combined_exploration",
    "compressed_runs",
    "explorer",
    "figure",
    "measure",
    "path_agreement",
    "paths_table",
    "render",
    "single_rows",
    "thought_paths",
    "thought_paths_by_gap",
    "view",
]
