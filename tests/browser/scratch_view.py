"""A model-free view for the harness self-test: the scratch notebook imports it, the test rebuilds it.

``make_view(start)`` returns a :class:`tempo_lab.views.View` with one IntSlider ``n`` and a pure render
function whose text and bar chart both depend on ``n``.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from tempo_lab.views import Control, Rendered, View


def render(n: int, scale: float) -> Rendered:
    """Text ``n^2`` and a bar chart of ``k^2 * scale`` for ``k <= n``."""
    fig = Figure(figsize=(3, 2), dpi=60)
    ax = fig.add_subplot()
    ax.bar(range(n + 1), [k * k * scale for k in range(n + 1)])
    ax.set_title(f"squares up to {n}")
    ax.set_xlabel("k")
    ax.set_ylabel("k^2 * scale")
    return Rendered(text=f"n^2 * scale = {n * n * scale:.2f}", figure=fig)


def make_view(start: int) -> View:
    return View(
        name="scratch squares",
        render=render,
        controls={
            "n": Control(value=start, lo=0, hi=10, step=1, description="n"),
            "scale": Control(value=1.0, lo=0.5, hi=2.0, step=0.25, description="scale"),
        },
    )
