"""The phenomena, one slice each, and the registries built from them in one place.

A slice is one subpackage named for its phenomenon; that one name is used everywhere: its study table, its
view, its live explorer's tab, its claims. Every slice has the same roles, each in its own module (only the
roles a slice has): ``probe`` (its single-prompt drivers, typed results, pure summaries and tables),
``display`` (its figures, the one ``render(result, **controls)`` that its replay view and its live explorer
share, the study's figure: the only module of a slice that imports matplotlib or ipywidgets, loaded when one
of its names is first used) and ``study`` (its batched study measurement with the same rows computed one
prompt at a time, and the seed claims its numbers decide). It declares them in a
:class:`~tempo_lab.phenomena.phenomenon.Phenomenon`. Adding one is one package and one line in
:data:`PHENOMENA`.

- :mod:`.gap_dropout` (01), :mod:`.fractional` (02), :mod:`.retroactive` (03), :mod:`.isolation` and
  :mod:`.tempo_sets` (04), :mod:`.compressed` (05), :mod:`.pruning` and :mod:`.hidden_sets` (07),
  :mod:`.localisation` (09: where the others act in the network).

Registries: :data:`PHENOMENA`, :data:`MEASURES` (the study's tables; :data:`DEFAULT_STUDY` those a study
runs unless told which), :data:`EXPLORERS` (the live dashboard's tabs, loaded on first use),
:data:`CLAIMS`; :func:`claims_table` decides every claim of the phenomena a study measured,
:func:`compare_claims` decides them on two models' studies of the same prompts side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from tempo_lab.phenomena import (
    compressed,
    fractional,
    gap_dropout,
    hidden_sets,
    isolation,
    localisation,
    pruning,
    retroactive,
    tempo_sets,
)
from tempo_lab.phenomena.phenomenon import Phenomenon
from tempo_lab.plumbing.moved import alias
from tempo_lab.studies import claims as _claims
from tempo_lab.studies import compare as _compare

alias("tempo_lab.phenomena.base", "tempo_lab.phenomena.phenomenon")  # renamed; warns a release

#: every phenomenon, in the order of the notebooks
PHENOMENA: tuple[Phenomenon, ...] = (
    gap_dropout.PHENOMENON,
    fractional.PHENOMENON,
    retroactive.PHENOMENON,
    isolation.PHENOMENON,
    compressed.PHENOMENON,
    tempo_sets.PHENOMENON,
    pruning.PHENOMENON,
    hidden_sets.PHENOMENON,
    localisation.PHENOMENON,
)
MEASURES = {p.name: p.measure for p in PHENOMENA if p.measure is not None}
DEFAULT_STUDY = tuple(p.name for p in PHENOMENA if p.measure is not None and p.default_study)
SINGLE = {p.name: p.single for p in PHENOMENA if p.single is not None}
CLAIMS = tuple(c for p in PHENOMENA for c in p.claims)


def __getattr__(name: str) -> Any:
    if name == "EXPLORERS":  # the live explorers load the display modules: on first use only
        value = {p.name: p.live_explorer() for p in PHENOMENA if p.explorer is not None}
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tempo_lab.phenomena' has no attribute {name!r}")


def claims_table(
    study: Any, single: Mapping[str, Mapping[str, Any]], phenomena: Sequence[str] | None = None
) -> pd.DataFrame:
    """Every claim of :data:`CLAIMS` whose phenomenon ``study`` measured (and that is in ``phenomena``, when
    given: a folder may hold more measurements than one notebook decides), decided over it
    (:func:`tempo_lab.studies.claims.claims_table`); ``single``: notebook number -> that notebook's key
    numbers."""
    return _claims.claims_table(study, single, _chosen(study, phenomena))


def compare_claims(
    a: Any,
    b: Any,
    single: Mapping[str, Mapping[str, Any]],
    phenomena: Sequence[str] | None = None,
    names: tuple[str, str] = ("a", "b"),
) -> pd.DataFrame:
    """The claims both studies measured (and that are in ``phenomena``, when given), decided on each, side by
    side, with a paired test of each claim's headline between the two models
    (:func:`tempo_lab.studies.compare.compare_claims`)."""
    claims = [c for c in _chosen(a, phenomena) if c.phenomenon in b.phenomena]
    return _compare.compare_claims(a, b, single, claims, names)


def _chosen(study: Any, phenomena: Sequence[str] | None) -> list:
    chosen = set(study.phenomena) & (set(phenomena) if phenomena is not None else {p.name for p in PHENOMENA})
    return [c for c in CLAIMS if c.phenomenon in chosen]


__all__ = [
    "CLAIMS",
    "DEFAULT_STUDY",
    "EXPLORERS",
    "MEASURES",
    "PHENOMENA",
    "SINGLE",
    "Phenomenon",
    "claims_table",
    "compare_claims",
    "compressed",
    "fractional",
    "gap_dropout",
    "hidden_sets",
    "isolation",
    "localisation",
    "pruning",
    "retroactive",
    "tempo_sets",
]
