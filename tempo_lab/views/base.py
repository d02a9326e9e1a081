"""What a view is: a render function of some controls' values, returning a sentence, a figure and its numbers.

One framework serves the replay sliders over results a notebook computed and the live explorers that run the
model on every move. A phenomenon writes one ``render(result, **controls) -> Rendered``; a replay view binds
it to a computed result, a live view computes the result from the controls first:

    View("retroactive", functools.partial(render, result), controls)            # replay: only re-renders
    live_view("retroactive", "Retroactive", controls, lambda values, progress: render(compute(values), ...))

Contents: :class:`Rendered`, :class:`Control`, :class:`View`, :func:`live_view`, :func:`view_state`,
:data:`STATE_CLASS`. Displaying a view is :mod:`tempo_lab.views.panel`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure

#: the class of the hidden element that holds a shown view's state as JSON (browser tests read it)
STATE_CLASS = "tempo-view-state"

Progress = Callable[[int, int], None]
RESERVED = frozenset({"view", "values", "text"})  # what :func:`view_state` adds to a rendered state


@dataclass
class Rendered:
    """What a view shows for one set of control values: ``text``, one sentence for people; ``figure`` (or
    ``None``); ``state``, the numbers behind them, JSON-ready (tests read these, never the sentence)."""

    text: str
    figure: Figure | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class Control:
    """One control. ``kind="slider"``: ``options`` makes a selection slider, otherwise ``lo``/``hi``/``step``
    make an int or float slider (int when all three and ``value`` are ints); ``kind="toggle"``: toggle
    buttons over ``options``; ``kind="text"``: a text box (its value is taken when the user presses Enter or
    leaves it)."""

    value: Any
    lo: float | None = None
    hi: float | None = None
    step: float | None = None
    options: Sequence[Any] | None = None
    description: str = ""
    kind: str = "slider"


@dataclass
class View:
    """A named render function and its controls: ``render(**{name: control.value})`` must work.

    ``live``: the render runs the model (a live explorer): it is shown through a worker thread where the
    latest request wins, it takes a ``progress(done, total)`` keyword, and bad input comes back as a view of
    the message (:func:`live_view`). ``title``: the tab title in the live dashboard."""

    name: str
    render: Callable[..., Rendered]
    controls: dict[str, Control] = field(default_factory=dict)
    title: str = ""
    live: bool = False

    def defaults(self) -> dict[str, Any]:
        return {k: c.value for k, c in self.controls.items()}

    def __call__(self, **values: Any) -> Rendered:
        return self.render(**{**self.defaults(), **values})


def live_view(
    name: str,
    title: str,
    controls: dict[str, Control],
    update: Callable[[dict[str, Any], Progress | None], Rendered],
    note: Callable[[], dict[str, Any]] | None = None,
) -> View:
    """A live view: ``update(values, progress)`` runs the model and renders. tempo_lab's ``ValueError`` (an
    empty prompt, a token that is not one token, a position inside the prompt) becomes a view of the message,
    state ``{"error": message}``, so a bad input never breaks the view and the next valid one works.
    ``note()``: numbers about the live machinery added to every state (e.g. the session's prefill count)."""

    def render(progress: Progress | None = None, **values: Any) -> Rendered:
        try:
            rendered = update(values, progress)
        except ValueError as exc:
            rendered = Rendered(f"⚠ {exc}", None, {"error": str(exc)})
        if note is not None:
            rendered.state.update(note())
        return rendered

    return View(name, render, controls, title=title, live=True)


def view_state(view: View, values: dict[str, Any], rendered: Rendered) -> str:
    """What a shown view's hidden state element holds: JSON of its name, the control values, the sentence,
    and the rendered state's numbers."""
    clash = RESERVED & set(rendered.state)
    if clash:
        raise ValueError(f"a view's state may not use the names {sorted(clash)}; the page's state holds them")
    state = {"view": view.name, "values": values, "text": rendered.text, **rendered.state}
    return json.dumps(state, sort_keys=True, ensure_ascii=False)
