"""Views: the one framework for replay sliders and live explorers (see :mod:`.base`), shown by :mod:`.panel`.

    from tempo_lab.views import show
    show(view)          # a phenomenon's replay view, or its live explorer

A phenomenon's views live in its slice (:mod:`tempo_lab.phenomena`); this package only knows how any view
is made and shown.
"""

from tempo_lab.views.base import STATE_CLASS, Control, Rendered, View, live_view, view_state
from tempo_lab.views.panel import Latest, Panel, Superseded, display_panel, has_frontend, png, show

__all__ = [
    "STATE_CLASS",
    "Control",
    "Latest",
    "Panel",
    "Rendered",
    "Superseded",
    "View",
    "display_panel",
    "has_frontend",
    "live_view",
    "png",
    "show",
    "view_state",
]
