"""The model as a TransformerLens ``TransformerBridge``, to run ``run_with_cache`` and hooks under a layout.

    from tempo_lab.interop import bridge, laid_out
    tl = bridge(lm)
    with laid_out(tl, corrupt):
        logits, cache = tl.run_with_cache(ids)   # cache["blocks.9.attn.hook_pattern"]: (1, heads, N, N)

Booting a bridge (``boot_transformers(..., hf_model=...)``) swaps the transformers model's decoder modules for
TransformerLens's components, which wrap them and run their attention eagerly, so :func:`bridge` boots it on
a copy of the model: ``lm`` stays as it was, for tempo_lab's own functions. The bridge still calls a
transformers model (``tl.original_model``) with ``position_ids`` and a 4D ``attention_mask``; that call is
where :func:`~tempo_lab.interop.laid_out` sets the layout's, replacing the positions the bridge's own code
derives (its ``generate`` and its left-padding rule number positions by counting tokens). TransformerLens's
legacy ``HookedTransformer`` re-implements the model and takes no ``position_ids``; it is refused with that
reason (TransformerLens 4.0 removed it).

TransformerLens is an optional extra (``pip install
tempo_lab[transformer-lens]``; ``make setup`` installs it from the lock), imported when :func:`bridge` is
called, with the install command in the error when it is missing.

Contents: :func:`bridge`.
"""

from __future__ import annotations

import copy
from typing import Any

from tempo_lab.loaded import LoadedModel


def bridge(lm: LoadedModel) -> Any:
    """A TransformerLens ``TransformerBridge`` over a copy of ``lm``'s model, with its tokenizer (raw
    weights, no folding: its logits are the transformers model's). Lay it out with
    ``laid_out(tl, *layouts)``. Raises ``ImportError`` naming the extra to install when
    transformer-lens is missing."""
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError as exc:  # pragma: no cover - the lock installs it
        raise ImportError(
            "tempo_lab.interop.bridge needs TransformerLens: pip install 'tempo_lab[transformer-lens]' "
            "(or transformer-lens>=4.3)"
        ) from exc
    model = copy.deepcopy(lm.model)  # the bridge swaps its modules for its own components
    return TransformerBridge.boot_transformers(lm.name, hf_model=model, tokenizer=lm.tokenizer)
