"""Context extension: running a RoPE model past the length it was trained on, as position layouts.

- :mod:`.scaling`: :class:`RopeScaling` (Position Interpolation, NTK, dynamic NTK, YaRN, Llama 3.1's
  ``llama3``, LongRoPE) and :func:`scaled`, which applies one at inference to an unchanged model, in every
  layer or in chosen ones, composing with the KV cache, fractional positions and the generators; exact against
  the same model loaded with transformers' own ``rope_parameters``;
- :mod:`.self_extend`: :func:`self_extended`, Self-Extend's pairwise layout (neighbours at their positions,
  farther pairs grouped) through a registered attention function, exact against a two-matrix reference;
- :mod:`.methods`: :class:`~tempo_lab.extension.methods.Method`, each method set for a length (its factor,
  Self-Extend's window and group by the paper's rule), as the long-context study and the lm-eval model run
  them;
- :mod:`.angles`: :func:`~tempo_lab.extension.angles.band_angles`, which angles each band reaches in
  training and past it under a scaling;
- :mod:`.display`: notebook 10's figures and live view (the char-LMs' scores are
  :mod:`tempo_lab.tpi.lengths`');
- :func:`~tempo_lab.loaded.beyond_context` (re-exported): the plain model run past its trained context, the
  baseline every method is compared with.
"""

from tempo_lab.extension.scaling import METHODS, RopeScaling, scaled, scaled_table
from tempo_lab.extension.self_extend import grouped_positions, self_extended
from tempo_lab.loaded import beyond_context

__all__ = [
    "METHODS",
    "RopeScaling",
    "beyond_context",
    "grouped_positions",
    "scaled",
    "scaled_table",
    "self_extended",
]
