"""Where position acts, on one prompt (notebook 09): the layers, heads, rotary bands and gradients that carry
a layout pair's effect, and the rotary bands that build the previous-token heads.

- :func:`localise` (:class:`Localisation`): for two layouts of the same tokens, the share of the effect (the
  total variation of the read-out's next-token distribution from the clean run's) that each layer's residual
  stream and each head's output at the read-out slot restore (activation patching), the effect when only one
  rotary band sees the move, and the per-layer position gradient of the effect at the moved slots;
- :func:`retro_pair`, :func:`half_step_pair`, :func:`set_pair`: the layout pairs of notebooks 03, 02 and 04;
- :func:`collapse_bands` (:class:`BandCollapse`): the previous-token heads (by their attention pattern and
  :data:`PREVIOUS_TOKEN_RULE`) and what happens to them, and to the next-token distribution, when one group of
  rotary bands loses its positions (every slot seen at the last position in that group only);
- :func:`entry_layers`: the layers over which a recovery curve rises (where the effect is written in).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from tempo_lab import masks
from tempo_lab import positions as pos
from tempo_lab.capture import capture_attention
from tempo_lab.forward import DecodingCore
from tempo_lab.generators import ParallelResult
from tempo_lab.interventions import (
    Metric,
    PositionEdit,
    intervene,
    log_prob,
    patch,
    position_gradients,
    rotary_of,
    tv_to,
)
from tempo_lab.interventions.pairs import check_pair
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel, widened
from tempo_lab.plumbing import checks

NAME, TITLE = "localisation", "Where position acts"

#: a head is a previous-token head when, on average over the prompt's queries, at least this share of its
#: attention goes to the token right before the query
PREVIOUS_TOKEN_RULE = 0.5
#: a recovery curve "enters" between the first layer restoring this share of the effect and the first one
#: restoring ENTRY[1]
ENTRY = (0.25, 0.75)
#: what :func:`localise` measures the effect by: ``tv`` (total variation of the next-token distribution from
#: the clean run's) or ``logprob`` (the log-probability of the clean run's top next token)
METRICS = ("tv", "logprob")


@dataclass
class Localisation:
    """Where one layout pair's effect is carried.

    ``effect``: the metric's change from the clean run to the corrupt one at the read-out (for ``tv``: the TV
    of the corrupt run's next-token distribution from the clean run's); ``metric``: its name; ``layers``: one
    row per layer, ``layer``, ``recovered`` (the share of the effect the clean residual stream after that
    layer, at the read-out slot, restores in the corrupt run); ``heads``: layers x heads, the same for one
    head's attention output (``None`` when not asked); ``bands``: one row per rotary band, ``band``,
    ``wavelength``, ``effect`` (the metric's change when only that band sees the move), ``share`` (its
    absolute value's share of the bands' sum) (``None`` for a mask pair or a model without rotary embeddings);
    ``gradient``: one row per layer, ``gradient`` (d metric / d position of the moved slots, summed, seen by
    that layer alone; ``None`` likewise); ``tokens``, ``readout``, ``moved`` (the slots whose position
    differs), ``name``."""

    effect: float
    metric: str
    layers: pd.DataFrame
    heads: pd.DataFrame | None
    bands: pd.DataFrame | None
    gradient: pd.DataFrame | None
    tokens: list[str]
    readout: int
    moved: list[int]
    name: str

    @property
    def entry(self) -> tuple[int | None, int | None]:
        """The layers where the recovery curve first reaches :data:`ENTRY` (see :func:`entry_layers`)."""
        return entry_layers(self.layers.recovered.tolist())


def entry_layers(
    recovered: Sequence[float], levels: tuple[float, float] = ENTRY
) -> tuple[int | None, int | None]:
    """``(X, Y)``: the first layer whose recovered share reaches ``levels[0]`` and the first reaching
    ``levels[1]`` (``None`` when none does): the effect is written in over layers X..Y."""
    first = next((i for i, r in enumerate(recovered) if r >= levels[0]), None)
    last = next((i for i, r in enumerate(recovered) if r >= levels[1]), None)
    return first, last


def retro_pair(
    lm: LoadedModel, prompt: str | torch.Tensor, token: str | int, gap: float
) -> tuple[torch.Tensor, Layout, Layout]:
    """Notebook 03's move: ``token`` right after ``prompt`` (gap 0, clean) and ``gap`` positions later
    (corrupt). Returns ``(ids (1, T + 1), clean, corrupt)``."""
    _, ids = lm.encode_prompt(prompt)
    t = ids.shape[1]
    full = torch.cat([ids, torch.tensor([[lm.token_id(token)]], device=ids.device)], 1)
    return full, Layout.contiguous(t + 1, "gap 0"), Layout(pos.with_gap(t, 1, gap), None, f"gap {gap:g}")


def half_step_pair(
    lm: LoadedModel, prompt: str | torch.Tensor, step: float = 0.5
) -> tuple[torch.Tensor, Layout, Layout]:
    """Notebook 02's move: the prompt's own last token at its natural position (clean) and ``step`` later
    (corrupt). Returns ``(ids (1, T), clean, corrupt)``."""
    _, ids = lm.encode_prompt(prompt)
    t = ids.shape[1]
    moved = pos.contiguous(t).clone()
    moved[0, -1] += step
    return ids, Layout.contiguous(t, "natural"), Layout(moved, None, f"last token +{step:g}")


def set_pair(run: ParallelResult, upto: int) -> tuple[torch.Tensor, Layout, Layout]:
    """Notebook 04's pair: the prompt and the first ``upto`` sets of a TEMPO ``run``, at their shared
    positions, under the visible (clean) and the isolated (corrupt) mask. Returns ``(ids, visible,
    isolated)``; the read-out is the last member of set ``upto - 1``."""
    n = int((run.labels < upto).sum())  # the prompt (label -1) and sets 0..upto-1
    labels = run.labels[:n]
    ids, positions = run.input_ids[:, :n], run.positions[:, :n]
    visible = Layout(positions, masks.parallel_mask(labels, "visible"), "visible")
    isolated = Layout(positions, masks.parallel_mask(labels, "isolated"), "isolated")
    return ids, visible, isolated


def _band_values(
    lm: LoadedModel,
    ids: torch.Tensor,
    clean: Layout,
    shift: torch.Tensor,
    groups: Sequence[Sequence[int]],
    metric: Metric,
    readout: int,
) -> torch.Tensor:
    """``metric`` when only the bands of each group see ``shift`` ``(N,)``: one batched forward, one row per
    group. Returns ``(groups,)``."""
    rows = len(groups)
    edits = []
    for g, bands in enumerate(groups):
        row_shift = torch.zeros(rows, shift.shape[0])
        row_shift[g] = shift
        edits.append(PositionEdit(row_shift, bands=list(bands)))
    core = DecodingCore(lm)
    with intervene(lm, *edits):
        logits = core.full(ids.expand(rows, -1), clean.expand(rows))
    return metric(logits[:, readout]).cpu()


def localise(
    lm: LoadedModel,
    ids: torch.Tensor,
    clean: Layout,
    corrupt: Layout,
    *,
    readout: int = -1,
    heads: bool = True,
    bands: bool = True,
    gradient: bool = True,
    metric: str = "tv",
    name: str = "",
) -> Localisation:

    """Localise the effect of going from ``clean`` to ``corrupt`` (see :class:`Localisation`): patching at
    the read-out slot per layer (and per head), one band at a time, and the per-layer gradient, all measured
    by ``metric`` (:data:`METRICS`). ``ids``: ``(1, N)``. Band and gradient parts need a pair that differs in
    positions only and a rotary model."""
    metric_name = checks.choice("metric", metric, METRICS)
    n = ids.shape[1]
    check_pair(ids, clean, corrupt, lm.dtype)
    readout %= n
    core = DecodingCore(lm)
    runs = [
        core.full(ids, layout)[0, readout]
        for layout in (clean, corrupt)
    ]
    probs = torch.softmax(widened(torch.stack(runs)), -1)
    reference = probs[0]
    if metric_name == "tv":
        measure = tv_to(reference, "TV to the clean run")
    else:
        measure = log_prob(lm, int(reference.argmax()))
    values = measure(torch.stack(runs))
    effect = float(values[1] - values[0])
    kinds = ("resid", "head") if heads else ("resid",)
    result = patch(lm, ids, clean, corrupt, measure, kinds=kinds, slots=[readout])
    resid = result.frame[result.frame.kind == "resid"]
    layers = pd.DataFrame({"layer": resid.layer.to_numpy(), "recovered": resid.fraction.to_numpy()})
    head_table = result.table("head", slot=readout) if heads else None
    shift = (corrupt.positions - clean.positions)[0]
    moved = [int(i) for i in shift.nonzero().flatten()]
    same_mask = torch.equal(clean.full_mask(lm.dtype), corrupt.full_mask(lm.dtype))
    band_frame = grad_frame = None
    if lm.family.has_bands and same_mask and moved:
        rotary = rotary_of(lm)
        table = rotary.bands()
        first_type = table[table.layer_type == table.layer_type.iloc[0]]
        if bands:
            n_bands = rotary.n_bands()
            one_band = _band_values(lm, ids, clean, shift, [[b] for b in range(n_bands)], measure, readout)
            moves = (one_band - values[0].cpu()).numpy()
            band_frame = pd.DataFrame(
                {"band": range(n_bands), "wavelength": first_type.wavelength.to_numpy(), "effect": moves}
            )
            total = float(abs(moves).sum())
            band_frame["share"] = abs(moves) / total if total > 0 else float("nan")
        if gradient:
            grads = position_gradients(lm, ids, corrupt, measure, readout=readout, per_layer=True).per_layer
            grad_frame = pd.DataFrame(
                {"layer": range(grads.shape[0]), "gradient": grads[:, moved].sum(1).numpy()}
            )
    tokens = [lm.token_str(int(i)) for i in ids[0].tolist()]
    return Localisation(
        effect,
        measure.name,
        layers,
        head_table,
        band_frame,
        grad_frame,
        tokens,
        readout,
        moved,
        name or f"{clean.label} -> {corrupt.label}",
    )


@dataclass
class BandCollapse:
    """What happens when one group of rotary bands loses its positions.

    ``scores``: ``(layers, heads)`` previous-token score of every head on the prompt; ``heads``: the
    ``(layer, head)`` pairs that pass :data:`PREVIOUS_TOKEN_RULE`; ``groups``: the band indices of each group;
    ``frame``: one row per group, ``group``, ``bands`` (text), ``wavelength`` (the group's shortest, tokens),
    ``score_drop`` (mean over the previous-token heads of their score's fall), ``tv`` (of the next-token
    distribution at the last slot), ``drop_share`` / ``tv_share`` (of the groups' sums); ``tokens``."""

    scores: torch.Tensor
    heads: list[tuple[int, int]]
    groups: list[list[int]]
    frame: pd.DataFrame
    tokens: list[str]

    def top_share(self, column: str, fraction: float = 0.25) -> float:
        """The share of ``column`` (``drop_share`` or ``tv_share``) carried by the highest-frequency
        ``fraction`` of the bands (whole groups, at least one)."""
        k = max(1, round(fraction * len(self.groups)))
        return float(self.frame[column].iloc[:k].sum())


def previous_token_scores(weights: torch.Tensor) -> torch.Tensor:
    """``weights`` ``(..., T, T)`` attention probabilities -> ``(...)``: the mean over queries ``1..T-1`` of
    the attention each pays the token right before it."""
    t = weights.shape[-1]
    i = torch.arange(1, t, device=weights.device)
    return weights[..., i, i - 1].mean(-1)


def band_groups(n_bands: int, n_groups: int) -> list[list[int]]:
    """``n_bands`` bands in ``n_groups`` consecutive groups (band 0, the highest frequency, in the first)."""
    size = -(-n_bands // n_groups)
    return [list(range(i, min(i + size, n_bands))) for i in range(0, n_bands, size)]


def collapse_bands(lm: LoadedModel, ids: torch.Tensor, groups: Sequence[Sequence[int]]) -> BandCollapse:
    """For each group of bands, one more row of the prompt ``ids`` ``(1, T)`` in which only those bands see
    every slot at the last slot's position (they carry no relative position); one batched forward with the
    attention captured. The previous-token heads are found on the unchanged row."""
    t = ids.shape[1]
    if t < 3:
        raise ValueError(f"the prompt has {t} tokens; finding previous-token heads needs at least 3")
    rows = len(groups) + 1
    positions = pos.contiguous(t)
    edits = []
    for g, bands in enumerate(groups):
        shift = torch.zeros(rows, t)
        shift[g + 1] = positions[0, -1] - positions[0]
        edits.append(PositionEdit(shift, bands=list(bands)))
    core = DecodingCore(lm)
    with intervene(lm, *edits), capture_attention(lm.model) as record:
        logits = core.full(ids.expand(rows, -1), Layout(positions).expand(rows))
    weights = widened(record.stacked(-1, width=t))  # (layers, rows, heads, T, T)
    scores = previous_token_scores(weights).permute(1, 0, 2)  # (rows, layers, heads)
    base = scores[0]
    heads = [(int(layer), int(head)) for layer, head in (base >= PREVIOUS_TOKEN_RULE).nonzero().tolist()]
    probs = torch.softmax(widened(logits[:, -1]), -1)
    tvs = (0.5 * (probs[1:] - probs[0]).abs().sum(-1)).cpu()
    if heads:
        index = torch.tensor(heads)
        drops = (base[index[:, 0], index[:, 1]] - scores[1:, index[:, 0], index[:, 1]]).mean(-1).cpu()
    else:
        drops = torch.full((len(groups),), float("nan"))
    wavelengths = rotary_of(lm).bands()
    shortest = wavelengths[wavelengths.layer_type == wavelengths.layer_type.iloc[0]].wavelength.tolist()
    frame = pd.DataFrame(
        {
            "group": range(len(groups)),
            "bands": [f"{g[0]}-{g[-1]}" if len(g) > 1 else str(g[0]) for g in groups],
            "wavelength": [shortest[g[0]] for g in groups],
            "score_drop": drops.numpy(),
            "tv": tvs.numpy(),
        }
    )
    for column, share in (("score_drop", "drop_share"), ("tv", "tv_share")):
        total = float(frame[column].clip(lower=0).sum())
        frame[share] = frame[column].clip(lower=0) / total if total > 0 else float("nan")
    return BandCollapse(
        base.cpu(), heads, [list(g) for g in groups], frame, [lm.token_str(int(i)) for i in ids[0].tolist()]
    )
