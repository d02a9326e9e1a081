"""What an intervention is measured by: a number per run, from the read-out slot's logits (and, for the prompt
mass, its attention).

    logit_diff(lm, " the", " a")   prob(lm, ",")   tv_to(reference_probs)   prompt_mass(prompt_len)
    any callable: logits (runs, vocab) -> (runs,)

Contents: :class:`Metric`, :func:`as_metric`, :func:`logit_diff`, :func:`prob`, :func:`log_prob`,
:func:`tv_to`, :func:`prompt_mass`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from tempo_lab.loaded import LoadedModel, widened


@dataclass(frozen=True)
class Metric:
    """``fn(logits (runs, vocab), attention (runs, layers, heads, kv) or None) -> (runs,)``: one number per
    run; ``needs_attention``: the read-out query's attention is captured for it."""

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    needs_attention: bool = False

    def __call__(self, logits: torch.Tensor, attention: torch.Tensor | None = None) -> torch.Tensor:
        value = self.fn(logits, attention)
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(value, dtype=torch.float32)
        if value.dim() == 0 and logits.shape[0] == 1:
            value = value[None]
        if tuple(value.shape) != (logits.shape[0],):
            raise ValueError(
                f"the metric {self.name!r} returned shape {tuple(value.shape)} for {logits.shape[0]} "
                "run(s); it must return one number per run (a tensor of shape (runs,))"
            )
        return widened(value)


def as_metric(metric: Metric | Callable[[torch.Tensor], torch.Tensor]) -> Metric:
    """A :class:`Metric` as it is, or any callable of the logits ``(runs, vocab) -> (runs,)`` as one."""
    if isinstance(metric, Metric):
        return metric
    if not callable(metric):
        raise ValueError(f"a metric must be a Metric or a callable of the logits, got {metric!r}")
    return Metric(getattr(metric, "__name__", "metric"), lambda logits, _attention: metric(logits))


def logit_diff(lm: LoadedModel, a: str | int, b: str | int) -> Metric:
    """``logit(a) - logit(b)`` at the read-out slot (tokens as text of one token, or ids)."""
    ia, ib = lm.token_id(a), lm.token_id(b)
    return Metric(
        f"logit {lm.token_str(ia)!r} - {lm.token_str(ib)!r}", lambda logits, _: logits[:, ia] - logits[:, ib]
    )


def prob(lm: LoadedModel, token: str | int) -> Metric:
    """The next-token probability of ``token``."""
    i = lm.token_id(token)
    return Metric(f"p({lm.token_str(i)!r})", lambda logits, _: torch.softmax(widened(logits), -1)[:, i])


def log_prob(lm: LoadedModel, token: str | int) -> Metric:
    """The next-token log-probability of ``token`` (smoother to climb than the probability)."""
    i = lm.token_id(token)
    return Metric(
        f"log p({lm.token_str(i)!r})", lambda logits, _: torch.log_softmax(widened(logits), -1)[:, i]
    )


def tv_to(reference: torch.Tensor, name: str = "TV") -> Metric:
    """Total variation of the next-token distribution from ``reference`` ``(vocab,)`` probabilities (finite,
    non-negative, summing to 1: refused otherwise, naming what is wrong)."""
    if not isinstance(reference, torch.Tensor) or reference.dim() != 1 or not reference.is_floating_point():
        got = tuple(reference.shape) if isinstance(reference, torch.Tensor) else type(reference).__name__
        raise ValueError(f"reference must be probabilities of shape (vocab,), got {got}")
    ref = widened(reference.detach())
    if not torch.isfinite(ref).all() or (ref < 0).any() or abs(float(ref.sum()) - 1) > 1e-3:
        raise ValueError(
            f"reference must be a probability distribution (finite, >= 0, summing to 1); it sums to "
            f"{float(ref.sum()):g} with {int((~torch.isfinite(ref)).sum())} non-finite and "
            f"{int((ref < 0).sum())} negative entries"
        )
    return Metric(
        name,
        lambda logits, _: 0.5 * (torch.softmax(widened(logits), -1) - ref.to(logits.device)).abs().sum(-1),
    )


def prompt_mass(prompt_len: int) -> Metric:
    """The read-out token's attention on the first ``prompt_len`` slots, mean over layers and heads."""
    return Metric(
        "prompt mass",
        lambda _, attention: attention[..., :prompt_len].sum(-1).mean(dim=(1, 2)),
        needs_attention=True,
    )
