"""The settings of notebook 11's study (:mod:`tempo_lab.caches.study`), checked whole on construction, and
its plan: the part keys of each table.

Contents: :class:`CacheSpec`, :data:`PROMPT_TABLES`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tempo_lab.caches.rolling import Rolling
from tempo_lab.plumbing import checks
from tempo_lab.prompts import bundled_prompts

PROMPT_TABLES = ("sinks", "massive", "ablation", "chunks", "partial")


@dataclass(frozen=True)
class CacheSpec:
    """The study's settings (its identity: a folder holds one spec's results)."""

    models: tuple[str, ...] = ("smollm2-135m", "gemma3-270m")
    prompts: int | None = None  # the first n bundled prompts (None: all 302)
    per_part: int = 32
    ratio: float = 100.0
    ablate: int = 64  # the sink ablations run on the first ``ablate`` prompts' parts
    partial: tuple[int, ...] = (1, 2, 4, 8)
    sinks: int = 4
    window: int = 252
    length: int = 8192
    segment: int = 1024
    reference_every: int = 128

    def __post_init__(self) -> None:
        """Every field checked here, before a folder is claimed: a bad spec never poisons one."""
        if isinstance(self.models, str) or not self.models:
            raise ValueError(f"models must be a list of model names, got {self.models!r}")
        for i, name in enumerate(self.models):
            if not isinstance(name, str) or not name:
                raise ValueError(f"models[{i}] must be a model name, got {name!r}")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models lists one model twice: {list(self.models)}")
        if self.prompts is not None:
            checks.count("prompts", self.prompts)
        for name in ("per_part", "window", "length", "segment", "reference_every"):
            checks.count(name, getattr(self, name))
        checks.integer_in("sinks", self.sinks, 0, self.length)
        checks.integer_in("ablate", self.ablate, 0, 10**9)
        if not checks.number("ratio", self.ratio) > 1:
            raise ValueError(f"ratio must be > 1 (how many times the median), got {self.ratio!r}")
        if isinstance(self.partial, (str, int)) or not self.partial:
            raise ValueError(f"partial must be a list of token counts >= 1, got {self.partial!r}")
        for i, k in enumerate(self.partial):
            checks.count(f"partial[{i}]", k)
        if self.sinks + self.window >= self.length:
            raise ValueError(
                f"sinks + window = {self.sinks + self.window} must be below length = {self.length}: the "
                "rolling cache must evict"
            )

    @property
    def variants(self) -> dict[str, Rolling]:
        return {"streaming": Rolling(self.sinks, self.window), "window": Rolling(0, self.sinks + self.window)}

    def header(self) -> dict:
        return {**asdict(self), "models": list(self.models), "partial": list(self.partial)}

    def prompt_count(self) -> int:
        total = len(bundled_prompts().prompts)
        return total if self.prompts is None else min(self.prompts, total)

    def plan(self) -> dict[str, list[str]]:
        n = self.prompt_count()
        chunks = [f"{m}-p{s:03d}" for m in self.models for s in range(0, n, self.per_part)]
        steps = self.length - 1
        segments = [f"{m}-t{s:05d}" for m in self.models for s in range(0, steps, self.segment)]
        ablated = [k for k in chunks if int(k.rsplit("-p", 1)[1]) < min(self.ablate, n)]
        plan = {t: chunks for t in PROMPT_TABLES}
        return {**plan, "ablation": ablated, "single": ablated, "rolling": segments}
