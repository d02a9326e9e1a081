"""The ``positions`` table: each RoPE char-LM's loss by position under each method and the trained-length
window, stored per seed, equal to the curves recomputed one by one, resumed without recomputing, and
Self-Extend against the window past the trained length."""

from __future__ import annotations

import pytest
import torch

from tempo_lab.corpus import load_corpus
from tempo_lab.results import IncompleteResults
from tempo_lab.tpi import lengths, runs, train
from tempo_lab.tpi.by_position import PositionSpec, measure_positions, past_trained, read_positions
from tempo_lab.tpi.convert import as_transformers


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("positions")
    spec = runs.TrainingSpec(architectures=("rope",), seeds=(0, 1),
                             train=train.TrainSettings(steps=2, batch=2, seq_len=16, eval_every=2), dim=16,
                             layers=2)  # fmt: skip
    runs.train_language_models(path, spec, progress=False)
    return path


SPEC = PositionSpec(factors=(2,), window=4, bin=8, max_bytes=400)


def test_rows_are_the_one_by_one_curves_binned_and_resume(folder):
    table = measure_positions(folder, SPEC, progress=False)
    assert set(table.method) == set(SPEC.methods) and set(table.seed) == {0, 1}
    data = load_corpus().val[:400]
    lm = as_transformers(runs.checkpoint("rope", folder, seed=1), context=16)
    with lengths.method(lm, "self-extend", 32, 4):
        curve = lengths.loss_by_position(lm, data, 32)
    window = lengths.loss_by_position(lm, data, 32, window=16)
    for name, want in (("self-extend", curve), ("window", window)):
        got = table[(table.seed == 1) & (table.method == name)].sort_values("bin").bits.to_numpy()
        torch.testing.assert_close(torch.tensor(got), want.view(-1, 8).mean(1), atol=1e-6, rtol=0)
    far = past_trained(table).set_index(["seed", "method"]).bits
    assert far.loc[(1, "window")] == pytest.approx(float(window[16:].mean()), abs=1e-6)
    parts = {p.name: p.stat().st_mtime_ns for p in (folder / "positions").glob("part-*.parquet")}
    measure_positions(folder, SPEC, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "positions").glob("part-*.parquet")} == parts
    (folder / "positions" / "part-rope-s0.parquet").unlink()
    with pytest.raises(IncompleteResults, match=r"rope-s0[\s\S]*tempo_lab.tpi.by_position.measure_positions"):
        read_positions(folder)


BAD = [({"methods": ("plain", "rope")}, "unknown method 'rope'"), ({"bin": 0}, "bin must be"),
       ({"factors": (2, -1)}, r"factors\[1\]")]


@pytest.mark.parametrize(("kwargs", "message"), BAD)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PositionSpec(**kwargs)
