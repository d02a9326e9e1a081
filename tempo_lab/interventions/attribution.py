"""Position attribution: how a metric moves with each slot's float position, through the rotary embedding.

Positions are floats, so a metric of the next-token logits is differentiable in every slot's position id (an
integer-only position table cannot say this):

    g = position_gradients(lm, ids, layout, metric)                  # g.gradient (N,)
    g = position_gradients(lm, ids, layout, metric, per_layer=True)  # g.per_layer (layers, N): sums to it
    ig = integrated_gradients(lm, ids, clean, corrupt, metric)       # ig.attributions (N,)

- **Gradients**: one forward pass with autograd and one backward, the model's weights frozen for the call
  (only the positions need a gradient). Per layer: every layer gets its own zero position offset (a
  :class:`~tempo_lab.interventions.edits.PositionEdit` per layer) and the gradient is read off each;
  by the chain rule the layers' gradients sum to the whole one.
- **Integrated gradients** along the straight path from the clean to the corrupt positions (Gauss-Legendre
  nodes, all run as one batch): ``attribution[i] = (corrupt[i] - clean[i]) * ∫ ∂metric/∂p_i dα``. The
  completeness check, ``sum(attributions) = metric(corrupt) - metric(clean)``, is reported as
  ``completeness_error`` (relative), and a warning names the number of steps to raise when it is over 1%.

Metrics that read captured attention (``prompt_mass``) carry no gradient and are refused.

Contents: :class:`PositionGradients`, :class:`IntegratedGradients`, :func:`position_gradients`,
:func:`integrated_gradients`, :func:`frozen` (the figure:
:func:`tempo_lab.interventions.display.attribution_figure`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from tempo_lab.forward import DecodingCore
from tempo_lab.interventions.edits import PositionEdit, intervene
from tempo_lab.interventions.metrics import Metric, as_metric
from tempo_lab.interventions.pairs import Tokens, check_pair, shared_tokens
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel
from tempo_lab.plumbing import checks

COMPLETENESS_TOLERANCE = 0.01  # integrated gradients warn past 1% relative error


@dataclass
class PositionGradients:
    """``value``: the metric at the layout; ``gradient`` ``(N,)``: d metric / d position per slot;
    ``per_layer`` ``(layers, N)`` when asked for (its sum over layers is ``gradient``); ``tokens``."""

    value: float
    gradient: torch.Tensor
    per_layer: torch.Tensor | None
    tokens: list[str]
    metric: str

    def frame(self) -> pd.DataFrame:
        """One row per slot: ``slot``, ``token``, ``gradient``."""
        return pd.DataFrame(
            {"slot": range(len(self.tokens)), "token": self.tokens, "gradient": self.gradient.tolist()}
        )


@dataclass
class IntegratedGradients:
    """``attributions`` ``(N,)`` per slot; ``clean`` / ``corrupt``: the metric at each end; ``difference``:
    ``corrupt - clean``; ``completeness_error``: ``|sum(attributions) - difference| / |difference|``;
    ``steps``: quadrature nodes; ``tokens``."""

    attributions: torch.Tensor
    clean: float
    corrupt: float
    steps: int
    tokens: list[str]
    metric: str

    @property
    def difference(self) -> float:
        return self.corrupt - self.clean

    @property
    def completeness_error(self) -> float:
        total = float(self.attributions.sum())
        return abs(total - self.difference) / max(abs(self.difference), 1e-12)

    def frame(self) -> pd.DataFrame:
        """One row per slot: ``slot``, ``token``, ``attribution``, ``share`` (of the difference)."""
        a = self.attributions.tolist()
        share = [v / self.difference if self.difference else float("nan") for v in a]
        return pd.DataFrame({"slot": range(len(a)), "token": self.tokens, "attribution": a, "share": share})

    def summary(self) -> str:
        return (
            f"{self.metric}: clean {self.clean:.4f}, corrupt {self.corrupt:.4f}, "
            f"difference {self.difference:+.4f}; "
            f"attributions sum to {float(self.attributions.sum()):+.4f} (completeness error "
            f"{100 * self.completeness_error:.2f}% with {self.steps} steps)"
        )


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """The model's parameters need no gradient inside the block (restored on exit): a backward pass then
    computes only what the positions need."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in trainable:
            p.requires_grad_(False)
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def _differentiable(metric: Metric | Callable) -> Metric:
    metric = as_metric(metric)
    if metric.needs_attention:
        raise ValueError(
            f"the metric {metric.name!r} reads captured attention, which carries no gradient; attribute a "
            "metric of the logits (logit_diff, prob, log_prob, tv_to or any callable of the logits)"
        )
    return metric


def _values(
    core: DecodingCore,
    ids: torch.Tensor,
    positions: torch.Tensor,
    mask: torch.Tensor | None,
    metric: Metric,
    readout: int,
) -> torch.Tensor:
    """The metric per row of ``positions`` ``(rows, N)`` under ``mask`` (a layout's, ``None``: causal), with
    the autograd graph, ``(rows,)``."""
    rows = positions.shape[0]
    logits = core.forward(ids.expand(rows, -1), Layout(positions, mask), grad=True)
    return metric(logits[:, readout])


def _readout(readout: int, n: int) -> int:
    return checks.integer_in("readout", readout, -n, n - 1) % n


def position_gradients(
    lm: LoadedModel,
    tokens: Tokens,
    layout: Layout,
    metric: Metric | Callable[[torch.Tensor], torch.Tensor],
    *,
    readout: int = -1,
    per_layer: bool = False,
) -> PositionGradients:
    """d metric / d position for every slot of ``layout`` (see the module docstring). ``tokens``: text or
    ids ``(1, N)``; ``readout``: the slot whose next-token logits the metric reads. Returns
    :class:`PositionGradients` (``gradient`` ``(N,)``; ``per_layer`` ``(layers, N)`` when ``per_layer``)."""
    metric = _differentiable(metric)
    ids = shared_tokens(lm, tokens)
    check_pair(ids, layout, layout, lm.dtype)
    readout = _readout(readout, ids.shape[1])
    core = DecodingCore(lm)
    positions = layout.positions.detach().to(lm.device, torch.float32).clone().requires_grad_(True)
    with frozen(lm.model):
        if per_layer:
            from tempo_lab.interventions.rotary import Rotary  # the model must have rotary units per layer

            n_layers = Rotary(lm).n_layers
            offsets = torch.zeros(n_layers, ids.shape[1], device=lm.device, requires_grad=True)
            edits = [PositionEdit(offsets[i], layers=[i]) for i in range(n_layers)]
            with intervene(lm, *edits):
                value = _values(core, ids, positions, layout.mask, metric, readout)
            value.sum().backward()
            layer_grads = offsets.grad.detach().cpu()
        else:
            value = _values(core, ids, positions, layout.mask, metric, readout)
            value.sum().backward()
            layer_grads = None
    gradient = positions.grad[0].detach().cpu()
    tokens_ = [lm.token_str(int(i)) for i in ids[0].tolist()]
    return PositionGradients(float(value.detach()[0]), gradient, layer_grads, tokens_, metric.name)


def integrated_gradients(
    lm: LoadedModel,
    tokens: Tokens,
    clean: Layout,
    corrupt: Layout,
    metric: Metric | Callable[[torch.Tensor], torch.Tensor],
    *,
    steps: int = 32,
    readout: int = -1,
    batch_size: int = 16,
) -> IntegratedGradients:
    """Integrated gradients of ``metric`` along the straight path of positions from ``clean`` to ``corrupt``
    (same tokens, same mask: the path moves positions only), with ``steps`` Gauss-Legendre nodes run
    ``batch_size`` at a time. Returns :class:`IntegratedGradients` (``attributions`` ``(N,)``)."""
    metric = _differentiable(metric)
    steps, batch_size = checks.count("steps", steps), checks.count("batch_size", batch_size)
    ids = shared_tokens(lm, tokens)
    check_pair(ids, clean, corrupt, lm.dtype)
    if not torch.equal(clean.full_mask(lm.dtype), corrupt.full_mask(lm.dtype)):
        raise ValueError(
            f"the {clean.label} and {corrupt.label} layouts have different masks; integrated gradients move "
            "positions along a path and a mask cannot be interpolated: attribute a pair that differs in "
            "positions only, or patch activations across the two (tempo_lab.interventions.patch)"
        )
    readout = _readout(readout, ids.shape[1])
    core, mask = DecodingCore(lm), clean.mask
    a = clean.positions.to(lm.device, torch.float32)
    b = corrupt.positions.to(lm.device, torch.float32)
    nodes, weights = np.polynomial.legendre.leggauss(steps)  # on [-1, 1]
    alphas = torch.tensor((nodes + 1) / 2, dtype=torch.float32, device=lm.device)
    weights_ = torch.tensor(weights / 2, dtype=torch.float32, device=lm.device)
    grad_sum = torch.zeros(ids.shape[1], device=lm.device)
    with frozen(lm.model):
        for start in range(0, steps, batch_size):
            alpha = alphas[start : start + batch_size, None]
            path = (a + alpha * (b - a)).detach().requires_grad_(True)  # (rows, N)
            _values(core, ids, path, mask, metric, readout).sum().backward()
            grad_sum += (weights_[start : start + batch_size, None] * path.grad).sum(0)
        ends = core.forward(ids.expand(2, -1), Layout(torch.cat([a, b]), mask))
    values = metric(ends[:, readout])
    result = IntegratedGradients(
        ((b - a)[0] * grad_sum).detach().cpu(),
        float(values[0]),
        float(values[1]),
        steps,
        [lm.token_str(int(i)) for i in ids[0].tolist()],
        metric.name,
    )
    if result.completeness_error > COMPLETENESS_TOLERANCE:
        warnings.warn(
            f"integrated gradients with {steps} steps miss completeness by "
            f"{100 * result.completeness_error:.1f}% (over {100 * COMPLETENESS_TOLERANCE:g}%): raise steps",
            stacklevel=2,
        )
    return result
