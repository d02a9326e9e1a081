"""Interactive views: ipywidgets sliders around *pure* render functions.

A :class:`View` pairs a pure function ``render(**values) -> Rendered`` with the sliders that feed it. The
function is what unit tests call with slider values; :func:`show` is the only part that touches ipywidgets.
Each time a slider settles, the view's output area is cleared and shows ``rendered.text`` (a sentence for
people), then the figure, if any. The values it was rendered for sit, as JSON, in a hidden element of class
``tempo-view-state`` (:func:`view_state`): browser tests read that to check that the page shows what
``render`` returns for the sliders' values.

Contents: :class:`View`, :class:`Control`, :class:`Rendered`, :func:`show`, :func:`view_state`,
:func:`control_widget`, :func:`has_frontend`. The views of the notebook series are in :mod:`tempo_lab.views`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure


@dataclass
class Rendered:
    """What a view shows for one set of slider values: a one-line text summary and an optional figure."""

    text: str
    figure: Figure | None = None


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
    """A named pure render function plus its controls; ``render(**{name: control.value})`` must work."""

    name: str
    render: Callable[..., Rendered]
    controls: dict[str, Control] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        return {k: c.value for k, c in self.controls.items()}

    def __call__(self, **values: Any) -> Rendered:
        return self.render(**{**self.defaults(), **values})


STATE_CLASS = "tempo-view-state"


def view_state(view_name: str, values: dict[str, Any], rendered: Rendered) -> str:
    """What a view's hidden state element holds for ``values``: JSON of its name, the values and the text."""
    return json.dumps({"view": view_name, "values": values, "text": rendered.text}, sort_keys=True)


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
        return w.SelectionSlider(options=list(c.options), **common)
    if all(isinstance(x, int) and not isinstance(x, bool) for x in (c.lo, c.hi, c.step, c.value)):
        return w.IntSlider(min=c.lo, max=c.hi, step=c.step, **common)
    return w.FloatSlider(min=c.lo, max=c.hi, step=c.step, readout_format=".2f", **common)


def show(view: View):
    """Display the view's sliders and output area; return the ipywidgets box (``None`` without a kernel)."""
    if not has_frontend():
        return None
    import html

    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    sliders = {name: control_widget(name, c) for name, c in view.controls.items()}
    out = w.Output()
    state = w.HTML(layout=w.Layout(display="none"))
    state.add_class(STATE_CLASS)

    def refresh(_change: Any = None) -> None:
        values = {name: s.value for name, s in sliders.items()}
        rendered = view.render(**values)
        state.value = html.escape(view_state(view.name, values, rendered))
        with out:
            out.clear_output(wait=True)
            print(rendered.text)
            if rendered.figure is not None:
                display(rendered.figure)
                plt.close(rendered.figure)

    for s in sliders.values():
        s.observe(refresh, names="value")
    refresh()
    box = w.VBox([*sliders.values(), out, state])
    display(box)
    return box
