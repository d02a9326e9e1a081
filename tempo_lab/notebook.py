"""Notebook plumbing: the set-up every notebook runs first, and its key numbers written and read back.

Each notebook of the series ends with a cell tagged ``key-numbers`` that calls :func:`print_key_numbers`;
``tempo-lab run`` reads that cell's output back with :func:`read_key_numbers` for its summary, and the tests
compare the numbers quoted in each notebook's text against it. A notebook that decides claims records them
there too (:func:`claims_record`): the documentation's phenomenon pages show its claims table from that record
(``docs/hooks/claims.py``), so a page says what the committed notebook decided. The site hides that cell
(mkdocs-jupyter's ``remove_cell_tags``) and JupyterLab shows its output collapsed.

Contents: :func:`setup`, :func:`print_key_numbers`, :func:`read_key_numbers`, :func:`claims_record`,
:data:`KEY_NUMBERS_TAG`, :data:`DECIMALS`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from tempo_lab.labels import plain

DECIMALS = 4
KEY_NUMBERS_TAG = "key-numbers"


def setup() -> None:
    """Figures shown inline in the shared style (:func:`tempo_lab.plots.use_style`), no model-loading
    progress bars, 4-decimal pandas tables.

    The figures are built without pyplot, which loads its backend lazily; ``%matplotlib inline`` is what
    registers the PNG formatter that displays a ``Figure`` in a kernel (without it a cell shows only its
    repr). Outside a kernel that step is skipped. Changes global display state: call it from notebooks only.
    """
    from transformers.utils import logging as hf_logging

    from tempo_lab import plots
    from tempo_lab.views import has_frontend

    if has_frontend():
        from IPython import get_ipython

        get_ipython().run_line_magic("matplotlib", "inline")
    plots.use_style()
    hf_logging.disable_progress_bar()
    pd.set_option("display.precision", DECIMALS)
    pd.set_option("display.width", 160)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", 80)


def print_key_numbers(numbers: Mapping[str, Any], *, decimals: int = DECIMALS) -> None:
    """Print ``numbers`` as one JSON object, one key per line, every float rounded to ``decimals``."""
    out = plain(dict(numbers), decimals)
    body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in out.items())
    print("{\n" + body + "\n}")


def claims_record(decided: pd.DataFrame) -> list[dict[str, str]]:
    """The rows of a decided claims table (:func:`tempo_lab.claims.claims_table`) as the key numbers keep
    them: per claim its key, words and source, the registered rule's statistic and resampling unit (the
    first post-hoc rule's where none is registered), the measurement at scale, the verdict ("descriptive" for
    a claim with no rule, "post hoc only" for one with post-hoc rules alone), where the rule stands
    (registered before the data, written with it, or changed since) and the post-hoc verdicts."""
    from tempo_lab.phenomena import ALL_CLAIMS

    claims = {c.key: c for c in ALL_CLAIMS}
    out = []
    for row in decided.to_dict("records"):
        claim = claims.get(row["key"])
        rule = None if claim is None else claim.deciding_rule
        post = "" if claim is None or claim.rule is not None else ", post hoc"
        out.append({
            "key": row["key"], "claim": row["claim"], "source": row["source"],
            "statistic": "descriptive" if rule is None else f"{rule.statistic} (unit: {rule.unit}{post})",
            "at scale": row["at scale"],
            "verdict": row["verdict"] or ("post hoc only" if row["post hoc"] else "descriptive"),
            "rule": row["rule stands"], "post hoc": row["post hoc"],
        })  # fmt: skip
    return out


def read_key_numbers(nb) -> dict[str, Any]:
    """The JSON printed by the cell tagged :data:`KEY_NUMBERS_TAG` of an executed notebook (``{}`` if
    none, or if its output is not JSON)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and KEY_NUMBERS_TAG in cell.get("metadata", {}).get("tags", []):
            text = "".join(
                o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"
            )
            try:
                return json.loads(text)
            except ValueError:
                return {}
    return {}
