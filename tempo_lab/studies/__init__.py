"""Studies: every phenomenon's measurement over hundreds of prompts, batched, resumable, sharded, with
confidence intervals, and two models' studies compared.

- :mod:`.run`: :func:`~tempo_lab.studies.run.run_study` (chunks, resume, sharding over processes) and
  :func:`~tempo_lab.studies.run.read_study`;
- :mod:`.folder`: a study's verified results folder;
- :mod:`.compare`: two models' studies of the same prompts, claim by claim; :mod:`.display`: its figure.

The measurements themselves live in the phenomena's slices (:mod:`tempo_lab.phenomena`); the prompt sets are
:mod:`tempo_lab.prompts`, the statistics :mod:`tempo_lab.stats`, the claims :mod:`tempo_lab.claims`.
"""

from tempo_lab.studies.run import PHENOMENA, PromptProblems, Study, read_study, run_study

__all__ = ["PHENOMENA", "PromptProblems", "Study", "read_study", "run_study"]
