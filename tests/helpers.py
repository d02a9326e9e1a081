"""What the tests share: the tolerances of every exactness check and their reasons, the hang limit every wait
uses, and the phenomenon checks (a figure has a title and labelled axes and draws; a view's controls,
defaults, render and state are consistent and JSON-ready)."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from matplotlib.figure import Figure

from tempo_lab.views import View, view_state

#: Same mathematics on the tiny models, which are float64 (tempo_lab.tiny): their matmuls and reductions run
#: in float64, so no CPU's or GPU's kernel choice for a batch shape (float32 on the AMX Xeon moved one logit
#: by 9.2e-5 between a batch of two rows and one) reaches this tolerance. What is left is transformers' eager
#: attention, which takes its softmax in float32 for every dtype: two orders of one computation (a cached step
#: against a full recompute, a batch against a loop) then differ by up to ~3e-7 of the logits' scale
#: (measured over this suite). 1e-5 of the scale is 30x above that, and far below what a wrong mask,
#: position or slot changes (>= 1e-3).
EXACT = 1e-5
#: float32's unit roundoff
EPS32 = float(torch.finfo(torch.float32).eps)


def assert_same(actual: torch.Tensor, expected: torch.Tensor, *, msg: str | None = None) -> None:
    """``actual`` equals ``expected`` to :data:`EXACT` times their scale (the larger of 1 and the largest
    ``|expected|``), compared in float64 (a float32 expectation written by hand is exact in float64)."""
    a = torch.as_tensor(actual).detach().double()
    e = torch.as_tensor(expected).detach().double().to(a.device)
    scale = max(1.0, float(e.abs().max())) if e.numel() else 1.0
    torch.testing.assert_close(a, e, atol=EXACT * scale, rtol=0, msg=msg)


def float32_atol(scale: float, terms: int) -> float:
    """The tolerance of a float32 comparison of two computations of one result (a real model's logits, in
    two batch shapes or kernels): each of the ``terms`` accumulated rounding steps (hidden size x layers)
    contributes up to one unit roundoff of the result's ``scale``, and independent roundings add up like a
    random walk, so ``4 x EPS32 x scale x sqrt(terms)`` (four standard deviations). Real-model tests use this
    instead of a number a machine happened to give."""
    return 4 * EPS32 * scale * math.sqrt(terms)


def real_atol(lm, expected) -> float:
    """:func:`float32_atol` for values that a real float32 model (``lm``: SmolLM2, Gemma 3) computed, against
    another computation of them or their committed copy: the scale is the larger of 1 and the largest finite
    ``|expected|`` (logits, probabilities, a column of a results table), the terms the model's hidden size
    times its layers (SmolLM2: 4 x eps x 131 x the scale: 6.3e-5 for probabilities, 1.7e-3 for logits up to
    27; a wrong mask, position or slot moves them by 1e-2 or more)."""
    if isinstance(expected, torch.Tensor):
        values = expected.detach().double().cpu().numpy()
    else:
        values = np.asarray(expected, dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    config = lm.model.config.get_text_config()
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    return float32_atol(scale, config.hidden_size * config.num_hidden_layers)


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
