"""The char-LM as a transformers model, and the char-LMs past their trained length: each against the char-LM's
own forward (positions moved by hand for Position Interpolation), the study's stored scores against a direct
scoring, resume and refusal."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import DynamicCache

from tempo_lab.corpus import load_corpus
from tempo_lab.extension.self_extend import grouped_positions
from tempo_lab.results import IncompleteResults
from tempo_lab.tpi import lengths, model, runs, train
from tempo_lab.tpi.convert import EOS, as_transformers, char_tokenizer


def random_rope(dim: int = 16, layers: int = 2, seed: int = 0) -> model.CharLM:
    """A RoPE char-LM with weights drawn large enough that positions change its predictions."""
    torch.manual_seed(seed)
    m = model.build("rope", dim=dim, layers=layers, dropout=0.0).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m


def test_the_transformers_twin_computes_the_char_lms_logits_at_any_positions():
    m = random_rope()
    lm = as_transformers(m, context=32)
    ids = torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(1))
    gapped = torch.cat([torch.arange(10), torch.arange(10, 40) + 7.5]).expand(2, -1)
    for positions in (None, gapped):
        want = m(ids, positions=positions)
        got = lm.model(input_ids=ids, position_ids=positions).logits
        assert got.shape == (2, 40, EOS + 1)
        torch.testing.assert_close(got[..., :EOS], want, atol=1e-5, rtol=0)
    # a cached step equals the full pass
    cache = DynamicCache(config=lm.model.config)
    lm.model(input_ids=ids[:, :39], cache=cache, use_cache=True)
    step = lm.model(input_ids=ids[:, 39:], cache=cache, use_cache=True).logits[:, -1, :EOS]
    torch.testing.assert_close(step, m(ids)[:, -1], atol=1e-5, rtol=0)
    assert lm.model.config.max_position_embeddings == 32


def test_the_char_tokenizer_reads_utf8_bytes():
    tok = char_tokenizer()
    text = "Zé\n  end"
    assert tok(text)["input_ids"] == list(text.encode()) and tok.decode(list(text.encode())) == text
    assert tok.eos_token_id == EOS


def test_a_position_free_model_is_refused():
    with pytest.raises(ValueError, match="'tpi' has no positions"):
        as_transformers(model.build("tpi", dim=8, layers=1))


def test_plain_and_position_interpolation_equal_the_char_lms_own_forward_past_its_length():
    m = random_rope()
    lm = as_transformers(m, context=16)
    data = torch.randint(0, 256, (400,), generator=torch.Generator().manual_seed(2))
    with lengths.method(lm, "plain", 64):
        assert lengths.bits_per_byte(lm, data, 64) == pytest.approx(
            train.bits_per_byte(m, data, 64), abs=1e-6
        )
    # PI at 4x: positions 0..63 divided by 4, fed to the char-LM's own rotation
    with lengths.method(lm, "pi", 64):
        curve = lengths.loss_by_position(lm, data, 64)
    inputs, targets = data[:384].view(-1, 64), data[1:385].view(-1, 64)
    logits = m(inputs, positions=torch.arange(64) / 4)
    bits = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none") / torch.log(
        torch.tensor(2.0)
    )
    torch.testing.assert_close(curve, bits.mean(0).double(), atol=1e-5, rtol=0)
    # at the trained length every method is the plain model (PI, NTK and YaRN at factor 1; Self-Extend with
    # group 1)
    plain = lengths.loss_by_position(lm, data, 16)
    for name in lengths.METHODS:
        with lengths.method(lm, name, 16, window=4):
            torch.testing.assert_close(lengths.loss_by_position(lm, data, 16), plain, atol=1e-6, rtol=0)


@pytest.mark.parametrize("length", [17, 100, 1000, 4096])
def test_the_self_extend_group_keeps_every_grouped_position_inside_the_trained_context(length):
    trained, window = 128, 32
    group = lengths.self_extend_group(length, trained, window)
    positions = torch.arange(length, dtype=torch.float32)
    queries, keys = grouped_positions(positions, positions, window, group)
    assert max(keys.max(), queries.max()) < trained
    if group > 1:  # the smallest such group
        queries, keys = grouped_positions(positions, positions, window, group - 1)
        assert max(keys.max(), queries.max()) >= trained


def test_measure_lengths_stores_each_models_scores_resumes_and_names_what_is_missing(tmp_path):
    spec = runs.TrainingSpec(
        architectures=("rope", "tpi"),
        seeds=(0, 1),
        train=train.TrainSettings(steps=2, batch=2, seq_len=16, eval_every=2),
        dim=16,  # 4 heads of 4 dimensions: two rotary bands, the fewest NTK's exponent d/(d-2) takes
        layers=2,
    )
    runs.train_language_models(tmp_path, spec, progress=False)
    lspec = lengths.LengthSpec(factors=(1, 2), window=4, layer_factor=2, max_bytes=600)
    table = lengths.measure_lengths(tmp_path, lspec, progress=False)
    rope = table[table.architecture == "rope"]
    assert len(rope) == 2 * (2 * len(lengths.METHODS) + 2 * 2)  # seeds x (factors x methods + layer sweep)
    assert set(table[table.architecture == "tpi"].method) == {"tpi"}
    assert sorted(set(table.length)) == [16, 32]
    # the stored scores are the checkpoints' own: seed 1's plain score at 1x and TPI's at 2x, recomputed
    val = load_corpus().val[:600]
    row = rope[(rope.seed == 1) & (rope.method == "plain") & (rope.factor == 1)]
    direct = train.bits_per_byte(runs.checkpoint("rope", tmp_path, seed=1), val, 16, batch=4)
    assert row.bpc.item() == pytest.approx(direct, abs=1e-6)
    row = table[(table.architecture == "tpi") & (table.seed == 0) & (table.factor == 2)]
    assert row.bpc.item() == pytest.approx(
        train.bits_per_byte(runs.checkpoint("tpi", tmp_path), val, 32), abs=1e-6
    )
    # the per-layer sweep scales one layer: it lies between the plain and the all-layer score's neighbourhood,
    # and differs from both (a real edit of one layer)
    one = rope[(rope.seed == 0) & (rope.method == "pi") & (rope.layer == 0)].bpc.item()
    every = rope[
        (rope.seed == 0) & (rope.method == "pi") & (rope.layer == -1) & (rope.factor == 2)
    ].bpc.item()
    assert one != every
    # the verdict: each seed's 2x score over its 1x score, a Student-t interval over the two seeds
    ratios = [
        rope[(rope.seed == s) & (rope.method == "plain") & (rope.factor == 2) & (rope.layer == -1)].bpc.item()
        / rope[(rope.seed == s) & (rope.method == "plain") & (rope.factor == 1)].bpc.item()
        for s in (0, 1)
    ]
    found = lengths.against_trained(table, 2).set_index("model").loc["plain"]
    half = 12.7062 * abs(ratios[0] - ratios[1]) / 2  # t(0.975, 1) * std / sqrt(2), std = |a - b| / sqrt(2)
    assert found.ratio == pytest.approx(sum(ratios) / 2) and found.hi == pytest.approx(
        found.ratio + half, rel=1e-4
    )
    assert lengths.verdicts(table).loc["plain", "2x"].startswith(f"{found.ratio:.4f} [")
    parts = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "lengths").glob("part-*.parquet")}
    assert len(parts) == 4
    lengths.measure_lengths(tmp_path, lspec, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "lengths").glob("part-*.parquet")} == parts
    (tmp_path / "lengths" / "part-rope-s1.parquet").unlink()
    with pytest.raises(IncompleteResults, match=r"rope-s1[\s\S]*tempo_lab.tpi.lengths.measure_lengths"):
        lengths.read_lengths(tmp_path)
    with pytest.raises(ValueError, match="another lengths"):
        lengths.measure_lengths(
            tmp_path, lengths.LengthSpec(factors=(1, 3), window=4, max_bytes=600), progress=False
        )


def test_bad_input_is_refused_with_the_offending_value():
    with pytest.raises(ValueError, match=r"factors\[1\]"):
        lengths.LengthSpec(factors=(1, 0))
    with pytest.raises(ValueError, match="'rotate'"):
        lengths.LengthSpec(methods=("plain", "rotate"))
    with pytest.raises(ValueError, match="'self-extend' is not one of"):
        lengths.LengthSpec(layer_methods=("self-extend",))
    with pytest.raises(ValueError, match="window = 16 leaves no grouped"):
        lengths.self_extend_group(100, 16, 16)
    lm = as_transformers(random_rope(dim=8, layers=1), context=16)
    with pytest.raises(ValueError, match="layers= applies"), lengths.method(lm, "plain", 32, layers=[0]):
        pass
    with pytest.raises(ValueError, match="unknown method 'x'"), lengths.method(lm, "x", 32):
        pass
    with pytest.raises(ValueError, match="4 bytes hold no window of 16"):
        lengths.bits_per_byte(lm, torch.arange(4), 16)
    one_band = as_transformers(model.build("rope", dim=8, layers=1), context=16)  # heads of 2 dimensions
    with (
        pytest.raises(ValueError, match="at least 2 rotary bands.*d = 2"),
        lengths.method(one_band, "ntk", 32),
    ):
        pass


def test_a_sliding_window_scores_each_position_as_the_char_lm_on_the_window_before_it():
    """The window baseline against the char-LM's own forward of just the last ``window`` bytes, position by
    position."""
    m = random_rope()
    lm = as_transformers(m, context=16)
    data = torch.randint(0, 256, (3 * 40 + 1,), generator=torch.Generator().manual_seed(2))
    got = lengths.loss_by_position(lm, data, 40, window=16)
    inputs, targets = data[:120].view(3, 40), data[1:121].view(3, 40)
    want = torch.zeros(40, dtype=torch.float64)
    with torch.no_grad():
        for p in range(40):
            start = max(0, p - 15)
            logits = m(inputs[:, start : p + 1])[:, -1]
            want[p] = torch.nn.functional.cross_entropy(logits, targets[:, p], reduction="mean").double()
    torch.testing.assert_close(got, want / math.log(2), atol=1e-5, rtol=0)
    assert not torch.allclose(got, lengths.loss_by_position(lm, data, 40))  # the window changes positions 16+
    assert torch.allclose(got[:16], lengths.loss_by_position(lm, data, 40)[:16], atol=1e-6)
