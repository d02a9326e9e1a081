"""What a generator run does, as frozen dataclasses that ``generate`` and ``plan`` share and policies read.

    CompressedThoughtGenerator(lm).generate(prompt, gap=10, path_length=5)          # fields as keywords
    opts = CompressedOptions(gap=10, path_length=5)
    CompressedThoughtGenerator(lm).generate(prompt, opts)                            # or as one object
    CompressedThoughtGenerator(lm).generate(prompt, opts, threshold=0.1)             # with changes

Every field is checked when the options are made (a ``ValueError`` naming the field and its value), so a run
that starts has valid options; checks that need the model (a fractional gap on a position table, positions
past the context) are the generators' ``plan``.

Contents: :class:`CompressedOptions`, :class:`ParallelOptions` and its :class:`Pruning`, :func:`resolve`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from tempo_lab import masks
from tempo_lab.generators.schedules import thresholds as schedule_thresholds
from tempo_lab.plumbing import checks

INTRASET_MODES = masks.INTRASET_MODES
NEXT_DIST_MODES = ("mixture", "last")

Options = TypeVar("Options", "CompressedOptions", "ParallelOptions")


@dataclass(frozen=True)
class Pruning:
    """Prune members whose share of the next ``window`` steps' attention is below ``threshold``.

    ``layers`` / ``heads``: which attention to average (``None`` = all); ``recompute``: rebuild the cache
    without the pruned members instead of closing their mask columns.
    """

    threshold: float
    window: int = 2
    layers: Sequence[int] | None = None
    heads: Sequence[int] | None = None
    recompute: bool = False

    def __post_init__(self) -> None:
        if not checks.is_number(self.threshold) or not 0 <= self.threshold <= 1:
            raise ValueError(f"the pruning threshold must be in [0, 1], got {self.threshold!r}")
        if not isinstance(self.window, int) or isinstance(self.window, bool) or self.window < 1:
            raise ValueError(f"the pruning window W must be an integer >= 1, got {self.window!r}")


def resolve(cls: type[Options], options: Options | None, changes: dict[str, Any]) -> Options:
    """``options`` (default ``cls()``) with ``changes`` applied; every field checked."""
    if options is None:
        return cls(**changes)
    if not isinstance(options, cls):
        raise ValueError(f"options must be a {cls.__name__}, got {options!r}")
    return replace(options, **changes) if changes else options


def _normalise(obj: Any, **values: Any) -> None:
    """Store checked values on a frozen dataclass (from its ``__post_init__``)."""
    for name, value in values.items():
        object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class CompressedOptions:
    """A compressed-thought run (:meth:`CompressedThoughtGenerator.generate
    <tempo_lab.generators.compressed.CompressedThoughtGenerator.generate>` documents each field).

    ``gap``: positions skipped before the candidates, or ``"entropy"`` (``round(gap_per_nat * H)``, at most
    ``max_gap``); ``threshold``, ``max_candidates``: which candidates; ``path_length``: tokens after each;
    ``sample``, ``temperature``, ``seed``: greedy or seeded sampling; ``keep_logits``: store each path's
    logits."""

    gap: float | str = 5
    threshold: float = 0.05
    max_candidates: int = 5
    path_length: int = 10
    sample: bool = False
    temperature: float = 1.0
    seed: int = 0
    keep_logits: bool = False
    gap_per_nat: float = 2.0
    max_gap: float = 20.0

    def __post_init__(self) -> None:
        if self.gap == "entropy":
            _normalise(self, gap_per_nat=checks.nonnegative("gap_per_nat", self.gap_per_nat),
                       max_gap=checks.nonnegative("max_gap", self.max_gap))  # fmt: skip
        else:
            _normalise(self, gap=checks.nonnegative("gap", self.gap))
        checks.seed(self.seed)
        _normalise(
            self,
            threshold=checks.probability("threshold", self.threshold),
            max_candidates=checks.count("max_candidates", self.max_candidates),
            path_length=checks.count("path_length", self.path_length),
            temperature=checks.positive("temperature", self.temperature),
        )

    @property
    def furthest_gap(self) -> float:
        """The largest gap the run can place its candidates at."""
        return self.max_gap if self.gap == "entropy" else float(self.gap)


@dataclass(frozen=True)
class ParallelOptions:
    """A TEMPO run (:meth:`ParallelTokenGenerator.generate
    <tempo_lab.generators.parallel.ParallelTokenGenerator.generate>` documents each field).

    ``threshold`` (a probability, or a schedule of the step), ``max_steps``, ``max_set_size``, ``top_p``:
    which sets; ``intraset``, ``later``: what members and later tokens see; ``next_dist``: how the next
    distribution is formed; ``prune``: retroactive pruning; ``sample``, ``temperature``, ``seed``: the
    fallback member's draw; ``forced_sets``: replay these sets instead of selecting."""

    threshold: float | Callable[[int], float] = 0.1
    max_steps: int = 15
    max_set_size: int = 5
    intraset: str = "isolated"
    later: str = "all"
    next_dist: str = "mixture"
    top_p: float | None = None
    prune: Pruning | None = None
    seed: int = 0
    sample: bool = False
    temperature: float = 1.0
    forced_sets: Sequence[Sequence[int | str]] | None = None

    def __post_init__(self) -> None:
        if self.prune is not None and not isinstance(self.prune, Pruning):
            raise ValueError(f"prune must be a tempo_lab.generators.Pruning, got {self.prune!r}")
        if self.forced_sets is not None and (
            isinstance(self.forced_sets, str) or not isinstance(self.forced_sets, Sequence)
            or len(self.forced_sets) == 0
        ):  # fmt: skip
            raise ValueError("forced_sets must be a non-empty list of sets (lists of token ids or texts)")
        checks.seed(self.seed)
        _normalise(
            self,
            max_steps=checks.count("max_steps", self.max_steps),
            max_set_size=checks.count("max_set_size", self.max_set_size),
            intraset=checks.choice("intraset", self.intraset, INTRASET_MODES),
            later=checks.choice("later", self.later, masks.LATER_MODES),
            next_dist=checks.choice("next_dist", self.next_dist, NEXT_DIST_MODES),
            top_p=None if self.top_p is None else checks.probability("top_p", self.top_p),
            temperature=checks.positive("temperature", self.temperature),
        )
        if not callable(self.threshold):
            _normalise(self, threshold=checks.probability("threshold", self.threshold))

    @property
    def n_steps(self) -> int:
        """Sets the run feeds at most: ``max_steps``, or the number of replayed sets."""
        return self.max_steps if self.forced_sets is None else len(self.forced_sets)

    def thresholds(self) -> list[float]:
        """The selection threshold of every step, each checked (a schedule's message names the step)."""
        return schedule_thresholds(self.threshold, self.n_steps)

