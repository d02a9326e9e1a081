"""TEMPO sets: every token above a threshold joins the set, and every member is fed at one shared position.

Driver: :class:`~tempo_lab.generators.ParallelTokenGenerator` (a
:class:`~tempo_lab.generators.ParallelResult`).

- :mod:`.display`: the :func:`render` of a run's attention map with one set highlighted (notebook 04's
  isolated/visible replay uses it), the live :func:`explorer`, the study's :func:`figure` and
  :func:`study_view`;
- :mod:`.study`: :func:`measure` / :func:`single_rows`, set sizes per threshold over a prompt set, and
  :data:`CLAIMS`.
"""
