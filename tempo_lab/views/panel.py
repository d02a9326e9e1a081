"""Showing a view in JupyterLab: its controls as ipywidgets, a sentence, a figure and a hidden state element.

    show(view)            # in a notebook: the controls, then the view for their values

A :class:`Panel` is the widget box of one view. A control that settles re-renders it: a replay view at once
(it only re-renders), a live view on a worker thread through :class:`Latest` (it runs the model; requests
that arrive meanwhile replace each other, and a long run reports progress and is abandoned at its next step
when a newer request waits). Its state element (class :data:`~tempo_lab.views.base.STATE_CLASS`) holds
:func:`~tempo_lab.views.base.view_state` as JSON.

What a saved notebook keeps: :func:`display_panel` shows the widget together with the first render as a PNG
and its sentence, in one output. JupyterLab draws the live widget when the kernel runs, and the static figure
when the notebook is opened without running (outputs of an untrusted notebook render only safe types, so the
widget would show as ``VBox(...)`` text). The notebook runner stores no widget state
(:mod:`tempo_lab.plumbing.execution`), so each figure is stored once.

Contents: :func:`show`, :class:`Panel`, :func:`display_panel`, :func:`control_widget`, :func:`has_frontend`,
:class:`Latest`, :class:`Superseded`, :func:`png`.
"""

from __future__ import annotations

import base64
import html
import io
import threading
import traceback
from collections.abc import Callable
from typing import Any

from matplotlib.figure import Figure

from tempo_lab.plots import DPI
from tempo_lab.views.base import STATE_CLASS, Control, Rendered, View, view_state


def has_frontend() -> bool:
    """True inside a running IPython kernel (JupyterLab, papermill, nbval); False in a plain interpreter."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with jupyterlab
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def control_widget(name: str, c: Control):
    """The ipywidget for one control (values arrive when a slider settles or a text box is submitted)."""
    import ipywidgets as w

    common = dict(value=c.value, description=c.description or name, continuous_update=False)
    common["style"] = {"description_width": "initial"}
    if c.kind == "text":
        return w.Text(layout=w.Layout(width="60%"), **common)
    if c.kind == "toggle":
        common.pop("continuous_update")
        return w.ToggleButtons(options=list(c.options), **common)
    if c.options is not None:
        return w.SelectionSlider(options=list(c.options), layout=w.Layout(width="60%"), **common)
    if all(isinstance(x, int) and not isinstance(x, bool) for x in (c.lo, c.hi, c.step, c.value)):
        return w.IntSlider(min=c.lo, max=c.hi, step=c.step, layout=w.Layout(width="60%"), **common)
    return w.FloatSlider(
        min=c.lo, max=c.hi, step=c.step, readout_format=".2f", layout=w.Layout(width="60%"), **common
    )


def png(figure: Figure, *, fast: bool = False) -> bytes:
    """The figure as PNG bytes (fixed dpi, no "Software" metadata: the same figure gives the same bytes).
    ``fast``: the lightest zlib level, for a live view's updates (larger bytes, a third of the encoding time);
    what a saved notebook keeps is encoded at the default level."""
    buffer = io.BytesIO()
    extra = {"pil_kwargs": {"compress_level": 1}} if fast else {}
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, **extra)
    return buffer.getvalue()


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
    """One view as widgets: its controls, a progress bar (live views), the sentence, the figure (a PNG) and
    the hidden state. ``values`` set controls before the first render; ``rendered`` is the latest render."""

    def __init__(self, view: View, **values: Any):
        import ipywidgets as w

        self.view = view
        controls = {name: Control(**vars(c)) for name, c in view.controls.items()}
        for name, value in values.items():
            if name not in controls:
                raise ValueError(f"view {view.name!r} has no control {name!r}; has {list(controls)}")
            controls[name].value = value
        self.controls = {name: control_widget(name, c) for name, c in controls.items()}
        self.progress = w.IntProgress(value=0, min=0, max=1, description="running",
                                      layout=w.Layout(display="none"))  # fmt: skip
        self.text = w.HTML()
        self.text.add_class("tempo-view-text")
        self.image = w.Image(format="png")
        self.image.add_class("tempo-view-image")
        self.state = w.HTML(layout=w.Layout(display="none"))
        self.state.add_class(STATE_CLASS)
        self.box = w.VBox([*self.controls.values(), self.progress, self.text, self.image, self.state])
        self.box.add_class("tempo-view")
        self.renders = 0
        self.rendered: Rendered | None = None
        self.runner = Latest(self._work, self._show) if view.live else None
        values = self.values()
        self._show(values, self._render(values, None))  # the first view, before any event
        for widget in self.controls.values():
            widget.observe(self._changed, names="value")

    def values(self) -> dict[str, Any]:
        return {name: widget.value for name, widget in self.controls.items()}

    def _changed(self, _change: Any = None) -> None:
        values = self.values()
        if self.runner is None:
            self._show(values, self._render(values, None))
        else:
            self.runner.submit(values)

    def _render(self, values: dict[str, Any], progress: Callable[[int, int], None] | None) -> Rendered:
        if not self.view.live:
            return self.view.render(**values)
        try:
            return self.view.render(progress=progress, **values)
        except Superseded:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must show in the view, not kill the worker silently
            message = f"{type(exc).__name__}: {exc}"
            state = {"error": message, "trace": traceback.format_exc(limit=3)}
            return Rendered(f"⚠ internal error, please report: {message}", None, state)

    def _work(self, values: dict[str, Any], generation: int) -> Rendered:
        def progress(done: int, total: int) -> None:
            if self.runner.stale(generation):
                raise Superseded
            self.progress.max, self.progress.value = total, done
            self.progress.layout.display = None

        try:
            return self._render(values, progress)
        finally:
            self.progress.layout.display = "none"

    def _show(self, values: dict[str, Any], rendered: Rendered) -> None:
        self.rendered = rendered
        self.text.value = f"<p>{html.escape(rendered.text)}</p>"
        # the first render is what a saved notebook keeps (display_panel); later ones only reach the browser
        fast = self.renders > 0
        self.image.value = png(rendered.figure, fast=fast) if rendered.figure is not None else b""
        self.image.layout.display = None if rendered.figure is not None else "none"
        self.state.value = html.escape(view_state(self.view, values, rendered))
        self.renders += 1


def display_panel(widget: Any, panel: Panel) -> None:
    """Display ``widget`` (a panel's box, or a dashboard holding panels) in one output together with
    ``panel``'s current figure as a PNG and its sentence: the static form a saved notebook shows."""
    from IPython.display import display

    bundle = dict(widget._repr_mimebundle_())
    bundle["text/plain"] = panel.rendered.text if panel.rendered is not None else panel.view.name
    if panel.image.value:
        bundle["image/png"] = base64.b64encode(panel.image.value).decode("ascii")
    display(bundle, raw=True)


def show(view: View, **values: Any) -> Panel | None:
    """Display the view's controls, sentence and figure; return its :class:`Panel` (``None`` without a
    kernel, where nothing is shown). ``values`` set controls before the first render."""
    if not has_frontend():
        return None
    panel = Panel(view, **values)
    display_panel(panel.box, panel)
    return panel
