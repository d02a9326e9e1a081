"""What one phenomenon is, for the registries built from every slice in one table
(:mod:`tempo_lab.phenomena`).

Contents: :class:`Phenomenon`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import torch

from tempo_lab.claims import Claim
from tempo_lab.loaded import LoadedModel
from tempo_lab.phenomena.conditions import Batch, Conditions


@dataclass(frozen=True)
class Phenomenon:
    """One phenomenon, by one ``name`` everywhere (its package, study table, view, explorer tab, claims).

    ``notebook``: the notebook that shows it (``"01"``); ``title``: its tab title; ``study``: its slice's
    study module, holding ``measure`` (the batched study measurement, one dict per prompt x condition),
    ``single_rows`` (the same rows for one prompt, computed alone through the single-prompt generators: the
    independent path the tests check ``measure`` against) and ``CLAIMS`` (the claims its numbers decide;
    ``claims`` given: those instead); ``explorer``: its display module has a live explorer (the dashboard
    imports it: :mod:`tempo_lab.phenomena.dashboard`); ``default_study``: whether a study measures it unless
    told which (notebook 06's six do; notebook 09's localisation, at ~2 s per prompt on the bundled model, is
    asked for by name)."""

    name: str
    notebook: str
    title: str
    study: ModuleType | None = None
    claims: tuple[Claim, ...] | None = None
    explorer: bool = False
    default_study: bool = True

    @property
    def measure(self) -> Callable[[LoadedModel, Batch, Conditions], list[dict]] | None:
        return None if self.study is None else self.study.measure

    @property
    def single(self) -> Callable[[LoadedModel, int, torch.Tensor, Conditions], list[dict]] | None:
        return None if self.study is None else self.study.single_rows

    @property
    def decided(self) -> tuple[Claim, ...]:
        """The claims its numbers decide."""
        if self.claims is not None:
            return self.claims
        return tuple(getattr(self.study, "CLAIMS", ()))
