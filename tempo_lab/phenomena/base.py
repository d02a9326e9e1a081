"""What a phenomenon slice declares, so that the registries (study measurements, live explorers, claims) are
built from the slices in one place (:mod:`tempo_lab.phenomena`).

Contents: :class:`Phenomenon`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from tempo_lab.live.session import LiveSession
from tempo_lab.loaded import LoadedModel
from tempo_lab.studies.claims import Claim
from tempo_lab.studies.conditions import Batch, Conditions
from tempo_lab.views import View


@dataclass(frozen=True)
class Phenomenon:
    """One phenomenon, by one ``name`` everywhere (module, study table, view, explorer tab, claim).

    ``notebook``: the notebook that shows it (``"01"``); ``title``: its tab title; ``measure``: its batched
    study measurement (one dict per prompt x condition); ``single``: the same rows for one prompt, computed
    alone through the single-prompt generators (the independent path the tests check ``measure`` against);
    ``explorer``: its live explorer on a session; ``claims``: the seed claims its numbers decide;
    ``default_study``: whether a study measures it unless told which (notebook 06's six do; notebook 09's
    localisation, at ~2 s per prompt on the bundled model, is asked for by name)."""

    name: str
    notebook: str
    title: str
    measure: Callable[[LoadedModel, Batch, Conditions], list[dict]] | None = None
    single: Callable[[LoadedModel, int, torch.Tensor, Conditions], list[dict]] | None = None
    explorer: Callable[[LiveSession], View] | None = None
    claims: tuple[Claim, ...] = ()
    default_study: bool = True
