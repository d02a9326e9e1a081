"""TPI layers, model, trainer and study: against a naive O(T^2) sum, causality, long sequences, bad input."""

from __future__ import annotations

import pytest
import torch

from tempo_lab.corpus import from_text, load_corpus
from tempo_lab.results import IncompleteResults, ResultsWarning
from tempo_lab.tpi import display as report
from tempo_lab.tpi import layers, model, probes, recall, runs, train

ALL = [(v, m) for v in layers.VARIANTS for m in layers.MEMORIES]


def trained_like(layer: layers.TPIAttention) -> layers.TPIAttention:
    """Give the phase projections and decay trained-sized values, so phases wrap many times."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.5)
        if hasattr(layer, "decay_logit"):
            layer.decay_logit.uniform_(-2, 4)
    return layer


@pytest.mark.parametrize("variant,memory", ALL)
def test_tpi_equals_naive_sum_over_the_past(variant, memory):
    layer = trained_like(layers.TPIAttention(8, layers.TPIConfig(variant, memory, window=5))).double()
    x = torch.randn(2, 40, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    shift = torch.zeros(1, 40, 1, dtype=torch.float64)
    shift[:, 17:] = 2.5  # an inserted phase after the 17th byte
    for s in (None, shift):
        fast = layer(x, s)
        slow = layers.tpi_naive(layer, x, s)
        torch.testing.assert_close(fast, slow, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("architecture", list(model.ARCHITECTURES))
def test_changing_a_later_byte_leaves_earlier_outputs_exactly_unchanged(architecture):
    lm = model.build(architecture, dim=16, layers=2, dropout=0.0).eval()
    ids = torch.randint(0, 256, (1, 30), generator=torch.Generator().manual_seed(3))
    changed = ids.clone()
    changed[0, 20] = (ids[0, 20] + 1) % 256
    a, b = lm(ids), lm(changed)
    assert torch.equal(a[0, :20], b[0, :20])
    assert not torch.allclose(a[0, 20:], b[0, 20:])


@pytest.mark.parametrize("architecture", list(model.ARCHITECTURES))
def test_gradients_stay_finite_at_four_times_the_training_length(architecture):
    lm = model.build(architecture, dim=16, layers=2)
    for p in lm.parameters():  # large phase frequencies: phases wrap thousands of times over 512 bytes
        torch.nn.init.normal_(p, 0, 0.5) if p.dim() > 1 else None
    ids = torch.randint(0, 256, (2, 4 * 128 + 1), generator=torch.Generator().manual_seed(0))
    loss = torch.nn.functional.cross_entropy(lm(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in lm.parameters() if p.grad is not None)


def test_decayed_cumsum_equals_the_recurrence_over_many_chunks():
    z = torch.randn(2, 100, 3, dtype=torch.float64)
    lam = torch.tensor([0.5, 0.9, 0.999], dtype=torch.float64)
    expected, m = [], torch.zeros(2, 3, dtype=torch.float64)
    for t in range(100):
        m = lam * m + z[:, t]
        expected.append(m)
    torch.testing.assert_close(layers.decayed_cumsum(z, lam, chunk=7), torch.stack(expected, 1))


def test_rope_baseline_has_the_parameter_count_of_single_omega_tpi_block_for_block():
    rope, tpi = model.build("rope"), model.build("tpi")
    assert rope.parameter_count() == tpi.parameter_count()
    for a, b in zip(rope.blocks, tpi.blocks, strict=True):
        assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())


def test_rope_baseline_fractional_positions_interpolate_and_gaps_are_relative():
    lm = model.build("rope", dim=16, layers=1, dropout=0.0).eval()
    ids = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(0))
    base = lm(ids)
    shifted = lm(ids, positions=torch.arange(12) + 7.0)  # one common shift: RoPE is relative
    torch.testing.assert_close(base, shifted, atol=1e-4, rtol=1e-4)


def test_tiny_training_run_lowers_the_loss():
    corpus = from_text("the quick brown fox jumps over the lazy dog. " * 200)
    config = model.ModelConfig("tpi", dim=16, layers=1, dropout=0.0)
    settings = train.TrainSettings(steps=120, batch=8, seq_len=32, lr=1e-2, eval_every=60)
    torch.manual_seed(0)
    before = train.bits_per_byte(model.CharLM(config), corpus.val, 32)  # the same initialisation
    _, run = train.train(config, corpus, settings, seed=0, progress=False)
    assert run.curve[-1]["val_bpc"] < 0.5 * before
    assert run.bpc["val"] == pytest.approx(run.curve[-1]["val_bpc"])
    assert set(run.grad_norms) == {"omega"}


def test_training_is_deterministic_under_the_seed():
    corpus = from_text("abcdefghij" * 300)
    config = model.ModelConfig("tpi-decoupled", dim=8, layers=1)
    settings = train.TrainSettings(steps=5, batch=4, seq_len=16, eval_every=5)
    runs = [train.train(config, corpus, settings, seed=4, progress=False)[1] for _ in range(2)]
    assert runs[0].bpc == runs[1].bpc and runs[0].grad_norms == runs[1].grad_norms


def test_checkpoint_round_trip(tmp_path):
    lm = model.build("tpi-decay", dim=8, layers=1).eval()
    path = train.save(lm, tmp_path / "m.pt")
    ids = torch.randint(0, 256, (1, 9))
    torch.testing.assert_close(train.load(path)(ids), lm(ids), atol=0, rtol=0)


def test_recall_sequences_store_then_ask_every_key():
    task = recall.RecallTask(pairs=3)
    inputs, answers = task.sample(5, torch.Generator().manual_seed(0))
    assert inputs.shape == (5, 12) and answers.shape == (5, 3)
    for row, ans in zip(inputs.tolist(), answers.tolist(), strict=True):
        stored = {row[2 * i]: row[2 * i + 1] for i in range(3)}
        assert row[6] == recall.QUERY
        asked = [row[s] for s in task.answer_slots.tolist()]
        assert sorted(asked) == sorted(stored) and [stored[k] for k in asked] == ans


def test_probes_shift_rope_positions_and_tpi_phases():
    rope = model.build("rope", dim=16, layers=1, dropout=0.0).eval()
    tpi = model.build("tpi", dim=16, layers=1, dropout=0.0).eval()
    ids = torch.randint(0, 256, (1, 20), generator=torch.Generator().manual_seed(1))
    assert probes.shifted_distribution(rope, ids, at=10, amount=0.0).allclose(
        torch.softmax(rope(ids)[0, -1].double(), -1)
    )
    assert probes.shifted_distribution(tpi, ids, at=10, amount=0.0).allclose(
        torch.softmax(tpi(ids)[0, -1].double(), -1)
    )
    table = probes.shift_sweep({"rope": rope, "tpi": tpi}, [ids[0]], at=10, amounts=[0.0, 0.5, 3.0])
    assert set(table["model"]) == {"rope", "tpi"}
    assert (table.loc[table.amount == 0.0, "tv"] < 1e-6).all()
    assert (table.loc[table.amount == 3.0, "tv"] > 0).all()


def test_bad_input_is_refused_with_the_offending_value():
    with pytest.raises(ValueError, match="'spiral'"):
        layers.TPIConfig(variant="spiral")
    with pytest.raises(ValueError, match="window must be an integer >= 1, got 0"):
        layers.TPIConfig(memory="window", window=0)
    with pytest.raises(ValueError, match="window must be >= 1, got -3"):
        model.ModelConfig(window=-3)
    with pytest.raises(ValueError, match="'transformer'"):
        model.build("transformer")
    with pytest.raises(ValueError, match="empty or too short"):
        from_text("")
    with pytest.raises(ValueError, match="no positions"):
        model.build("tpi", dim=8, layers=1)(torch.zeros(1, 3, dtype=torch.long), positions=torch.arange(3))


def test_bundled_corpus_is_fixed_and_split_90_5_5():
    corpus = load_corpus()
    total = len(corpus.train) + len(corpus.val) + len(corpus.test)
    assert abs(len(corpus.val) / total - 0.05) < 1e-3 and corpus.train.max() < 256
    assert "pydoc_data" in corpus.provenance


def test_runs_resume_verify_and_refuse_a_folder_with_other_settings(tmp_path):
    spec = runs.TrainingSpec(
        architectures=("rope", "tpi"),
        seeds=(0,),
        train=train.TrainSettings(steps=2, batch=2, seq_len=16, eval_every=2),
        dim=8,
        layers=1,
    )
    trained = runs.train_language_models(tmp_path, spec, progress=False)
    rec = runs.train_recall_models(
        tmp_path, runs.RecallSpec(("tpi",), (0,), pairs=2, steps=2, dim=8, layers=1), False
    )
    assert sorted(trained.architecture) == ["rope", "tpi"] and len(rec) == 1
    assert runs.checkpoint("recall-tpi", tmp_path).config.layers == 1
    parts = sorted((tmp_path / "lm").glob("part-*.parquet"))
    written = {p.name: p.stat().st_mtime_ns for p in parts}
    grown = runs.TrainingSpec(**{**spec.__dict__, "seeds": (0, 1)})
    trained2 = runs.train_language_models(tmp_path, grown, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in parts} == written  # nothing recomputed
    assert len(trained2) == 4
    assert trained.loc[0, "val"] == trained2.loc[0, "val"]
    # every seed's weights are kept, each checked against its own run: seed 1 is another model than seed 0
    first, second = runs.checkpoint("rope", tmp_path), runs.checkpoint("rope", tmp_path, seed=1)
    assert (tmp_path / "checkpoints" / "rope-s1.pt").is_file()
    assert not torch.equal(first.embed.weight, second.embed.weight)
    assert torch.equal(runs.checkpoint("rope", tmp_path, seed=0).embed.weight, first.embed.weight)
    with pytest.raises(FileNotFoundError, match="seed 7"):
        runs.checkpoint("rope", tmp_path, seed=7)
    other = runs.TrainingSpec(**{**spec.__dict__, "dim": 16})
    with pytest.raises(ValueError, match="another lm"):
        runs.train_language_models(tmp_path, other, progress=False)
    assert runs.checkpoint("tpi", tmp_path).config.dim == 8
    # a run's part overwritten with garbage is quarantined; reading refuses the incomplete folder
    (tmp_path / "lm" / "part-tpi-s1.parquet").write_bytes(b"garbage")
    with pytest.warns(ResultsWarning, match="quarantine"), pytest.raises(IncompleteResults, match="tpi-s1"):
        runs.read_runs(tmp_path)
    # a checkpoint that is not the one its run recorded is refused
    (tmp_path / "checkpoints" / "rope.pt").write_bytes((tmp_path / "checkpoints" / "tpi.pt").read_bytes())
    with pytest.raises(ValueError, match="does not match the run that wrote it"):
        runs.checkpoint("rope", tmp_path)


def test_shift_view_reports_the_probe_tv():
    models = {name: model.build(name, dim=16, layers=1).eval() for name in ("rope", "tpi")}
    view = report.shift_view(models, "The quick brown fox")
    ids = torch.tensor([list(b"The quick brown fox")])
    for name in models:
        base = probes.shifted_distribution(models[name], ids, 5, 0.0)
        moved = probes.shifted_distribution(models[name], ids, 5, 2.0)
        tv = 0.5 * float((moved - base).abs().sum())
        assert f"TV {tv:.4f}" in view(model=name, amount=2.0, at=5).text


def test_the_recall_floor_without_lookup():
    # one pair: the stored value is the answer; two: right if the values match (1/10), else half the time
    assert recall.blind_accuracy(recall.RecallTask(pairs=1)) == 1.0
    assert recall.blind_accuracy(recall.RecallTask(pairs=2)) == pytest.approx(0.1 + 0.9 * 0.5, abs=0.01)
