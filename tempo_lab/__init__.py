"""tempo_lab: a workbench for how a RoPE transformer reacts to its positions.

Gaps, fractional positions, re-positioning a token after the fact, and TEMPO-style parallel tokens that share
one position. See README.md for the notebook series and docs/ (make docs) for the guide and the API.

    from tempo_lab import load_model, capture_attention, masks, positions

The names below load on first use (``import tempo_lab`` itself imports neither torch nor transformers), so the
command line starts at once. The package, one module per concept:

- models and loaded (loading; a model with its tokenizer), positions (layouts), masks (additive masks),
  capture (attention hooks), families (per-layer-type masks), tiny, bundled (the registry models) and gguf
  (GGUF files converted once into the cache): the foundations;
- generators/: the decoding core, the one decoding loop, options, token selection, and the retroactive,
  compressed and parallel-token generators built on them; reference: the naive full-recomputation versions;
- interventions/ (position edits, layouts, sites, patching, gradients, search), interop/ (layouts inside
  nnsight and TransformerLens), extension/ (context extension), caches/ (whole caches moved in position);
- summaries (one home per shared summary), labels (values as people read them), plots (what figures share);
- phenomena/: one package per phenomenon (probe, display, study) and the registries built from them;
- views/: the one view framework (replay sliders and live explorers) and how a view is shown; live/: the
  prompt session and the dashboard (:func:`explore`);
- studies/: measurements over prompt sets (run, folder, stats, claims as data); results: the verified results
  folder the studies, tpi/ and caches/ write; tpi/: position-free attention beside RoPE;
- notebook (set-up and key numbers), timing (the side-by-side timer), cli (``tempo-lab``);
- plumbing/: input checks, per-module state of open blocks, the old paths of moved modules, one notebook
  under papermill and the notebook series.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

#: public name -> the module that defines it (a module itself when the two are the same)
_LAZY = {
    "AttentionRecord": "tempo_lab.capture",
    "DecodingCore": "tempo_lab.forward",
    "Layout": "tempo_lab.layout",
    "capture_attention": "tempo_lab.capture",
    "span_mass": "tempo_lab.capture",
    "LoadedModel": "tempo_lab.models",
    "load_model": "tempo_lab.models",
    "masks": "tempo_lab.masks",
    "positions": "tempo_lab.positions",
}

if TYPE_CHECKING:  # pragma: no cover
    from tempo_lab import masks, positions
    from tempo_lab.capture import AttentionRecord, capture_attention, span_mass
    from tempo_lab.forward import DecodingCore
    from tempo_lab.layout import Layout
    from tempo_lab.models import LoadedModel, load_model


def __getattr__(name: str) -> Any:
    """Load a public name on first use (PEP 562); submodules import as usual."""
    if name not in _LAZY:
        raise AttributeError(f"module 'tempo_lab' has no attribute {name!r}")
    module = import_module(_LAZY[name])
    value = module if module.__name__ == f"tempo_lab.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def explore(lm: LoadedModel, only: str | None = None, **values):
    """The live dashboard in JupyterLab: type a prompt, move a token, watch the model answer.

    One tab per phenomenon, or the one explorer named ``only``; see
    :func:`tempo_lab.phenomena.dashboard.explore`.
    """
    from tempo_lab.phenomena.dashboard import explore as live_explore  # ipywidgets: on first use

    return live_explore(lm, only, **values)


__all__ = [
    "AttentionRecord",
    "DecodingCore",
    "Layout",
    "LoadedModel",
    "capture_attention",
    "explore",
    "load_model",
    "masks",
    "positions",
    "span_mass",
]
