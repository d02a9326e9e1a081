"""Live exploration in JupyterLab: type a prompt, move a token, and the model answers on every move.

- :mod:`.session`: :class:`~tempo_lab.live.session.LiveSession`, the prompt's prefix cache kept between
  updates. The dashboard of every phenomenon's live explorer is :mod:`tempo_lab.phenomena.dashboard`.
"""
