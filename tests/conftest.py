"""Shared, session-scoped model fixtures.

``tiny`` / ``tiny_sdpa``: the seeded 2-layer random Llama (eager / SDPA), built in milliseconds.
``tiny_gpt2``: a 2-layer GPT-2 (learned absolute positions, no rotary) built from a config, no hub access.
``bundled``: the bundled SmolLM2-135M-Instruct, loaded once per session (converted and cached on first use).
Tests must leave these models as they found them (eval mode, same attention implementation, no hooks).
"""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from tempo_lab import load_model
from tempo_lab.models import LoadedModel, _byte_tokenizer


@pytest.fixture(scope="session")
def tiny() -> LoadedModel:
    return load_model("tiny-random")


@pytest.fixture(scope="session")
def tiny_sdpa() -> LoadedModel:
    return load_model("tiny-random", attn_implementation="sdpa")


@pytest.fixture(scope="session")
def tiny_gpt2() -> LoadedModel:
    tokenizer = _byte_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, name="tiny-gpt2")


@pytest.fixture(scope="session")
def bundled() -> LoadedModel:
    return load_model()
