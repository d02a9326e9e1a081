"""The model as an nnsight ``TransformersModel``, to read and set any module's output under a layout.

    from tempo_lab.interop import laid_out, wrap
    model = wrap(lm)
    with laid_out(lm, clean, corrupt), model.trace(ids.expand(2, -1)):
        heads = model.model.layers[9].self_attn.o_proj.input     # (2, N, heads x head_dim)
        heads[1, -1, :64] = heads[0, -1, :64]                     # head 0: the clean row into the corrupt
        logits = model.output.logits.save()

nnsight is an optional extra (``pip install tempo_lab[nnsight]``; ``make setup`` installs it from the lock):
imported when :func:`wrap` is called, with the install command in the error when it is missing.

Contents: :func:`wrap`.
"""

from __future__ import annotations

from typing import Any

from tempo_lab.loaded import LoadedModel


def wrap(lm: LoadedModel) -> Any:
    """``lm``'s model and tokenizer as an nnsight ``TransformersModel`` (the same module objects: hooks,
    :func:`~tempo_lab.interop.laid_out` and tempo_lab's interventions act on it). Raises ``ImportError``
    naming the extra to install when nnsight is missing."""
    if not isinstance(lm, LoadedModel):
        raise TypeError(f"wrap takes a tempo_lab LoadedModel (load_model(...)), got {type(lm).__name__}")
    try:
        from nnsight import TransformersModel
    except ImportError as exc:  # pragma: no cover - the lock installs it
        raise ImportError(
            "tempo_lab.interop.wrap needs nnsight: pip install 'tempo_lab[nnsight]' (or nnsight>=0.8.1)"
        ) from exc
    return TransformersModel(lm.model, task="text-generation", tokenizer=lm.tokenizer)
