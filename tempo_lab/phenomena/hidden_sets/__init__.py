"""Sets hidden from later tokens (notebook 07): TEMPO's second reading of isolation, ``later="first"`` or
``"none"``, against ``"all"`` on the same sets.

- :mod:`.probe`: :func:`hidden_runs` (:class:`HiddenRun` per ``later`` mode), :func:`hidden_table`;
- :mod:`.display`: :func:`hidden_maps`.
"""

from tempo_lab.phenomena.hidden_sets.probe import NAME, TITLE, HiddenRun, hidden_runs, hidden_table

__all__ = [
    "HiddenRun",
    "NAME",
    "TITLE",
    "hidden_runs",
    "hidden_table",
]
