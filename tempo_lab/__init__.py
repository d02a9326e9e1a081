"""tempo_lab: a workbench for how a RoPE transformer reacts to its positions.

Gaps, fractional positions, re-positioning a token after the fact, and TEMPO-style parallel tokens that share
one position. See README.md for the notebook series and the API.

The package, one module per concept:

- models (loading), positions (layouts), masks (additive masks), checks (input checks), capture (attention
  hooks): the foundation;
- generators/: the decoding core, the one decoding loop, token selection, and the retroactive, compressed and
  parallel-token generators built on them; reference: the naive full-recomputation versions of each;
- probe (the gap-dropout probe), experiments (drivers that run a generator over conditions), metrics
  (measurements on results), tables (display tables), labels (values as people read them);
- plots (figures), widgets (sliders around pure render functions) and views (one per notebook), notebook
  (set-up and key numbers), timing (the side-by-side timer);
- live/: model-backed explorers and the dashboard (:func:`explore`);
- execution (one notebook under papermill), runner (the series), cli (``tempo-lab``).
"""

from tempo_lab import masks, positions
from tempo_lab.capture import AttentionRecord, capture_attention, span_mass
from tempo_lab.models import LoadedModel, load_model


def explore(lm: LoadedModel, only: str | None = None, **values):
    """The live dashboard in JupyterLab: type a prompt, move a token, watch the model answer.

    One tab per phenomenon, or the one explorer named ``only``; see :func:`tempo_lab.live.explore`.
    """
    from tempo_lab.live import explore as live_explore  # ipywidgets and the generators load on first use

    return live_explore(lm, only, **values)


__all__ = [
    "AttentionRecord",
    "LoadedModel",
    "capture_attention",
    "explore",
    "load_model",
    "masks",
    "positions",
    "span_mass",
]
