"""Shared, session-scoped model fixtures.

``tiny`` / ``tiny_sdpa``: the seeded 2-layer random Llama (eager / SDPA), built in milliseconds.
``tiny_gpt2``: a 2-layer GPT-2 (learned absolute positions, no rotary) built from a config, no hub access.
``bundled``: the bundled SmolLM2-135M-Instruct, loaded once per session (converted and cached on first use).
``gemma``: the bundled Gemma 3 270M, the same way.
Tests must leave these models as they found them (eval mode, same attention implementation, no hooks).
"""

from __future__ import annotations

import os

import pytest

# Nothing in the tests may reach a model hub: fail at once instead of retrying a network that is not there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tempo_lab import load_model  # noqa: E402
from tempo_lab.models import LoadedModel
from tempo_lab.tiny import tiny_random


@pytest.fixture(scope="session")
def tiny() -> LoadedModel:
    return load_model("tiny-random")


@pytest.fixture(scope="session")
def tiny_sdpa() -> LoadedModel:
    return load_model("tiny-random", attn_implementation="sdpa")


@pytest.fixture(scope="session")
def tiny_gpt2() -> LoadedModel:
    return tiny_random("gpt2")


@pytest.fixture(scope="session")
def bundled() -> LoadedModel:
    return load_model()


@pytest.fixture(scope="session")
def gemma() -> LoadedModel:
    return load_model("gemma3-270m")
