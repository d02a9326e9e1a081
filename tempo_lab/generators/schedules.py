"""Threshold schedules for TEMPO: a selection threshold that changes over the steps.

TEMPO's dynamic threshold rises from a start value to an end value along a curve of the run's progress
``step / steps``: a cubic Bezier with control points ``p1``, ``p2`` (from 0 to 1), or a ReLU that holds the
start value until ``activation`` and then rises linearly. Any callable ``step -> threshold`` works too; the
generator checks every step's value before the model runs.

    ParallelTokenGenerator(lm).generate(prompt, threshold=schedules.bezier(0.05, 0.5, steps=15))

Contents: :class:`Rise` (the shared form), :class:`Bezier`, :class:`Relu`, :func:`bezier`, :func:`relu`,
:func:`thresholds`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tempo_lab.plumbing import checks

Schedule = Callable[[int], float]


@dataclass(frozen=True)
class Rise:
    """``start + (end - start) * shape(min(1, step / steps))``; subclasses give the ``shape`` from 0 to 1."""

    start: float
    end: float
    steps: int

    def __call__(self, step: int) -> float:
        return self.start + (self.end - self.start) * self.shape(min(1.0, step / self.steps))

    def shape(self, t: float) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class Bezier(Rise):
    """The cubic Bezier through 0, ``p1``, ``p2``, 1 (TEMPO's default curve: 0.2, 0.8)."""

    p1: float = 0.2
    p2: float = 0.8

    def shape(self, t: float) -> float:
        return 3 * (1 - t) ** 2 * t * self.p1 + 3 * (1 - t) * t**2 * self.p2 + t**3


@dataclass(frozen=True)
class Relu(Rise):
    """Flat until ``activation``, then a straight rise to 1 at the last step."""

    activation: float = 0.5

    def shape(self, t: float) -> float:
        return max(0.0, t - self.activation) / (1 - self.activation)


def _unit(name: str, value: float, *, below_one: bool = False) -> float:
    v = checks.number(name, value)
    if not 0 <= v <= 1 or (below_one and v == 1):
        raise ValueError(f"{name} must be in [0, {'1)' if below_one else '1]'}, got {value!r}")
    return v


def bezier(start: float, end: float, *, steps: int, p1: float = 0.2, p2: float = 0.8) -> Bezier:
    """A Bezier schedule over ``steps`` steps; the control points lie in [0, 1]."""
    start, end = checks.probability("start", start), checks.probability("end", end)
    return Bezier(start, end, checks.count("steps", steps), _unit("p1", p1), _unit("p2", p2))


def relu(start: float, end: float, *, steps: int, activation: float = 0.5) -> Relu:
    """A ReLU schedule; ``activation`` is the fraction of the run before the threshold starts rising."""
    start, end = checks.probability("start", start), checks.probability("end", end)
    return Relu(start, end, checks.count("steps", steps), _unit("activation", activation, below_one=True))


def thresholds(threshold: float | Schedule, n_steps: int) -> list[float]:
    """The threshold of each of ``n_steps`` steps: a constant, or a schedule's value at every step, each
    checked to be a probability in (0, 1] (the message names the step)."""
    if callable(threshold):
        name = "the threshold schedule at step {}"
        return [checks.probability(name.format(k), threshold(k)) for k in range(n_steps)]
    return [checks.probability("threshold", threshold)] * n_steps
