"""What a phenomenon slice declares, so that the registries (study measurements, live explorers, claims) are
built from the slices in one place (:mod:`tempo_lab.phenomena`), and how a slice's package serves its display
names without importing them.

Contents: :class:`Phenomenon`, :func:`display_attributes`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

import torch

from tempo_lab.loaded import LoadedModel
from tempo_lab.studies.claims import Claim
from tempo_lab.studies.conditions import Batch, Conditions

if TYPE_CHECKING:  # pragma: no cover - the display side, imported on first use only
    from tempo_lab.live.session import LiveSession
    from tempo_lab.views import View


@dataclass(frozen=True)
class Phenomenon:
    """One phenomenon, by one ``name`` everywhere (module, study table, view, explorer tab, claim).

    ``notebook``: the notebook that shows it (``"01"``); ``title``: its tab title; ``measure``: its batched
    study measurement (one dict per prompt x condition); ``single``: the same rows for one prompt, computed
    alone through the single-prompt generators (the independent path the tests check ``measure`` against);
    ``explorer``: the display module whose ``explorer(session)`` is its live explorer (imported only when
    the dashboard asks: :meth:`live_explorer`); ``claims``: the seed claims its numbers decide;
    ``default_study``: whether a study measures it unless told which (notebook 06's six do; notebook 09's
    localisation, at ~2 s per prompt on the bundled model, is asked for by name)."""

    name: str
    notebook: str
    title: str
    measure: Callable[[LoadedModel, Batch, Conditions], list[dict]] | None = None
    single: Callable[[LoadedModel, int, torch.Tensor, Conditions], list[dict]] | None = None
    explorer: str | None = None
    claims: tuple[Claim, ...] = ()
    default_study: bool = True

    def live_explorer(self) -> Callable[[LiveSession], View] | None:
        """The live explorer, from its display module (which loads matplotlib and ipywidgets)."""
        return None if self.explorer is None else import_module(self.explorer).explorer


def display_attributes(package: str, names: Sequence[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a slice's package: ``names`` come from ``<package>.display`` on first
    use, so importing the slice (its probe, its study) loads no plotting or widget library."""
    shown = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name not in shown:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.display"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
