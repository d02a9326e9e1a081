"""Generators built on the one forward (:mod:`tempo_lab.forward`) and one loop (:mod:`.loop`).

- :class:`RetroactivePositionGenerator`: one token re-evaluated at many positions (one batched forward):
  a new token after the prompt (``explore``), or the prompt's last token on a fine grid (``sweep``).
- :class:`CompressedThoughtGenerator`: candidates placed after a position gap, expanded as one batch of paths.
- :class:`ParallelTokenGenerator`: TEMPO parallel tokens sharing one position, isolated or visible, with
  later-token visibility, threshold schedules (:mod:`.schedules`) and retroactive pruning by attention
  (:class:`Pruning`).

Options are frozen dataclasses (:mod:`.options`: :class:`CompressedOptions`, :class:`ParallelOptions`) that
``generate`` and ``plan`` share; their fields are also taken as keywords.
"""

from tempo_lab.generators.compressed import (
    Candidate,
    CompressedResult,
    CompressedThoughtGenerator,
    ThoughtPath,
)
from tempo_lab.generators.options import CompressedOptions, ParallelOptions, Pruning
from tempo_lab.generators.parallel import (
    ParallelResult,
    ParallelStep,
    ParallelTokenGenerator,
    bracket_text,
)
from tempo_lab.generators.retroactive import (
    PositionSweep,
    RetroactivePositionGenerator,
    RetroactiveResult,
)

__all__ = [
    "Candidate",
    "CompressedOptions",
    "CompressedResult",
    "CompressedThoughtGenerator",
    "ParallelOptions",
    "ParallelResult",
    "ParallelStep",
    "ParallelTokenGenerator",
    "PositionSweep",
    "Pruning",
    "RetroactivePositionGenerator",
    "RetroactiveResult",
    "ThoughtPath",
    "bracket_text",
]
