"""GGUF files as models (tempo_lab.gguf): refused when damaged or unsupported, converted once per content,
written atomically, and the bundled model through the same code.

The refusals run on small GGUF files written here with the ``gguf`` package's own writer; the conversion runs
on a copy of the bundled SmolLM2 file (``bundled``).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tempo_lab import gguf, load_model
from tempo_lab.bundled import bundled_gguf_path


def write_gguf(path, architecture: str = "llama"):
    """A small, valid GGUF file with one float32 tensor."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.arange(128, dtype=np.float32).reshape(16, 8))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def cache(monkeypatch, tmp_path):
    folder = tmp_path / "cache"
    monkeypatch.setenv("TEMPO_LAB_CACHE", str(folder))
    return folder


def converted(cache) -> list[str]:
    return sorted(p.name for p in (cache / "gguf").glob("*") if p.is_dir())


def test_a_valid_file_is_read_and_its_architecture_named(tmp_path):
    assert gguf.check_gguf(write_gguf(tmp_path / "m.gguf")) == "llama"
    assert {"llama", "gemma3", "qwen2"} <= set(gguf.supported_architectures())
    assert "general" not in gguf.supported_architectures()


def test_an_unsupported_architecture_is_refused_with_the_supported_list(cache, tmp_path):
    path = write_gguf(tmp_path / "r.gguf", "rwkv6")
    with pytest.raises(ValueError, match=r"'rwkv6' model.*supported architectures: .*gemma3.*llama"):
        load_model(str(path))
    assert converted(cache) == []


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_truncated_or_corrupt_file_is_refused_and_nothing_is_written(cache, tmp_path, damage):
    data = write_gguf(tmp_path / "ok.gguf").read_bytes()
    damaged = {"truncated": data[:-100], "garbage": b"not a gguf file " * 40, "empty": b""}[damage]
    path = tmp_path / f"{damage}.gguf"
    path.write_bytes(damaged)
    with pytest.raises(ValueError, match=f"{path.name} is not a readable GGUF file"):
        load_model(str(path))
    assert converted(cache) == []


def test_a_missing_file_is_named(cache, tmp_path):
    with pytest.raises(FileNotFoundError, match="no GGUF file at .*nothere.gguf"):
        load_model(str(tmp_path / "nothere.gguf"))


def test_hashes_are_remembered_per_path_size_and_mtime(cache, tmp_path):
    path = write_gguf(tmp_path / "m.gguf")
    first = gguf.file_sha256(path, progress=False)
    assert first == __import__("hashlib").sha256(path.read_bytes()).hexdigest()
    memo = json.loads((cache / "gguf" / "hashes.json").read_text())
    assert list(memo.values()) == [first]
    path.write_bytes(path.read_bytes() + b"\0")  # changed content: a new size, so hashed again
    assert gguf.file_sha256(path, progress=False) != first
    assert len(json.loads((cache / "gguf" / "hashes.json").read_text())) == 2


def test_an_interrupted_conversion_leaves_nothing_half_written(cache, tmp_path, monkeypatch, tiny):
    """The conversion writes into a temporary sibling and renames it: interrupted while writing the
    tokenizer (after the weights), neither the target nor the temporary folder is left behind."""
    import transformers

    path = write_gguf(tmp_path / "m.gguf")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tiny.tokenizer)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: tiny.model)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(tiny.tokenizer), "save_pretrained", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gguf.converted_dir(path, progress=False)
    assert converted(cache) == []
    sha = gguf.file_sha256(path, progress=False)
    assert sorted(p.name for p in (cache / "gguf").iterdir()) == ["hashes.json", f"m.{sha[:16]}.lock"]


@pytest.mark.skipif(gguf.fcntl is None, reason="no POSIX file locks on this platform")
def test_two_loads_at_once_convert_the_file_once(cache, tmp_path, monkeypatch):
    """A second load of the same file while the first converts it waits for the first (the lock file beside
    the folder) and then reads its folder: one conversion, one folder."""
    import threading

    path = write_gguf(tmp_path / "m.gguf")
    calls, second, returned = [], [], []

    def load():
        returned.append(gguf.converted_dir(path, progress=False))

    def slow_convert(gguf_path, target, progress=True):
        calls.append(target)
        if len(calls) == 1:  # start the second load now, and give it time to reach the lock
            second.append(threading.Thread(target=load))
            second[0].start()
            second[0].join(timeout=0.5)
            assert second[0].is_alive()  # it waits for this conversion
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(gguf, "convert", slow_convert)
    load()
    second[0].join()
    assert len(calls) == 1 and returned == [calls[0], calls[0]] and converted(cache) == [calls[0].name]


@pytest.mark.bundled
def test_a_gguf_by_path_is_converted_once_per_content_and_equals_the_bundled_model(
    cache, tmp_path, monkeypatch, bundled
):
    copy = tmp_path / "my-model.gguf"
    shutil.copyfile(bundled_gguf_path(), copy)
    lm = load_model(str(copy))
    (folder,) = converted(cache)
    sha = gguf.file_sha256(copy, progress=False)
    assert folder == f"my-model.{sha[:16]}"
    for (name, a), (_, b) in zip(
        lm.model.state_dict().items(), bundled.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    ids = lm.encode("Once upon a time")
    torch.testing.assert_close(lm.model(ids).logits, bundled.model(ids).logits, rtol=0, atol=0)

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again although the cache holds this file's content")

    monkeypatch.setattr(gguf, "convert", must_not_convert)
    again = load_model(str(copy))
    renamed = tmp_path / "renamed.gguf"
    copy.rename(renamed)
    assert gguf.converted_dir(renamed, name="my-model", progress=False) == cache / "gguf" / folder
    assert again.name == "my-model.gguf" and converted(cache) == [folder]
