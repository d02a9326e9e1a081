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
