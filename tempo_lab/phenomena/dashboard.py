"""The live dashboard: every phenomenon's live explorer as a tab, over one model session.

    import tempo_lab
    tempo_lab.explore(lm)                        # one tab per phenomenon
    tempo_lab.explore(lm, only="retroactive")    # one explorer (notebooks 01-05 end with theirs)

Each tab is a :class:`~tempo_lab.views.Panel` of a live view: a control that settles submits the values to a
worker thread where the latest request wins (:class:`~tempo_lab.views.Latest`), so the kernel stays free and
no stale render queues up. All tabs share one :class:`~tempo_lab.live.session.LiveSession`, the held prefix
cache of the current prompt. The explorers are the ``explorer`` of each slice's display module that the
registry marks (:data:`tempo_lab.phenomena.PHENOMENA`).

Contents: :class:`Dashboard`, :func:`explore`, :func:`explorers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

from tempo_lab.live.session import LiveSession
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena import PHENOMENA
from tempo_lab.views import Panel, View, display_panel, has_frontend


def explorers() -> dict[str, Callable[[LiveSession], View]]:
    """Every live explorer, by phenomenon name, in the order of the notebooks."""
    shown = [p.name for p in PHENOMENA if p.explorer]
    return {name: import_module(f"tempo_lab.phenomena.{name}.display").explorer for name in shown}


class Dashboard:
    """Panels over one :class:`LiveSession`; ``widget`` is what is displayed (a Tab, or one panel's box)."""

    def __init__(self, lm: LoadedModel, names: Sequence[str], values: dict[str, Any]):
        import ipywidgets as w

        found = explorers()
        unknown = [n for n in names if n not in found]
        if unknown or not names:
            bad = unknown[0] if unknown else None
            raise ValueError(f"unknown explorer {bad!r}; choose from {list(found)}")
        self.session = LiveSession(lm)
        self.panels = {n: Panel(found[n](self.session), **(values if len(names) == 1 else {})) for n in names}
        if len(names) == 1:
            self.widget = self.panels[names[0]].box
        else:
            self.widget = w.Tab(children=[p.box for p in self.panels.values()])
            for i, p in enumerate(self.panels.values()):
                self.widget.set_title(i, p.view.title)


def explore(lm: LoadedModel, only: str | None = None, **values: Any) -> Dashboard:
    """Show the live dashboard for ``lm`` (one tab per phenomenon), or the one explorer named ``only`` (a
    phenomenon's name: ``"gap_dropout"``, ``"fractional"``, ``"retroactive"``, ``"compressed"``,
    ``"tempo_sets"``) with its controls set to ``values``. Returns the :class:`Dashboard`; it is displayed,
    with its first tab's figure as the static form a saved notebook keeps, when running in a kernel."""
    dashboard = Dashboard(lm, [only] if only else list(explorers()), values)
    if has_frontend():
        display_panel(dashboard.widget, next(iter(dashboard.panels.values())))
    return dashboard
