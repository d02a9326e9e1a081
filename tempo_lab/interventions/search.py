"""Position search: the float positions of chosen slots that maximise a metric, by gradient ascent, checked on
a grid.

The seed notes' "semantic search: find the optimal position for a desired semantic context":

    found = search_positions(lm, ids, layout, [n - 1], log_prob(lm, " Paris"), bounds=(n - 1, n + 40))
    found.summary()     # the ascent's best against the grid's best, and whether they agree
    search_figure(found)

- **Ascent**: the chosen slots' positions are parameters, clamped into ``bounds`` after every Adam step
  (cosine-annealed step size) and kept in slot order (positions never decrease). ``restarts`` runs start
  evenly spaced across the bounds and run together as one batch, one forward and one backward pass per step.
- **Grid**: a fine grid over the same bounds (one or two slots), evaluated batched without gradients. The
  ascent agrees with the grid when its best value is at least the grid's best, or its position is within one
  grid step of the grid's best point.

Contents: :class:`PositionSearch`, :func:`search_positions` (its figure:
:func:`tempo_lab.interventions.display.search_figure`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from tempo_lab.forward import DecodingCore
from tempo_lab.interventions.attribution import _differentiable, _readout, frozen
from tempo_lab.interventions.metrics import Metric
from tempo_lab.interventions.pairs import Tokens, check_pair, shared_tokens
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel
from tempo_lab.plumbing import checks

MAX_GRID_SLOTS = 2  # a grid over more slots grows as grid ** slots


@dataclass
class PositionSearch:
    """A position search over ``slots`` (``k`` of them).

    ``positions`` ``(k,)`` / ``value``: the ascent's best; ``trajectory`` ``(steps + 1, restarts, k)`` and
    ``values`` ``(steps + 1, restarts)``: every restart's path; ``grid`` ``(G, k)`` / ``grid_values`` ``(G,)``
    and ``grid_step`` (``None`` for more than two slots); ``bounds`` ``(k, 2)``; ``tokens``; ``metric``."""

    slots: list[int]
    positions: torch.Tensor
    value: float
    trajectory: torch.Tensor
    values: torch.Tensor
    grid: torch.Tensor | None
    grid_values: torch.Tensor | None
    grid_step: float | None
    bounds: torch.Tensor
    tokens: list[str]
    metric: str

    @property
    def grid_best(self) -> tuple[torch.Tensor, float] | None:
        """``(positions (k,), value)`` of the best grid point."""
        if self.grid_values is None:
            return None
        i = int(self.grid_values.argmax())
        return self.grid[i], float(self.grid_values[i])

    @property
    def agrees(self) -> bool | None:
        """The ascent's best is at least the grid's best, or within one grid step of it (``None``: no
        grid)."""
        if self.grid_best is None:
            return None
        where, value = self.grid_best
        close = float((self.positions - where).abs().max()) <= self.grid_step + 1e-6
        return self.value >= value - 1e-6 or close

    def summary(self) -> str:
        found = ", ".join(
            f"slot {s} at {p:.3f}" for s, p in zip(self.slots, self.positions.tolist(), strict=True)
        )
        text = f"ascent: {found}, {self.metric} = {self.value:.4f}"
        if self.grid_best is not None:
            where, value = self.grid_best
            at = ", ".join(f"{p:.3f}" for p in where.tolist())
            verdict = "agrees" if self.agrees else "DISAGREES"
            text += f"; grid (step {self.grid_step:.3g}): {at}, {value:.4f}; the ascent {verdict}"
        return text


def _bounds(layout: Layout, slots: list[int], bounds) -> torch.Tensor:
    """``(k, 2)`` bounds, checked: finite, ``lo <= hi``, and no searched slot can pass an unsearched
    neighbour (positions must not decrease)."""
    given = torch.as_tensor(bounds, dtype=torch.float64)
    if given.shape == (2,):
        given = given.expand(len(slots), 2)
    if tuple(given.shape) != (len(slots), 2):
        raise ValueError(f"bounds must be (lo, hi) or one (lo, hi) per slot ({len(slots)}), got {bounds!r}")
    p = layout.positions[0].double()
    searched = set(slots)
    for (lo, hi), s in zip(given.tolist(), slots, strict=True):
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi or lo < 0:
            raise ValueError(f"the bounds of slot {s}, ({lo:g}, {hi:g}), must be finite with 0 <= lo <= hi")
        before = [i for i in range(s) if i not in searched]
        after = [i for i in range(s + 1, len(p)) if i not in searched]
        if before and lo < (floor := float(p[before[-1]])):
            raise ValueError(
                f"the bounds of slot {s} start at {lo:g}, before slot {before[-1]}'s position {floor:g}: "
                f"positions must not decrease; start at {floor:g} or later"
            )
        if after and hi > (ceiling := float(p[after[0]])):
            raise ValueError(
                f"the bounds of slot {s} reach {hi:g}, past slot {after[0]}'s position {ceiling:g}: "
                f"positions must not decrease; end at {ceiling:g} or earlier"
            )
    return given.float()


def _project(x: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """``x`` ``(rows, k)`` clamped into the bounds and made non-decreasing along the slots."""
    x = torch.maximum(torch.minimum(x, bounds[:, 1]), bounds[:, 0])
    return torch.cummax(x, dim=1).values


def search_positions(
    lm: LoadedModel,
    tokens: Tokens,
    layout: Layout,
    slots: int | Sequence[int],
    metric: Metric | Callable[[torch.Tensor], torch.Tensor],
    *,
    bounds: tuple[float, float] | Sequence[tuple[float, float]],
    restarts: int = 8,
    steps: int = 60,
    lr: float | None = None,
    grid: int = 161,
    readout: int = -1,
    batch_size: int = 64,
) -> PositionSearch:
    """Maximise ``metric`` over the positions of ``slots`` within ``bounds`` (see the module docstring).
    ``lr``: the Adam step in positions (default 3% of the widest bound); ``grid``: points per slot of the
    check grid (two slots: ``min(grid, 41)`` each; more: no grid). Returns :class:`PositionSearch`."""
    metric = _differentiable(metric)
    ids = shared_tokens(lm, tokens)
    check_pair(ids, layout, layout, lm.dtype)
    n = ids.shape[1]
    readout = _readout(readout, n)
    slots = [checks.integer_in(f"slots[{i}]", s, 0, n - 1) for i, s in enumerate(checks.as_list(slots))]
    if len(set(slots)) != len(slots) or slots != sorted(slots):
        raise ValueError(f"slots must be distinct and in increasing order, got {slots}")
    restarts, steps = checks.count("restarts", restarts), checks.count("steps", steps)
    box = _bounds(layout, slots, bounds).to(lm.device)
    width = float((box[:, 1] - box[:, 0]).max())
    lr = 0.03 * width if lr is None else checks.positive("lr", lr)
    core, mask = DecodingCore(lm), layout.mask
    base = layout.positions.to(lm.device, torch.float32)
    index = torch.tensor(slots, device=lm.device)

    def evaluate(x: torch.Tensor, grad: bool) -> torch.Tensor:
        """The metric at the chosen slots' positions ``x`` ``(rows, k)``, ``(rows,)``."""
        positions = base.expand(x.shape[0], -1).index_copy(1, index, x)
        logits = core.forward(ids.expand(x.shape[0], -1), Layout(positions, mask), grad=grad)
        return metric(logits[:, readout])

    fractions = (torch.arange(restarts, device=lm.device, dtype=torch.float32)[:, None] + 0.5) / restarts
    x = _project(box[:, 0] + fractions * (box[:, 1] - box[:, 0]), box).requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)  # large steps first, then settle
    path, values = [], []
    with frozen(lm.model):
        for _ in range(steps):
            value = evaluate(x, grad=True)
            path.append(x.detach().clone())
            values.append(value.detach())
            optimiser.zero_grad()
            (-value.sum()).backward()
            optimiser.step()
            schedule.step()
            with torch.no_grad():
                x.copy_(_project(x, box))
        path.append(x.detach().clone())
        values.append(evaluate(x.detach(), grad=False))
    trajectory, values_ = torch.stack(path).cpu(), torch.stack(values).cpu()
    best = int(values_.flatten().argmax())
    step, row = divmod(best, restarts)
    grid_points = grid_values = step_size = None
    if len(slots) <= MAX_GRID_SLOTS:
        per_slot = checks.count("grid", grid) if len(slots) == 1 else min(checks.count("grid", grid), 41)
        axes = [torch.linspace(float(lo), float(hi), per_slot) for lo, hi in box.tolist()]
        grid_points = torch.cartesian_prod(*axes).reshape(-1, len(slots))
        keep = (grid_points[:, 1:] >= grid_points[:, :-1]).all(1) if len(slots) > 1 else slice(None)
        grid_points = grid_points[keep]
        grid_values = torch.cat(
            [
                evaluate(grid_points[i : i + batch_size].to(lm.device), grad=False).cpu()
                for i in range(0, len(grid_points), batch_size)
            ]
        )
        step_size = max(float(a[1] - a[0]) if len(a) > 1 else 0.0 for a in axes)
    return PositionSearch(
        slots,
        trajectory[step, row],
        float(values_[step, row]),
        trajectory,
        values_,
        grid_points,
        grid_values,
        step_size,
        box.cpu(),
        [lm.token_str(int(i)) for i in ids[0].tolist()],
        metric.name,
    )
