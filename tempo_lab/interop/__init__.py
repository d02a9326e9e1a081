"""tempo_lab layouts inside other tools: nnsight traces, TransformerLens bridges, or any code that calls the
transformers model.

    with laid_out(lm, clean, corrupt):               # row i of every pass takes layouts[i]
        with wrap(lm).trace(ids.expand(2, -1)):      # nnsight: read and set any module's output
            ...
        logits, cache = bridge(lm).run_with_cache(ids.expand(2, -1))   # or TransformerLens's hooks

- :func:`laid_out` (:mod:`.laid_out`): a scoped forward pre-hook on the model that gives each batch row of
  every pass the positions and mask of one layout, built by the function tempo_lab's own passes use
  (:meth:`~tempo_lab.layout.Layout.model_inputs`), so the numbers are tempo_lab's;
- :func:`wrap` (:mod:`.nnsight`): the model as an nnsight ``TransformersModel`` (the optional extra
  ``tempo_lab[nnsight]``, imported only when called);
- :func:`bridge` (:mod:`.transformer_lens`): the model as a TransformerLens ``TransformerBridge`` (the extra
  ``tempo_lab[transformer-lens]``, imported only when called).
"""

from tempo_lab.interop.laid_out import laid_out
from tempo_lab.interop.nnsight import wrap
from tempo_lab.interop.transformer_lens import bridge

__all__ = ["bridge", "laid_out", "wrap"]
