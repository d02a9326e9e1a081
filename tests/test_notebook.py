"""tempo_lab.notebook: the key numbers a notebook prints, as JSON with rounded native values."""

from __future__ import annotations

import json

import numpy as np

from tempo_lab import notebook


def test_key_numbers_prints_json_with_rounded_native_values(capsys):
    notebook.print_key_numbers(
        {"a": np.float32(0.123456), "b": [np.int64(3), 1.0e-7], "c": {"x": -0.00001}, "d": "t"}
    )
    out = json.loads(capsys.readouterr().out)
    assert out == {"a": 0.1235, "b": [3, 0.0], "c": {"x": 0.0}, "d": "t"}
    assert str(out["c"]["x"]) == "0.0"  # no "-0.0"


def test_the_claims_record_keeps_each_verdict_with_its_rules_statistic_and_unit():
    """What the phenomenon pages show (docs/hooks/claims.py): each decided claim with the statistic and the
    resampling unit of the rule registered for it, read from the registry, not from the table's words."""
    from tempo_lab.claims import claims_table
    from tempo_lab.long_context.evidence import CLAIMS
    from tests.long_context.test_evidence import _study

    decided = claims_table(_study(acc16=0.0, se16=1.0), {}, CLAIMS)
    record = notebook.claims_record(decided)
    assert [r["key"] for r in record] == list(decided.key)
    lc2 = next(r for r in record if r["key"] == "LC2")
    assert lc2["verdict"] == "confirmed"
    assert lc2["at scale"] == decided.set_index("key").loc["LC2", "at scale"]
    assert lc2["statistic"] == f"{CLAIMS[1].rule.statistic} (unit: {CLAIMS[1].rule.unit})"
    json.dumps(record)  # it goes into the key numbers' JSON as it is
