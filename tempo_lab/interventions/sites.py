"""The sites of activation patching and the hooks that read and write them: where a model's residual stream,
attention heads and MLPs live, forward hooks that keep their activations, and hooks that write a source's
activations into chosen batch rows.

- a :class:`Site`: the residual stream after a layer at a slot (``resid``), one head's attention output at a
  slot (the input of the output projection, ``head``), or the MLP output at a slot (``mlp``);
- :class:`SiteModules`: the modules those live in, found in any family of the matrix (GPT-2's ``Conv1D``
  projections included);
- :func:`record` and :func:`patched`: public for measurements that batch their own passes
  (:func:`~tempo_lab.interventions.patching.patch`, the study of notebook 09).

Contents: :class:`Site`, :class:`SiteModules`, :func:`record`, :func:`patched`, :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from torch import nn

from tempo_lab.loaded import LoadedModel

KINDS = ("resid", "head", "mlp")
OUTPUT_PROJECTIONS = ("o_proj", "dense", "out_proj", "c_proj")


@dataclass(frozen=True)
class Site:
    """One place to patch: ``kind`` (:data:`KINDS`), ``layer``, ``slot`` and, for ``head``, ``head``."""

    kind: str
    layer: int
    slot: int
    head: int | None = None


@dataclass
class SiteModules:
    """Where the sites live in one model: decoder layers, each one's output projection and MLP."""

    layers: list[nn.Module]
    projections: list[nn.Module]
    mlps: list[nn.Module]
    n_heads: int
    head_dim: int

    @classmethod
    def of(cls, lm: LoadedModel) -> SiteModules:
        base = lm.model.base_model
        layers = list(getattr(base, "layers", None) or getattr(base, "h", []))
        if not layers:
            raise ValueError(f"found no decoder layers in {type(lm.model).__name__}")
        projections, mlps = [], []
        for i, layer in enumerate(layers):
            attention = (
                getattr(layer, "self_attn", None)
                or getattr(layer, "attention", None)
                or getattr(layer, "attn", None)
            )
            proj = next((getattr(attention, n) for n in OUTPUT_PROJECTIONS if hasattr(attention, n)), None)
            mlp = getattr(layer, "mlp", None)
            if proj is None or mlp is None:
                raise ValueError(
                    f"layer {i} of {type(lm.model).__name__} has no output projection or MLP to patch"
                )
            projections.append(proj)
            mlps.append(mlp)
        n_heads = lm.model.config.num_attention_heads
        proj = projections[0]  # a Linear (in_features), or GPT-2's Conv1D (weight (in, out))
        width = proj.in_features if hasattr(proj, "in_features") else proj.weight.shape[0]
        return cls(layers, projections, mlps, n_heads, width // n_heads)

    def modules(self, kind: str) -> list[nn.Module]:
        return {"resid": self.layers, "head": self.projections, "mlp": self.mlps}[kind]


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def record(where: SiteModules, kinds: Sequence[str]) -> tuple[dict, list]:
    """Hooks that keep every activation of the sites' kinds: ``(store, handles)``; ``store[kind][layer]``
    is ``(batch, n, ...)`` (heads: ``(batch, n, heads, head_dim)``)."""
    store: dict = {k: {} for k in kinds}
    handles = []
    for kind in kinds:
        for layer, module in enumerate(where.modules(kind)):
            if kind == "head":

                def keep(_m, args, layer=layer):
                    x = args[0]
                    store["head"][layer] = x.detach().reshape(*x.shape[:2], where.n_heads, where.head_dim)

                handles.append(module.register_forward_pre_hook(keep))
            else:

                def keep(_m, _a, out, layer=layer, kind=kind):
                    store[kind][layer] = _first(out).detach()

                handles.append(module.register_forward_hook(keep))
    return store, handles


@contextmanager
def patched(
    where: SiteModules,
    rows: Sequence[Site],
    source: dict,
    offset: int,
    *,
    source_row: int = 0,
    source_offset: int = 0,
) -> Iterator[None]:
    """Hooks that write ``source``'s activation (a :func:`record` store) into each batch row's site (row
    ``r`` patches ``rows[r]``); ``offset``: the slot of the pass's first query; the source is its batch row
    ``source_row``, recorded in a pass whose first query was slot ``source_offset``."""
    by_layer: dict[tuple[str, int], list[tuple[int, Site]]] = {}
    for r, site in enumerate(rows):
        by_layer.setdefault((site.kind, site.layer), []).append((r, site))
    handles = []
    for (kind, layer), found in by_layer.items():
        module = where.modules(kind)[layer]
        if kind == "head":

            def pre(_m, args, found=found, layer=layer):
                x = args[0].clone()
                for r, s in found:
                    lo = s.head * where.head_dim
                    x[r, s.slot - offset, lo : lo + where.head_dim] = source["head"][layer][
                        source_row, s.slot - source_offset, s.head
                    ]
                return (x, *args[1:])

            handles.append(module.register_forward_pre_hook(pre))
        else:

            def post(_m, _a, out, found=found, layer=layer, kind=kind):
                x = _first(out).clone()
                for r, s in found:
                    x[r, s.slot - offset] = source[kind][layer][source_row, s.slot - source_offset]
                return (x, *out[1:]) if isinstance(out, tuple) else x

            handles.append(module.register_forward_hook(post))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
