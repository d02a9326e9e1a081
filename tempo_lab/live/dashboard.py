"""The live dashboard: explorers as ipywidgets, updated on a worker thread where the latest request wins.

    import tempo_lab
    tempo_lab.explore(lm)                    # one tab per phenomenon
    tempo_lab.explore(lm, only="position")   # one explorer (notebooks 01-05 end with theirs)

Each control change submits the controls' values to a :class:`Latest` runner: one worker thread runs the
explorer's update while the kernel stays free to take more events; requests that arrive meanwhile replace
each other, so only the newest runs next and no stale render queues up. A long update (a TEMPO run) shows a
progress bar and is abandoned at its next step when a newer request is waiting. The view shows a sentence
and a figure; the numbers behind them sit, as JSON, in a hidden element of class ``tempo-live-state``
(tests read that, never the sentence).

Contents: :func:`explore` → :class:`Dashboard` of :class:`Panel`; :class:`Latest`, :class:`Superseded`.
"""

from __future__ import annotations

import html
import io
import json
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from tempo_lab import plots
from tempo_lab.live.explorers import EXPLORERS, Explorer, LiveView
from tempo_lab.live.session import LiveSession
from tempo_lab.models import LoadedModel
from tempo_lab.widgets import control_widget, has_frontend

STATE_CLASS = "tempo-live-state"


class Superseded(Exception):
    """Raised inside an update to abandon it: a newer request is waiting."""


class Latest:
    """Run ``work(request, generation)`` on one worker thread, newest request first; ``deliver(request,
    result)`` what finished, unless a newer request is already waiting (then that one runs instead).

    ``stale(generation)`` tells ``work`` whether a newer request has arrived (raise :class:`Superseded` to
    stop early). ``wait(timeout)`` blocks until the worker is idle (for tests and scripts).
    """

    def __init__(self, work: Callable[[Any, int], Any], deliver: Callable[[Any, Any], None]):
        self.work, self.deliver = work, deliver
        self.generation = 0
        self.ran: list[Any] = []  # every request the worker started, in order
        self._pending: Any = None
        self._busy = False
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, request: Any) -> None:
        with self._lock:
            self._pending = request
            self.generation += 1
            start, self._busy = not self._busy, True
            self._idle.clear()
        if start:
            threading.Thread(target=self._loop, name="tempo-lab-live", daemon=True).start()

    def stale(self, generation: int) -> bool:
        return generation != self.generation

    def wait(self, timeout: float | None = None) -> bool:
        return self._idle.wait(timeout)

    def _loop(self) -> None:
        while True:
            with self._lock:
                request, self._pending, generation = self._pending, None, self.generation
                if request is None:
                    self._busy = False
                    self._idle.set()
                    return
            self.ran.append(request)
            try:
                result = self.work(request, generation)
            except Superseded:
                continue
            if not self.stale(generation):
                self.deliver(request, result)


class Panel:
    """One explorer: its controls, a progress bar, the sentence, the figure and the hidden state."""

    def __init__(self, explorer: Explorer, **values: Any):
        import ipywidgets as w

        self.explorer = explorer
        controls = explorer.controls()
        for name, value in values.items():
            if name not in controls:
                raise ValueError(f"explorer {explorer.name!r} has no control {name!r}; has {list(controls)}")
            controls[name].value = value
        self.controls = {name: control_widget(name, c) for name, c in controls.items()}
        for name, c in controls.items():
            if c.kind == "slider":
                self.controls[name].layout.width = "60%"
        hidden = w.Layout(display="none")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="running", layout=hidden)
        self.text = w.HTML()
        self.image = w.Image(format="png")
        self.state = w.HTML(layout=w.Layout(display="none"))
        self.state.add_class(STATE_CLASS)
        self.box = w.VBox([*self.controls.values(), self.progress, self.text, self.image, self.state])
        self.box.add_class("tempo-live")
        self.renders = 0
        self.runner = Latest(self._work, self._show)
        values = self.values()
        self._show(values, explorer.render(values))  # the first view, before any event
        for widget in self.controls.values():
            widget.observe(lambda _change: self.runner.submit(self.values()), names="value")

    def values(self) -> dict[str, Any]:
        return {name: widget.value for name, widget in self.controls.items()}

    def _work(self, values: dict[str, Any], generation: int) -> LiveView:
        def progress(done: int, total: int) -> None:
            if self.runner.stale(generation):
                raise Superseded
            self.progress.max, self.progress.value = total, done
            self.progress.layout.display = None

        try:
            return self.explorer.render(values, progress)
        except Superseded:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must show in the view, not kill the worker silently
            message = f"{type(exc).__name__}: {exc}"
            detail = traceback.format_exc(limit=3)
            state = {"error": message, "trace": detail}
            return LiveView(f"⚠ internal error, please report: {message}", None, state)
        finally:
            self.progress.layout.display = "none"

    def _show(self, values: dict[str, Any], view: LiveView) -> None:
        self.text.value = f"<p>{html.escape(view.text)}</p>"
        self.image.value = _png(view) if view.figure is not None else b""
        self.image.layout.display = None if view.figure is not None else "none"
        self.state.value = html.escape(json.dumps({"values": values, **view.state}, ensure_ascii=False))
        self.renders += 1


class Dashboard:
    """Panels over one :class:`LiveSession`; ``widget`` is what is displayed (a Tab, or one panel's box)."""

    def __init__(self, lm: LoadedModel, names: Sequence[str], values: dict[str, Any]):
        import ipywidgets as w

        unknown = [n for n in names if n not in EXPLORERS]
        if unknown or not names:
            bad = unknown[0] if unknown else None
            raise ValueError(f"unknown explorer {bad!r}; choose from {list(EXPLORERS)}")
        self.session = LiveSession(lm)
        self.panels = {
            n: Panel(EXPLORERS[n](self.session), **(values if len(names) == 1 else {})) for n in names
        }
        if len(names) == 1:
            self.widget = self.panels[names[0]].box
        else:
            self.widget = w.Tab(children=[p.box for p in self.panels.values()])
            for i, p in enumerate(self.panels.values()):
                self.widget.set_title(i, p.explorer.title)


def explore(lm: LoadedModel, only: str | None = None, **values: Any) -> Dashboard:
    """Show the live dashboard for ``lm`` (one tab per phenomenon), or the one explorer named ``only``
    (``"gap"``, ``"position"``, ``"parallel"``, ``"compressed"``) with its controls set to ``values``.
    Returns the :class:`Dashboard`; it is displayed when running in a kernel."""
    dashboard = Dashboard(lm, [only] if only else list(EXPLORERS), values)
    if has_frontend():
        from IPython.display import display

        display(dashboard.widget)
    return dashboard


def _png(view: LiveView) -> bytes:
    buffer = io.BytesIO()
    view.figure.savefig(buffer, format="png", dpi=plots.DPI, metadata={"Software": None})
    return buffer.getvalue()
