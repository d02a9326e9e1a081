"""Tiny random models of any family, for tests: seeded weights and a byte-level tokenizer, no files.

Contents: :func:`tiny_random`, :func:`byte_tokenizer`, :data:`SMALL`, :data:`TINY_CONFIGS`, :data:`TINY_NAME`,
:data:`NO_FLOAT64`,
:data:`MATRIX` (the family matrix: every family tempo_lab is checked on, with the overrides that give the
sliding-window families a window of :data:`MATRIX_WINDOW` slots).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from tempo_lab.loaded import LoadedModel, default_device

TINY_NAME = "tiny-random"


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


# Small configs: SMALL for any family with the usual field names, TINY_CONFIGS where a family differs. Every
# field can be overridden in :func:`tiny_random`.
SMALL: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "max_position_embeddings": 256,
}
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
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 256},
    "gptj": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 256, "rotary_dim": 4},
    "codegen": {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 256, "n_ctx": 256, "rotary_dim": 4},
    "falcon": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
               "max_position_embeddings": 256},  # fmt: skip
}

#: families whose tiny model runs in float32, with the reason
NO_FLOAT64 = {"gpt_oss": "its experts' grouped matmul takes float32, bfloat16 or float16 only"}

# The family matrix (tests/test_families.py, benchmarks/gpu.py): each family's overrides of its tiny config.
MATRIX_WINDOW = 4
_MIXED = {"layer_types": ["sliding_attention", "full_attention"]}
MATRIX: dict[str, dict[str, Any]] = {
    "llama": {},
    "mistral": {"sliding_window": MATRIX_WINDOW},
    "qwen2": {"use_sliding_window": True, "sliding_window": MATRIX_WINDOW, "max_window_layers": 1},
    "qwen3": {},
    "gemma": {},
    "gemma2": {"sliding_window": MATRIX_WINDOW},
    "gemma3_text": {"sliding_window": MATRIX_WINDOW, **_MIXED},
    "phi3": {},
    "gpt_neox": {"rotary_pct": 0.5, "num_key_value_heads": None},
    "olmo2": {},
    "stablelm": {},
    "granite": {},
    "cohere": {},
    "cohere2": {"sliding_window": MATRIX_WINDOW, **_MIXED},
    "gpt2": {},
    "starcoder2": {},
    "helium": {},
    "smollm3": {},
    "olmo": {},
    "olmo3": {"sliding_window": MATRIX_WINDOW, **_MIXED},
    "glm": {},
    "phi": {},
    "falcon": {},
    "gptj": {},
    "codegen": {},
    "gpt_oss": {
        "sliding_window": MATRIX_WINDOW, **_MIXED, "num_local_experts": 2, "num_experts_per_tok": 1,
        "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                            "rope_theta": 10000.0, "beta_fast": 32.0, "beta_slow": 1.0},
    },
}


def tiny_random(
    model_type: str = "llama",
    *,
    seed: int = 0,
    attn_implementation: str = "eager",
    name: str | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    **overrides: Any,
) -> LoadedModel:
    """A small model of family ``model_type`` with seeded random weights.

    The config is ``AutoConfig.for_model(model_type, **TINY_CONFIGS.get(model_type, SMALL), **overrides)``
    (an override of ``None`` drops a field) with the vocabulary and end-of-sequence token of ``tokenizer``
    (default: :func:`byte_tokenizer`; the bundled model's tokenizer makes a tiny model that the notebooks'
    default prompts suit). The default, a 2-layer Llama (RoPE, grouped-query attention) drawn with a
    larger-than-usual init so next-token distributions are peaked enough for thresholds to select several
    tokens, builds in a fraction of a second. The global RNG is untouched. The weights are drawn on the CPU
    (the same numbers everywhere) and then moved to ``device`` (default :func:`~tempo_lab.loaded.
    default_device`).

    ``dtype`` is float64 by default: a tiny model is for checking the mathematics, and in float64 no CPU's or
    GPU's order of reduction (float32 rounds differently for another batch shape on some CPUs) comes near a
    test's tolerance. The families of :data:`NO_FLOAT64` run in float32 (the reason is given there). Give
    ``torch.float32`` to mimic a real model's rounding or to time it.
    """
    tokenizer = tokenizer or byte_tokenizer()
    eos = tokenizer.eos_token_id
    fields = {"bos_token_id": eos, **TINY_CONFIGS.get(model_type, SMALL), **overrides}
    fields = {k: v for k, v in fields.items() if v is not None or k == "bos_token_id"}
    config = AutoConfig.for_model(
        model_type, vocab_size=len(tokenizer), eos_token_id=eos, pad_token_id=eos, **fields
    )
    config._attn_implementation = attn_implementation
    with torch.random.fork_rng(devices=[]), torch.device("cpu"):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    dtype = dtype or (torch.float32 if model_type in NO_FLOAT64 else torch.float64)
    model.to(device if device is not None else default_device(), dtype)
    model.eval()
    default_name = TINY_NAME if model_type == "llama" else f"tiny-{model_type}"
    return LoadedModel(model=model, tokenizer=tokenizer, name=name or default_name)
