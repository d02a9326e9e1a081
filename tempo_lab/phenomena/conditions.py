"""What a study sweeps, and the batch its measurements take: the shared base of every phenomenon's study.

Contents: :class:`Conditions` (the sweeps of every measurement; a results folder's identity holds them),
:data:`Batch` (``[(prompt index, ids (1, T)), ...]``), :func:`context_needed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from tempo_lab.plumbing import checks

Batch = Sequence[tuple[int, torch.Tensor]]


@dataclass(frozen=True)
class Conditions:
    """What each measurement sweeps. Gap lists start at 0, the reference every other gap is compared with.

    The defaults keep a study of the bundled 302 prompts to a few minutes on a 2-core CPU."""

    dropout_gaps: tuple[float, ...] = (0, 5, 20)
    dropout_strategies: tuple[str, ...] = ("default_no_cache", "additive_4d")
    retro_gaps: tuple[float, ...] = (0, 6, 16, 46, 96)
    mode_threshold: float = 0.1
    mode_steps: int = 6
    compressed_gaps: tuple[float, ...] = (0, 5, 10, 20)
    compressed_candidates: int = 3
    compressed_threshold: float = 0.05
    path_length: int = 5
    tempo_thresholds: tuple[float, ...] = (0.05, 0.1, 0.2)
    tempo_steps: int = 6

    def __post_init__(self) -> None:
        for name in ("dropout_gaps", "retro_gaps", "compressed_gaps"):
            gaps = getattr(self, name)
            if isinstance(gaps, (str, int, float)) or not gaps:
                raise ValueError(f"{name} must be a list of gaps starting at 0, got {gaps!r}")
            for i, g in enumerate(gaps):
                checks.nonnegative(f"{name}[{i}]", g)
            if gaps[0] != 0 or len(set(gaps)) != len(gaps):
                raise ValueError(f"{name} must start at 0 and hold distinct gaps >= 0, got {gaps!r}")
        for name in ("mode_steps", "tempo_steps", "path_length", "compressed_candidates"):
            checks.count(name, getattr(self, name))
        thresholds = {"mode_threshold": self.mode_threshold}
        thresholds["compressed_threshold"] = self.compressed_threshold
        thresholds |= {f"tempo_thresholds[{i}]": t for i, t in enumerate(self.tempo_thresholds)}
        for name, t in thresholds.items():
            if not 0 < checks.number(name, t) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {t!r}")

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> Conditions:
        """The inverse of :meth:`as_dict` (a results folder's manifest holds that form)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def context_needed(prompt_len: int, cond: Conditions) -> int:
    """The largest position any measurement gives a prompt of ``prompt_len`` tokens, plus one."""
    return int(
        prompt_len
        + max(
            max(cond.dropout_gaps) + 1,
            max(cond.retro_gaps) + 1,
            max(cond.compressed_gaps) + cond.path_length + 1,
            cond.mode_steps,
            cond.tempo_steps,
        )
    )
