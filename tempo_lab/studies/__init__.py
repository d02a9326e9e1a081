"""Studies: any measurement over hundreds of prompts, batched, resumable, sharded, with confidence intervals.

Modules: ``prompts`` (prompt sets and the bundled 302), ``conditions`` (what a study sweeps), ``batching``
(prompts stepped together), ``folder`` (a study's verified results folder), ``run`` (``run_study``:
chunks, resume, sharding over processes), ``stats`` (bootstrap intervals and paired tests), ``claims``
(claims as data), ``figures`` (what the study figures share). The measurements themselves live in the
phenomena's slices (:mod:`tempo_lab.phenomena`).

The names below load on first use, so a slice can import ``tempo_lab.studies.claims`` without loading the
study runner (which imports the slices).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from tempo_lab.plumbing.moved import alias

alias("tempo_lab.studies.runner", "tempo_lab.studies.run")  # renamed for their jobs; the old paths warn
alias("tempo_lab.studies.store", "tempo_lab.studies.folder")
alias("tempo_lab.studies.plots", "tempo_lab.studies.figures")

_LAZY = {
    "Conditions": "tempo_lab.studies.conditions",
    "DEFAULT_STUDY": "tempo_lab.studies.run",
    "PHENOMENA": "tempo_lab.studies.run",
    "PromptProblems": "tempo_lab.studies.run",
    "Study": "tempo_lab.studies.run",
    "read_study": "tempo_lab.studies.run",
    "run_study": "tempo_lab.studies.run",
    "PromptSet": "tempo_lab.studies.prompts",
    "as_prompt_set": "tempo_lab.studies.prompts",
    "bundled_prompts": "tempo_lab.studies.prompts",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tempo_lab.studies' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = sorted(_LAZY)
