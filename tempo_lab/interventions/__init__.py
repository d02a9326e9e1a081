"""Position as an intervenable, differentiable variable: where in the network position acts.

- :mod:`.rotary`: a model's rotary embedding as tempo_lab reads it (bands, wavelengths, rotations);
- :mod:`.edits`: :class:`PositionEdit` and :func:`intervene`: chosen layers, rotary bands or heads see
  their slots moved, scoped like :func:`~tempo_lab.capture.capture_attention`, around any forward pass
  (generators, live sessions, studies);
- :mod:`.pairs`: two layouts (:class:`~tempo_lab.layout.Layout`) of the same tokens, what the three below
  compare;
- :mod:`.metrics`: what an intervention is measured by (:func:`logit_diff`, :func:`prob`, :func:`tv_to`,
  :func:`prompt_mass`, any callable of the logits);
- :mod:`.sites`: the sites of patching (:class:`Site`, :class:`SiteModules`, a table of each family's parts,
  any named submodule) and the hooks that read and write them (:func:`record`, :func:`patched`, both scoped);
- :mod:`.patching`: activation patching across two layouts of the same tokens (:func:`patch`,
  :func:`heatmap`);
- :mod:`.attribution`: gradients of a metric with respect to every slot's position, per layer, and integrated
  gradients between two layouts;
- :mod:`.search`: the positions that maximise a metric, by gradient ascent checked on a grid;
- :mod:`.display`: their figures (``heatmap``, ``attribution_figure``, ``search_figure``): import it by name
  (``from tempo_lab.interventions.display import heatmap``); the computing modules load no plotting library.
"""

from tempo_lab.interventions.attribution import (
    IntegratedGradients,
    PositionGradients,
    integrated_gradients,
    position_gradients,
)
from tempo_lab.interventions.edits import PositionEdit, intervene, moved
from tempo_lab.interventions.metrics import Metric, log_prob, logit_diff, prob, prompt_mass, tv_to
from tempo_lab.interventions.pairs import shared_tokens
from tempo_lab.interventions.patching import PatchResult, patch, patch_naively
from tempo_lab.interventions.rotary import Rotary, rotary_of
from tempo_lab.interventions.search import PositionSearch, search_positions
from tempo_lab.interventions.sites import Site, SiteModules, patched, record

__all__ = [
    "IntegratedGradients",
    "Metric",
    "PatchResult",
    "PositionEdit",
    "PositionGradients",
    "PositionSearch",
    "Rotary",
    "Site",
    "SiteModules",
    "integrated_gradients",
    "intervene",
    "log_prob",
    "logit_diff",
    "moved",
    "patch",
    "patch_naively",
    "patched",
    "position_gradients",
    "prob",
    "prompt_mass",
    "record",
    "rotary_of",
    "search_positions",
    "shared_tokens",
    "tv_to",
]
