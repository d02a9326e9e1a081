"""Live exploration in JupyterLab: type a prompt, move a token, and the model answers on every move.

- :mod:`.session`: :class:`~tempo_lab.live.session.LiveSession`, the prompt's prefix cache kept between
  updates;
- :mod:`.dashboard`: :func:`~tempo_lab.live.dashboard.explore`, one tab per phenomenon's live explorer (the
  explorers live in the phenomena's slices, :mod:`tempo_lab.phenomena`).
"""
