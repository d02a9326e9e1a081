"""The sites of activation patching and the hooks that read and write them: where each family keeps its
residual stream, attention heads and MLPs (a table per family), any named submodule as a site, forward hooks
that keep activations, and hooks that write a source's activations into chosen batch rows.

- a :class:`Site`: the residual stream after a layer at a slot (``resid``), one head's attention output at a
  slot (the input of the output projection, ``head``), the MLP output at a slot (``mlp``), or the output of
  any named submodule at a slot (``"model.layers.3.mlp.down_proj"``; its input with ``":input"`` appended),
  as TransformerLens's hook names and baukit's ``Trace`` name them;
- :class:`SiteModules`: where they are in a model, as the family table says
  (:data:`tempo_lab.families.ARCHITECTURES`: decoder layers, attention, output projection, MLP and norms; a
  family without a row, or a layer without a part, refused naming both);
- :func:`record` (a context manager) and :func:`patched`: public for measurements that batch their own
  passes (:func:`~tempo_lab.interventions.patching.patch`, the study of notebook 09). Both remove their hooks
  on exit, also after an exception.

Contents: :class:`Site`, :class:`SiteModules`, :func:`record`, :func:`patched`, :data:`KINDS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from tempo_lab.loaded import LoadedModel

KINDS = ("resid", "head", "mlp")
INPUT = ":input"  # a named site's suffix: the module's input rather than its output


@dataclass(frozen=True)
class Site:
    """One place to patch: ``kind`` (:data:`KINDS`, or a submodule's name), ``layer`` (a named submodule's
    decoder layer, -1 outside any), ``slot`` and, for ``head``, ``head``."""

    kind: str
    layer: int
    slot: int
    head: int | None = None


@dataclass
class SiteModules:
    """Where the sites live in one model: decoder layers, each one's attention, output projection, MLP and
    norms (found by the family table, :meth:`~tempo_lab.families.Family.modules`), and the model, whose named
    submodules are sites too."""

    model: nn.Module
    layers: list[nn.Module]
    attentions: list[nn.Module]
    projections: list[nn.Module]
    mlps: list[nn.Module]
    norms: list[dict[str, nn.Module]]
    n_heads: int
    head_dim: int

    @classmethod
    def of(cls, lm: LoadedModel) -> SiteModules:
        found = lm.family.modules(lm.model)
        n_heads = lm.model.config.num_attention_heads
        proj = found.projections[0]  # a Linear (in_features), or GPT-2's Conv1D (weight (in, out))
        width = proj.in_features if hasattr(proj, "in_features") else proj.weight.shape[0]
        parts = (found.layers, found.attentions, found.projections, found.mlps, found.norms)
        return cls(lm.model, *parts, n_heads, width // n_heads)

    def modules(self, kind: str) -> list[nn.Module]:
        """The modules of a built-in kind, one per layer."""
        return {"resid": self.layers, "head": self.projections, "mlp": self.mlps}[kind]

    def check_kind(self, name: str, kind: object) -> str:
        """``kind`` if it is one of :data:`KINDS` or a submodule's name (with :data:`INPUT` appended for its
        input); otherwise ``ValueError`` naming ``name`` and the value."""
        if isinstance(kind, str) and (kind in KINDS or self._named(kind) is not None):
            return kind
        raise ValueError(
            f"{name} = {kind!r} is neither one of {', '.join(KINDS)} nor the name of a submodule of "
            f"{type(self.model).__name__} (e.g. {self._example()!r}, or {self._example() + INPUT!r})"
        )

    def targets(self, kind: str) -> list[tuple[int, nn.Module]]:
        """``(layer, module)`` for each module a kind's sites live in (one for a named submodule)."""
        if kind in KINDS:
            return list(enumerate(self.modules(kind)))
        return [(layer_of(kind), self._named(kind))]

    def _named(self, kind: str) -> nn.Module | None:
        path = kind.removesuffix(INPUT)
        try:
            return self.model.get_submodule(path) if path else None
        except AttributeError:
            return None

    def _example(self) -> str:
        return next(n for n, m in self.model.named_modules() if m is self.mlps[0])


def layer_of(kind: str) -> int:
    """The decoder layer a named submodule sits in (``"model.layers.3.mlp"``: 3), -1 outside any."""
    found = re.search(r"(?:^|\.)(?:layers|h)\.(\d+)(?:\.|$)", kind)
    return int(found.group(1)) if found else -1


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _reads_input(kind: str) -> bool:
    return kind == "head" or kind.endswith(INPUT)


def _input(module: nn.Module, args: tuple, kwargs: dict) -> tuple[torch.Tensor, str | int]:
    """A module's input activation and where it came: positional 0 or the ``hidden_states`` keyword."""
    if args and isinstance(args[0], torch.Tensor):
        return args[0], 0
    if isinstance(kwargs.get("hidden_states"), torch.Tensor):
        return kwargs["hidden_states"], "hidden_states"
    raise ValueError(f"{type(module).__name__} received no tensor input to record or patch")


@contextmanager
def record(where: SiteModules, kinds: Sequence[str]) -> Iterator[dict]:
    """Inside the block, every pass keeps the activations of the sites' kinds in the yielded store:
    ``store[kind][layer]`` is ``(batch, n, ...)`` (heads: ``(batch, n, heads, head_dim)``; a named
    submodule's under its :func:`layer_of`). The hooks are removed on exit, also after an exception."""
    store: dict = {k: {} for k in kinds}
    handles = []
    try:
        for kind in kinds:
            for layer, module in where.targets(kind):
                if _reads_input(kind):

                    def keep_in(m, args, kwargs, layer=layer, kind=kind):
                        x = _input(m, args, kwargs)[0].detach()
                        if kind == "head":
                            x = x.reshape(*x.shape[:2], where.n_heads, where.head_dim)
                        store[kind][layer] = x

                    handles.append(module.register_forward_pre_hook(keep_in, with_kwargs=True))
                else:

                    def keep_out(_m, _a, out, layer=layer, kind=kind):
                        store[kind][layer] = _first(out).detach()

                    handles.append(module.register_forward_hook(keep_out))
        yield store
    finally:
        for h in handles:
            h.remove()


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
    by_module: dict[tuple[str, int], list[tuple[int, Site]]] = {}
    for r, site in enumerate(rows):
        by_module.setdefault((site.kind, site.layer), []).append((r, site))
    handles = []

    def write(x: torch.Tensor, kind: str, layer: int, found: list[tuple[int, Site]]) -> torch.Tensor:
        x = x.clone()
        for r, s in found:
            value = source[kind][layer][source_row, s.slot - source_offset]
            if kind == "head":
                lo = s.head * where.head_dim
                x[r, s.slot - offset, lo : lo + where.head_dim] = value[s.head]
            else:
                x[r, s.slot - offset] = value
        return x

    try:
        for (kind, layer), found in by_module.items():
            module = dict(where.targets(kind))[layer]
            if _reads_input(kind):

                def pre(m, args, kwargs, found=found, layer=layer, kind=kind):
                    x, at = _input(m, args, kwargs)
                    x = write(x, kind, layer, found)
                    return ((x, *args[1:]), kwargs) if at == 0 else (args, {**kwargs, at: x})

                handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
            else:

                def post(_m, _a, out, found=found, layer=layer, kind=kind):
                    x = write(_first(out), kind, layer, found)
                    return (x, *out[1:]) if isinstance(out, tuple) else x

                handles.append(module.register_forward_hook(post))
        yield
    finally:
        for h in handles:
            h.remove()
