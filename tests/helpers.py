"""What the tests share: the hang limit every wait uses, and the phenomenon checks (a figure has a title and
labelled axes and draws; a view's controls, defaults, render and state are consistent and JSON-ready)."""

from __future__ import annotations

import json

from matplotlib.figure import Figure

from tempo_lab.views import View, view_state

#: Seconds a test waits for an event (a process writing its first parts, a kernel going idle, a page showing
#: a new value, a subprocess exiting) before it calls the wait a hang and fails. It only catches hangs: the
#: longest such event in the suite takes about a minute on the slower CPU under load, so no verdict on speed
#: rests on it, and no test compares a wall time with any other number.
HANG_S = 1200.0


def check_figure(fig: Figure, *, n_axes_with_labels: int = 1) -> None:
    """At least ``n_axes_with_labels`` axes carry a title and both axis labels; the figure draws."""
    labelled = [ax for ax in fig.axes if ax.get_title() and ax.get_xlabel() and ax.get_ylabel()]
    assert len(labelled) >= n_axes_with_labels, [
        (a.get_title(), a.get_xlabel(), a.get_ylabel()) for a in fig.axes
    ]
    fig.canvas.draw()  # must render without error


def first_control_values(view: View) -> list:
    """Every value of the view's first control (the one the browser test moves)."""
    _, c = next(iter(view.controls.items()))
    if c.options is not None:
        return list(c.options)
    n = int(round((c.hi - c.lo) / c.step))
    return [c.lo + i * c.step for i in range(n + 1)]


def check_view(view: View) -> None:
    """Defaults are JSON (as the page prints them) within their controls; the render gives one line of text,
    a figure with a titled axes and a JSON state holding the name, the values, the text and the numbers."""
    defaults = view.defaults()
    json.dumps(defaults)
    for name, c in view.controls.items():
        if c.options is not None:
            assert c.value in c.options, name
            json.dumps(list(c.options))
        elif c.kind == "slider":
            assert c.lo <= c.value <= c.hi, name
    rendered = view(**defaults)
    assert rendered.text and "\n" not in rendered.text
    assert rendered.figure is not None and rendered.figure.axes[0].get_title()
    state = json.loads(view_state(view, defaults, rendered))
    assert state == {"view": view.name, "values": defaults, "text": rendered.text, **json.loads(
        json.dumps(rendered.state))}
