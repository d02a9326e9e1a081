"""Studies: any measurement over hundreds of prompts, batched, resumable, sharded, with confidence intervals.

Modules: ``prompts`` (prompt sets and the bundled 302), ``measures`` (the six measurements, batched across
prompts), ``store`` (the results folder of Parquet parts), ``runner`` (``run_study``: chunks, resume,
sharding over processes), ``stats`` (bootstrap intervals and paired tests), ``plots`` (seaborn figures with
their intervals).
"""

from tempo_lab.studies.measures import PHENOMENA, Conditions
from tempo_lab.studies.prompts import PromptSet, as_prompt_set, bundled_prompts
from tempo_lab.studies.runner import PromptProblems, Study, read_study, run_study

__all__ = [
    "PHENOMENA",
    "Conditions",
    "PromptProblems",
    "PromptSet",
    "Study",
    "as_prompt_set",
    "bundled_prompts",
    "read_study",
    "run_study",
]
