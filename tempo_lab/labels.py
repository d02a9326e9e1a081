"""Values as people read them: token labels, plain numbers, and JSON-ready scalars.

Contents: :func:`token_label` (a token's text, quoted so spaces and newlines show), :func:`token_labels`
(several, told apart where two read the same), :func:`plain_number` (``5`` rather than ``5.0``),
:func:`plain` (numpy/pandas scalars as Python values, floats rounded), :func:`compact` (one value on one
line, for summaries), :func:`quote_tokens` (a result table's token columns quoted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def token_label(text: str) -> str:
    """A token as a readable label: quoted, with whitespace made visible (``' the'``, ``'\\n'``)."""
    return repr(text)


def token_labels(lm, ids: Sequence[int]) -> list[str]:
    """:func:`token_label` of each token id, with ``#id`` appended where two different ids would read the
    same (e.g. byte tokens that decode to the replacement character)."""
    texts = [token_label(lm.token_str(int(i))) for i in ids]
    return [f"{t} #{int(i)}" if texts.count(t) > 1 else t for t, i in zip(texts, ids, strict=True)]


def plain_number(x: float) -> int | float:
    """An integral number as ``int`` (labels ``5`` rather than ``5.0``), any other as ``float``."""
    return int(x) if float(x).is_integer() else float(x)


def plain(value: Any, decimals: int | None = None) -> Any:
    """``value`` with numpy scalars (and those inside lists, tuples and dicts) turned into Python values;
    floats rounded to ``decimals`` when given (and never ``-0.0``). Dict keys become strings."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        out = float(value) if decimals is None else round(float(value), decimals)
        return 0.0 if out == 0 else out
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v, decimals) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, decimals) for v in value]
    return value


def compact(value: Any, decimals: int = 4) -> str:
    """One value on one line: floats rounded, strings quoted, lists and dicts inline."""
    if isinstance(value, float):
        return repr(round(value, decimals))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {compact(v, decimals)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(compact(v, decimals) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def quote_tokens(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a result table with its token columns (``top1``, ``top2``, ...) quoted (``' the'``), so
    leading spaces and newlines are visible."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(col, str) and col.startswith("top") and col[3:].isdigit():
            out[col] = [repr(v) if isinstance(v, str) else v for v in out[col]]
    return out
