"""TEMPO sets: every token above a threshold joins the set, and every member is fed at one shared position.

Driver: :class:`~tempo_lab.generators.ParallelTokenGenerator` (a
:class:`~tempo_lab.generators.ParallelResult`).

- :mod:`.display`: the :func:`render` of a run's attention map with one set highlighted (notebook 04's
  isolated/visible replay uses it), the live :func:`explorer`, the study's :func:`figure` and
  :func:`study_view` (loaded on first use);
- :mod:`.study`: :func:`measure` / :func:`single_rows`, set sizes per threshold over a prompt set, and
  :data:`CLAIMS`.
"""

from tempo_lab.phenomena.phenomenon import Phenomenon, display_attributes
from tempo_lab.phenomena.tempo_sets.study import CLAIMS, NAME, TITLE, measure, single_rows

DISPLAY = ("LIVE_STEPS", "explorer", "figure", "render", "study_view")
__getattr__ = display_attributes(__name__, DISPLAY)

PHENOMENON = Phenomenon(
    NAME, "04", TITLE, measure=measure, single=single_rows, explorer=f"{__name__}.display", claims=CLAIMS
)
__all__ = [
    "CLAIMS",
    "NAME",
    "PHENOMENON",
    "TITLE",
    "measure",
    "single_rows",
    *DISPLAY,
]
