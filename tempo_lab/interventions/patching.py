"""Activation patching across position layouts: the same tokens, two layouts, and where the difference enters.

Two :class:`~tempo_lab.interventions.pairs.Layout` s over the same tokens (gap 0 against gap 20, position
4.0 against 4.5, the isolated against the visible sets of a TEMPO run) line up slot for slot, so every
difference between the two runs is caused by position (or visibility) alone.

    result = patch(lm, ids, clean, corrupt, metric, kinds=("resid", "head", "mlp"))
    result.frame            # one row per site: kind, layer, head, slot, token, metric, effect, fraction, ran
    heatmap(result, "resid")

- **Sites**: the residual stream after a layer at a slot (``resid``), one head's attention output at a slot
  (the input of the output projection, ``head``), the MLP output at a slot (``mlp``).
- **Directions**: ``denoise`` runs the corrupt layout and writes the clean run's activation into one site;
  ``noise`` runs the clean layout and writes the corrupt one's. ``effect`` is the metric's change from the
  unpatched run, ``fraction`` that change over the whole difference (1: the site carries all of it).
- **Efficient**: a site whose activation is the same in both runs (in a causal model, every slot before the
  first slot whose position or mask row differs) has effect exactly 0 and is not run (``ran`` False). The
  slots before that first difference are prefilled once; the sites run batched, ``batch_size`` per forward
  pass, one batch row each, as branches of that prefix cache.

The independent path, :func:`patch_naively` (one uncached forward per site, one hook), gives the same numbers
(the tests hold them to 1e-5).

The sites and the hooks that read and write them are :mod:`tempo_lab.interventions.sites`.

Contents: :class:`PatchResult`, :func:`patch`, :func:`patch_naively`, :data:`DIRECTIONS` (the heatmap is
:func:`tempo_lab.interventions.display.heatmap`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import pandas as pd
import torch
from transformers import DynamicCache

from tempo_lab.capture import capture_attention
from tempo_lab.forward import DecodingCore, branch
from tempo_lab.interventions.metrics import Metric, as_metric
from tempo_lab.interventions.pairs import Tokens, check_pair, shared_tokens
from tempo_lab.interventions.sites import KINDS, Site, SiteModules, layer_of, patched, record
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.plumbing import checks

DIRECTIONS = ("denoise", "noise")


@dataclass
class PatchResult:
    """A patching sweep. ``frame``: one row per site (``kind, layer, head, slot, token, metric, effect,
    fraction, ran``); ``base`` / ``source``: the metric of the unpatched run and of the run the activations
    come from; ``first_difference``: the first slot whose position or mask row differs; ``tokens``: per slot;
    ``direction``, ``metric`` (its name)."""

    frame: pd.DataFrame
    base: float
    source: float
    first_difference: int
    tokens: list[str]
    direction: str
    metric: str
    runs: int = 0

    def table(self, kind: str, slot: int | None = None) -> pd.DataFrame:
        """``fraction`` as a table: layers x slots (``resid``, ``mlp``, a named submodule), or layers x heads
        (``head``, summed over the sites' slots unless ``slot`` picks one)."""
        rows = self.frame[
            self.frame.kind == checks.choice("kind", kind, list(dict.fromkeys(self.frame.kind)))
        ]
        if kind == "head":
            if slot is not None:
                rows = rows[rows.slot == slot]
            return rows.pivot_table(index="layer", columns="head", values="fraction", aggfunc="sum")
        return rows.pivot_table(index="layer", columns="slot", values="fraction", aggfunc="sum")


def _sites(where: SiteModules, n: int, kinds, layers, slots, heads) -> list[Site]:
    n_layers = len(where.layers)
    layers = (
        list(range(n_layers))
        if layers is None
        else [checks.integer_in(f"layers[{i}]", v, 0, n_layers - 1) for i, v in enumerate(layers)]
    )
    slots = (
        list(range(n))
        if slots is None
        else [checks.integer_in(f"slots[{i}]", v, 0, n - 1) for i, v in enumerate(slots)]
    )
    heads = (
        list(range(where.n_heads))
        if heads is None
        else [checks.integer_in(f"heads[{i}]", v, 0, where.n_heads - 1) for i, v in enumerate(heads)]
    )
    out = []
    for kind in kinds:
        if kind not in KINDS:  # a named submodule: one site per slot, in the layer it sits in
            out += [Site(kind, layer_of(kind), slot) for slot in slots]
            continue
        for layer in layers:
            for slot in slots:
                out += (
                    [Site(kind, layer, slot, h) for h in heads]
                    if kind == "head"
                    else [Site(kind, layer, slot)]
                )
    return out


def _run(
    core: DecodingCore,
    ids: torch.Tensor,
    layout: Layout,
    readout: int,
    metric: Metric,
    n_rows: int = 1,
    cache: DynamicCache | None = None,
) -> torch.Tensor:
    """Run ``layout`` over ``ids`` ``(1, N)`` as ``n_rows`` identical rows (only the slots past ``cache``,
    a batch-1 prefix, when given) and return the metric per row, ``(n_rows,)``."""
    n, first = ids.shape[1], cache.get_seq_length() if cache is not None else 0
    with ExitStack() as stack:
        record = stack.enter_context(capture_attention(core.model)) if metric.needs_attention else None
        logits = core.forward(
            ids[:, first:].expand(n_rows, -1),
            layout.step(first).expand(n_rows),
            branch(cache, n_rows) if cache is not None else None,
        )
    attention = None
    if record is not None:
        weights = widened(record.stacked(-1, width=n))  # (layers, rows, heads, n - first, n)
        attention = weights[:, :, :, readout - first].permute(1, 0, 2, 3)  # (rows, layers, heads, n)
    return metric(logits[:, readout - first], attention)


def _recorded(
    core: DecodingCore,
    where: SiteModules,
    kinds: Sequence[str],
    ids,
    layout: Layout,
    readout: int,
    metric: Metric,
) -> tuple[dict, float]:
    """One run of ``layout`` with every activation of ``kinds`` kept: ``(store, metric)``."""
    with record(where, kinds) as store:
        return store, float(_run(core, ids, layout, readout, metric)[0])


def _prepare(lm, tokens, clean, corrupt, metric, direction, readout):
    ids = shared_tokens(lm, tokens)
    first = check_pair(ids, clean, corrupt, lm.dtype)
    direction = checks.choice("direction", direction, DIRECTIONS)
    n = ids.shape[1]
    readout = checks.integer_in("readout", readout, -n, n - 1) % n
    base, source = (corrupt, clean) if direction == "denoise" else (clean, corrupt)
    return ids, first, direction, readout, base, source, as_metric(metric)


def patch(
    lm: LoadedModel,
    tokens: Tokens,
    clean: Layout,
    corrupt: Layout,
    metric: Metric | Callable[[torch.Tensor], torch.Tensor],
    *,
    kinds: Sequence[str] = ("resid",),
    layers: Sequence[int] | None = None,
    slots: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    direction: str = "denoise",
    readout: int = -1,
    batch_size: int = 32,
) -> PatchResult:
    """Patch every site of ``kinds`` x ``layers`` x ``slots`` (x ``heads``) from one layout's run into the
    other's (see the module docstring). A kind is one of :data:`~tempo_lab.interventions.sites.KINDS` or the
    name of any submodule (``"model.layers.3.mlp.down_proj"``, its input with ``":input"`` appended): one site
    per slot, in the layer the submodule sits in (``layers`` does not apply). ``tokens``: the shared tokens
    (text, ids ``(1, N)``, or a ``(clean, corrupt)`` pair of the same tokens); ``readout``: the slot whose
    next-token logits the metric reads (default the last). Returns a :class:`PatchResult` (``frame``: one
    row per site)."""
    core, where = DecodingCore(lm), SiteModules.of(lm)
    kinds = [where.check_kind(f"kinds[{i}]", k) for i, k in enumerate(checks.as_list(kinds))]
    batch_size = checks.count("batch_size", batch_size)
    ids, first, direction, readout, base_layout, source_layout, metric = _prepare(
        lm, tokens, clean, corrupt, metric, direction, readout
    )
    n = ids.shape[1]
    sites = _sites(where, n, kinds, layers, slots, heads)
    base, base_value = _recorded(core, where, kinds, ids, base_layout, readout, metric)
    source, source_value = _recorded(core, where, kinds, ids, source_layout, readout, metric)

    def equal(s: Site) -> bool:
        at = (s.slot, s.head) if s.kind == "head" else (s.slot,)
        return torch.equal(base[s.kind][s.layer][0][at], source[s.kind][s.layer][0][at])

    todo = [s for s in sites if s.slot <= readout and not equal(s)]  # later slots cannot reach the read-out
    cache = None
    if todo and 0 < first <= min(s.slot for s in todo):  # the slots before the first difference run once
        cache = DynamicCache(config=core.model.config)
        core.forward(ids[:, :first], base_layout.step(0, first), cache)
    values: dict[Site, float] = {}
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        with patched(where, rows, source, cache.get_seq_length() if cache is not None else 0):
            values.update(
                zip(
                    rows,
                    _run(core, ids, base_layout, readout, metric, len(rows), cache).tolist(),
                    strict=True,
                )
            )
    span = source_value - base_value
    records = []
    for s in sites:
        value = values.get(s, base_value)
        records.append(
            {
                "kind": s.kind,
                "layer": s.layer,
                "head": s.head,
                "slot": s.slot,
                "token": lm.token_str(int(ids[0, s.slot])),
                "metric": value,
                "effect": value - base_value,
                "fraction": (value - base_value) / span if span else float("nan"),
                "ran": s in values,
            }
        )
    columns = ["kind", "layer", "head", "slot", "token", "metric", "effect", "fraction", "ran"]
    frame = pd.DataFrame(records, columns=columns)
    frame["head"] = frame["head"].astype("Int64")
    tokens_ = [lm.token_str(int(i)) for i in ids[0].tolist()]
    return PatchResult(
        frame, base_value, source_value, first, tokens_, direction, metric.name, -(-len(todo) // batch_size)
    )


def patch_naively(
    lm: LoadedModel,
    tokens: Tokens,
    clean: Layout,
    corrupt: Layout,
    metric: Metric | Callable[[torch.Tensor], torch.Tensor],
    sites: Sequence[Site],
    *,
    direction: str = "denoise",
    readout: int = -1,
) -> list[float]:
    """The independent path: for each site, one uncached forward of the base layout with one hook patching
    that site alone. Returns the metric per site."""
    ids, _, _, readout, base_layout, source_layout, metric = _prepare(
        lm, tokens, clean, corrupt, metric, direction, readout
    )
    core, where = DecodingCore(lm), SiteModules.of(lm)
    kinds = [where.check_kind(f"sites[{i}].kind", s.kind) for i, s in enumerate(sites)]
    source, _ = _recorded(core, where, sorted(set(kinds)), ids, source_layout, readout, metric)
    out = []
    for site in sites:
        with patched(where, [site], source, 0):
            out.append(float(_run(core, ids, base_layout, readout, metric)[0]))
    return out
