"""The phenomena, one slice each, and the registries built from them in one table.

A slice is one subpackage named for its phenomenon; that one name is used everywhere: its study table, its
view, its live explorer's tab, its claims. Every slice has the same roles, each in its own module (only the
roles a slice has): ``probe`` (its single-prompt drivers, typed results, pure summaries and tables),
``display`` (its figures, the one ``render(result, **controls)`` that its replay view and its live explorer
share, the study's figure: the only module of a slice that imports matplotlib or ipywidgets; import it by
name) and ``study`` (its batched study measurement with the same rows computed one prompt at a time, and the
claims its numbers decide). :data:`PHENOMENA` declares every slice, one line each; adding one is one package
and one line there.

- :mod:`.gap_dropout` (01), :mod:`.fractional` (02), :mod:`.retroactive` (03), :mod:`.isolation` and
  :mod:`.tempo_sets` (04), :mod:`.compressed` (05), :mod:`.pruning` and :mod:`.hidden_sets` (07),
  :mod:`.localisation` (09: where the others act in the network);
- :mod:`.conditions` (what a study sweeps) and :mod:`.batching` (prompts stepped together), what the slices'
  study measurements share; :mod:`.dashboard`, every slice's live explorer as a tab.

Registries: :data:`PHENOMENA`, :data:`MEASURES` (the study's tables; :data:`DEFAULT_STUDY` those a study
runs unless told which), :data:`SINGLE`, :data:`CLAIMS`; :func:`claims_table` decides every claim of the
phenomena a study measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from tempo_lab import claims as _claims
from tempo_lab.caches import cache_claims as _caches
from tempo_lab.long_context import evidence as _long_context
from tempo_lab.phenomena.compressed import study as _compressed
from tempo_lab.phenomena.fractional import study as _fractional
from tempo_lab.phenomena.gap_dropout import study as _gap_dropout
from tempo_lab.phenomena.isolation import study as _isolation
from tempo_lab.phenomena.localisation import study as _localisation
from tempo_lab.phenomena.localisation import summary as _localisation_summary
from tempo_lab.phenomena.phenomenon import Phenomenon
from tempo_lab.phenomena.retroactive import study as _retroactive
from tempo_lab.phenomena.tempo_sets import study as _tempo_sets
from tempo_lab.tpi import length_claims as _lengths

#: every phenomenon, in the order of the notebooks
PHENOMENA: tuple[Phenomenon, ...] = (
    Phenomenon("gap_dropout", "01", "Gap dropout", _gap_dropout, explorer=True),
    Phenomenon("fractional", "02", "Fractional", _fractional, explorer=True),
    Phenomenon("retroactive", "03", "Retroactive", _retroactive, explorer=True),
    Phenomenon("isolation", "04", "Isolated vs visible", _isolation),
    Phenomenon("compressed", "05", "Compressed", _compressed, explorer=True),
    Phenomenon("tempo_sets", "04", "TEMPO sets", _tempo_sets, explorer=True),
    Phenomenon("pruning", "07", "Pruning"),
    Phenomenon("hidden_sets", "07", "Hidden sets"),
    Phenomenon(
        "localisation",
        "09",
        "Where position acts",
        _localisation,
        _localisation_summary.CLAIMS,
        default_study=False,
    ),  # fmt: skip
)
MEASURES = {p.name: p.measure for p in PHENOMENA if p.measure is not None}
DEFAULT_STUDY = tuple(p.name for p in PHENOMENA if p.measure is not None and p.default_study)
SINGLE = {p.name: p.single for p in PHENOMENA if p.single is not None}
CLAIMS = tuple(c for p in PHENOMENA for c in p.decided)
#: every claim the package decides, the prompt studies' and the other notebooks'
ALL_CLAIMS = CLAIMS + _lengths.CLAIMS + _long_context.CLAIMS + _caches.CLAIMS


def claims_table(
    study: Any, single: Mapping[str, Mapping[str, Any]], phenomena: Sequence[str] | None = None
) -> pd.DataFrame:
    """Every claim of :data:`CLAIMS` whose phenomenon ``study`` measured (and that is in ``phenomena``, when
    given: a folder may hold more measurements than one notebook decides), decided over it
    (:func:`tempo_lab.claims.claims_table`); ``single``: notebook number -> that notebook's key numbers."""
    return _claims.claims_table(study, single, chosen(study, phenomena))


def chosen(study: Any, phenomena: Sequence[str] | None) -> list:
    """The claims of the phenomena ``study`` measured (and in ``phenomena``, when given)."""
    wanted = set(phenomena) if phenomena is not None else {p.name for p in PHENOMENA}
    measured = set(study.phenomena) & wanted
    return [c for c in CLAIMS if c.phenomenon in measured]


__all__ = [
    "CLAIMS",
    "DEFAULT_STUDY",
    "MEASURES",
    "PHENOMENA",
    "SINGLE",
    "Phenomenon",
    "chosen",
    "ALL_CLAIMS",
    "claims_table",
]
