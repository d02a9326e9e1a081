"""Sets hidden from later tokens (notebook 07): TEMPO's second reading of isolation, ``later="first"`` or
``"none"``, against ``"all"`` on the same sets.

- :mod:`.probe`: :func:`hidden_runs` (:class:`HiddenRun` per ``later`` mode), :func:`hidden_table`;
- :mod:`.display`: :func:`hidden_maps` (loaded on first use).
"""

from tempo_lab.phenomena.hidden_sets.probe import NAME, TITLE, HiddenRun, hidden_runs, hidden_table
from tempo_lab.phenomena.phenomenon import Phenomenon, display_attributes

DISPLAY = ("hidden_maps",)
__getattr__ = display_attributes(__name__, DISPLAY)

PHENOMENON = Phenomenon(NAME, "07", TITLE)
__all__ = [
    "NAME",
    "PHENOMENON",
    "TITLE",
    "HiddenRun",
    "hidden_runs",
    "hidden_table",
    *DISPLAY,
]
