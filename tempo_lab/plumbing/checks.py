"""Input checks: one function, and one message, per kind of bad input.

Every check runs before any model work, names the offending argument (``gaps[2]``, ``threshold``) and its
value, and accepts numpy scalars wherever it accepts Python numbers (``np.float32(0.1)`` is a threshold,
``np.int64(3)`` a count). Booleans are never numbers.

Contents:

- :func:`is_number`, :func:`as_list`: what counts as a number; a scalar or a sequence as a list.
- :func:`number`, :func:`nonnegative`, :func:`positive`, :func:`probability`: finite numbers with a bound.
- :func:`count`, :func:`integer_in`, :func:`seed`: integers.
- :func:`choice`: one of a fixed set of names.
- :func:`in_context`: a position the model's context can hold.
- :func:`integral_position`: fractional positions only where the model computes them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch


def is_number(value: object) -> bool:
    """True for real numbers, Python or numpy (``int``, ``float``, ``np.float32``, ``np.int64``), no bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def as_list(values: Any) -> list:
    """A sequence (list, tuple, range, numpy array, tensor) as a list; a single value as a one-item list.

    Strings count as single values (``as_list("5") == ["5"]``), so a later number check names them.
    """
    if isinstance(values, (np.ndarray, torch.Tensor)):
        return values.reshape(-1).tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        return [values]
    return list(values)


def number(name: str, value: Any, *, minimum: float | None = None, strict: bool = False) -> float:
    """``value`` as a float: a finite number, ``>= minimum`` (``> minimum`` when ``strict``)."""
    bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
    ok = is_number(value) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        raise ValueError(f"{name} must be a finite number{bound}, got {_shown(value)}")
    return float(value)


def nonnegative(name: str, value: Any) -> float:
    """A finite number ``>= 0`` (a gap, a position)."""
    return number(name, value, minimum=0)


def positive(name: str, value: Any) -> float:
    """A finite number ``> 0`` (a temperature)."""
    return number(name, value, minimum=0, strict=True)


def probability(name: str, value: Any) -> float:
    """A probability threshold in ``(0, 1]``."""
    if not is_number(value) or not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be a probability in (0, 1], got {_shown(value)}")
    return float(value)


def count(name: str, value: Any) -> int:
    """An integer ``>= 1`` (a cap, a length, a number of steps)."""
    if not _is_integer(value) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {_shown(value)}")
    return int(value)


def integer_in(name: str, value: Any, lo: int, hi: int) -> int:
    """An integer in ``lo..hi`` (both included)."""
    if not _is_integer(value) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {_shown(value)}")
    return int(value)


def seed(value: Any) -> int:
    """A seed for a ``torch.Generator``: any integer."""
    if not _is_integer(value):
        raise ValueError(f"seed must be an integer, got {_shown(value)}")
    return int(value)


def choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def in_context(subject: str, position: float, max_positions: int | None) -> None:
    """Refuse a position the model's context cannot hold (``position >= max_positions``).

    ``subject`` names what reaches the position: ``"gaps[2] = 600"``, ``"position_ids[0, 3]"``.
    """
    if max_positions is not None and position >= max_positions:
        raise ValueError(context_message(subject, position, max_positions))


def context_message(subject: str, position: float, max_positions: int) -> str:
    """The one wording of "past the model's context" (also used for warnings)."""
    return (
        f"{subject} reaches position {position:g}, past the model's context "
        f"(max_position_embeddings = {max_positions}; the largest usable position is {max_positions - 1})"
    )


def integral_position(subject: str, position: float, reason: str) -> None:
    """Refuse a fractional position on a model that takes integer positions only, ``reason`` saying why
    (:meth:`~tempo_lab.families.Family.position_reason`: a learned position table, GPT-2's ``wpe``, or a
    rotary embedding looked up in a table of integer positions, GPT-J's); ``""`` accepts any position.

    ``subject`` names the value, e.g. ``"gaps[1] = 0.5"`` or ``"position_ids[0, 2] = 2.5"``.
    """
    if reason and float(position) != math.floor(position):
        raise ValueError(f"{subject} is fractional, but this model takes integer positions only: {reason}")


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _shown(value: Any) -> str:
    """A value as messages show it: numpy scalars as their Python value (``nan``, not ``np.float64(nan)``)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)
