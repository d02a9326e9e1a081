"""Live exploration in JupyterLab: type a prompt, move a token, and the model answers on every move.

- :mod:`.session`: :class:`LiveSession`, the prompt's prefix cache kept between updates;
- :mod:`.explorers`: one model-backed explorer per phenomenon (gap dropout, positions, TEMPO, compressed);
- :mod:`.dashboard`: the ipywidgets front, :func:`explore`, a worker thread where the latest request wins.
"""

from tempo_lab.live.dashboard import Dashboard, Latest, Panel, Superseded, explore
from tempo_lab.live.explorers import (
    EXPLORERS,
    CompressedExplorer,
    Explorer,
    GapExplorer,
    LiveView,
    ParallelExplorer,
    PositionExplorer,
)
from tempo_lab.live.session import LiveSession

__all__ = [
    "EXPLORERS",
    "CompressedExplorer",
    "Dashboard",
    "Explorer",
    "GapExplorer",
    "Latest",
    "LiveSession",
    "LiveView",
    "Panel",
    "ParallelExplorer",
    "PositionExplorer",
    "Superseded",
    "explore",
]
