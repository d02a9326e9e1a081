"""Each context-extension method set for a length and applied to a model, as the long-context study
(:mod:`tempo_lab.long_context`) and the lm-eval model (:mod:`tempo_lab.interop.harness`) run them.

    method = Method.for_length(lm, "yarn", 16384)   # factor 2.0 on SmolLM2 (trained at 8,192)
    with method.applied(lm):
        ...                                          # any forward pass, at positions up to 16,384

The methods (:data:`METHODS`), with ``L`` the length and ``L₀`` the model's trained context
(:func:`~tempo_lab.loaded.trained_context`); the factor is ``max(1, L / L₀)`` and, at a length inside the
trained context, every method is the plain model:

- ``plain``: the model as it is, run past its context (:func:`~tempo_lab.loaded.beyond_context`);
- ``pi``: Position Interpolation, every position divided by the factor;
- ``ntk``: NTK-aware scaling, the RoPE base raised to ``θ · factor^(d/(d-2))``;
- ``dynamic``: transformers' dynamic NTK configured with the factor, at a sequence of length ``L`` (its base
  ``θ · (factor · L/L₀ − factor + 1)^(d/(d-2))``, as ``rope_parameters={"rope_type": "dynamic", "factor":
  L/L₀}`` gives at that length);
- ``yarn``: YaRN with the factor (its default ramp and attention temperature);
- ``self_extend``: Self-Extend with the neighbour window ``W = L₀ / 8`` and the paper's group rule, the
  smallest ``G`` with ``(L₀ − W) · G + W ≥ L`` (so the farthest grouped distance stays within ``L₀``).

Refused before any forward, naming the value: an unknown method, a factor ≤ 0, a length beyond what the method
addresses at its factor (``factor · L₀``), a Self-Extend group whose farthest grouped distance at the length
passes the trained context, a window at or past it.

Contents: :class:`Method`, :data:`METHODS`, :data:`LABELS`, :func:`self_extend_group`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tempo_lab.extension import RopeScaling, scaled, self_extended
from tempo_lab.loaded import LoadedModel, beyond_context, trained_context
from tempo_lab.plumbing import checks

METHODS = ("plain", "pi", "ntk", "dynamic", "yarn", "self_extend")
LABELS = {"plain": "plain", "pi": "PI", "ntk": "NTK", "dynamic": "dynamic NTK", "yarn": "YaRN",
          "self_extend": "Self-Extend"}  # fmt: skip
#: Self-Extend's neighbour window as a share of the trained context
WINDOW_SHARE = 8


def self_extend_group(length: int, trained: int, window: int) -> int:
    """The paper's rule: the smallest group ``G`` with ``(trained − window) · G + window ≥ length`` (at least
    1), which keeps the farthest grouped distance at ``trained`` at most."""
    if window >= trained:
        raise ValueError(
            f"window = {window} leaves no grouped positions inside the trained context ({trained})"
        )
    return max(1, math.ceil((length - window) / (trained - window)))


def _reach(length: int, window: int, group: int) -> int:
    """The largest grouped distance at ``length``: the last query's grouped position from the first key's."""
    return (length - 1) // group + window - window // group


@dataclass(frozen=True)
class Method:
    """One method set for one length (see the module docstring). ``factor``: the rescalings' factor (1 for
    plain and Self-Extend); ``window``, ``group``: Self-Extend's (0 for the others); ``trained``: the model's
    trained context the choice was made for."""

    name: str
    length: int
    trained: int
    factor: float = 1.0
    window: int = 0
    group: int = 0

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.name!r}")
        checks.count("length", self.length)
        checks.count("trained", self.trained)
        checks.positive("factor", self.factor)
        if self.name in ("pi", "ntk", "dynamic", "yarn") and self.length > self.factor * self.trained:
            raise ValueError(
                f"{LABELS[self.name]} with factor {self.factor:g} addresses {self.factor * self.trained:g} "
                f"positions (factor x the trained {self.trained}); length = {self.length} is beyond it: give "
                f"factor >= {self.length / self.trained:g}"
            )
        if self.name == "self_extend":
            checks.count("window", self.window)
            checks.count("group", self.group)
            if self.window >= self.trained:
                raise ValueError(
                    f"window = {self.window} is not inside the trained context ({self.trained}): Self-Extend "
                    "groups the pairs beyond a window inside it"
                )
            reach = _reach(self.length, self.window, self.group)
            if reach > self.trained:
                raise ValueError(
                    f"group = {self.group} keeps grouped positions up to {reach} at length {self.length}, "
                    f"past the trained context ({self.trained}): give group >= "
                    f"{self_extend_group(self.length, self.trained, self.window)}"
                )

    @classmethod
    def for_length(cls, lm: LoadedModel, name: str, length: int) -> Method:
        """``name`` set for ``length`` on ``lm`` by the rules of the module docstring."""
        trained = trained_context(lm)
        length = checks.count("length", length)
        factor = max(1.0, length / trained)
        if name == "self_extend":
            window = trained // WINDOW_SHARE
            return cls(name, length, trained, 1.0, window, self_extend_group(length, trained, window))
        return cls(name, length, trained, factor if name != "plain" else 1.0)

    @property
    def is_plain(self) -> bool:
        """True where the method is the plain model: plain itself, or any method at a length inside the
        trained context (factor 1, group 1)."""
        return self.name == "plain" or (self.factor == 1.0 and self.group <= 1)

    @property
    def setting(self) -> str:
        """What was chosen, for the tables: ``"factor 2"``, ``"window 1024, group 3"``, ``"as plain"``."""
        if self.is_plain:
            return "as plain" if self.name != "plain" else ""
        if self.name == "self_extend":
            return f"window {self.window}, group {self.group}"
        return f"factor {self.factor:g}"

    def scaling(self) -> RopeScaling:
        """The rotary rescaling of ``pi`` / ``ntk`` / ``dynamic`` / ``yarn``."""
        if self.name == "pi":
            return RopeScaling.linear(self.factor)
        if self.name == "ntk":
            return RopeScaling.ntk(self.factor)
        if self.name == "dynamic":
            return RopeScaling.dynamic(self.factor, self.length, self.trained)
        if self.name == "yarn":
            return RopeScaling.yarn(self.factor, original_length=self.trained)
        raise ValueError(f"{self.name} is not a rotary rescaling")

    @contextmanager
    def applied(self, lm: LoadedModel) -> Iterator[LoadedModel]:
        """Inside the block every forward pass of ``lm`` runs under the method, past the trained context
        allowed. Refuses a model whose trained context is not the one the method was set for."""
        if trained_context(lm) != self.trained:
            raise ValueError(
                f"the method was set for a trained context of {self.trained}; {lm.name} was trained at "
                f"{trained_context(lm)}: set it with Method.for_length on this model"
            )
        if self.is_plain:
            with beyond_context(lm):
                yield lm
        elif self.name == "self_extend":
            with self_extended(lm, window=self.window, group=self.group):
                yield lm
        else:
            with scaled(lm, self.scaling()):
                yield lm

    def as_dict(self) -> dict:
        return {"method": self.name, "length": self.length, "trained": self.trained, "factor": self.factor,
                "window": self.window, "group": self.group}  # fmt: skip
