"""The real Gemma 3 270M (``gemma``): every generator equals the model's own forward on a prompt longer than
its sliding window (512), so the window really cuts.

The model's own forward is transformers' default path: its own cache and native masks (sliding and full
layers, one RoPE base per layer type), called with the positions only. The prompt is the bundled prompt set
joined line by line until it passes 612 tokens: text nobody tuned to these checks.
"""

from __future__ import annotations

import pytest
import torch

from tempo_lab import positions
from tempo_lab.generators import (
    CompressedThoughtGenerator,
    ParallelTokenGenerator,
    RetroactivePositionGenerator,
)
from tempo_lab.prompts import bundled_prompts
from tests.helpers import real_atol

pytestmark = pytest.mark.gemma


@pytest.fixture(scope="module")
def prompt(gemma) -> str:
    """The bundled prompts, one per line in file order, joined until the prompt is 100 tokens past the
    window."""
    window = gemma.model.config.sliding_window
    text = ""
    for line in bundled_prompts().prompts:
        text = f"{text}\n{line}".strip()
        if gemma.encode(text).shape[1] > window + 100:
            return text
    raise AssertionError("the bundled prompts do not pass the window")


def own_logits(lm, ids: torch.Tensor, pos: torch.Tensor, first: int) -> torch.Tensor:
    """The model's own forward (default cache, native masks): the logits of rows ``first`` to the end,
    ``(n - first, vocab)`` (its ``logits_to_keep``: the 262k-token head only where a test reads it)."""
    keep = ids.shape[1] - first
    with torch.no_grad():
        out = lm.model(ids, position_ids=positions.as_model_positions(pos), logits_to_keep=keep)
    return out.logits[0].float()


def test_the_prompt_passes_the_window_and_starts_with_bos(gemma, prompt):
    ids = gemma.encode(prompt)
    config = gemma.model.config
    assert ids.shape[1] > config.sliding_window + 100
    assert int(ids[0, 0]) == gemma.tokenizer.bos_token_id
    assert {"sliding_attention", "full_attention"} <= set(config.layer_types)


def test_retroactive_integer_fractional_and_far_equal_the_models_own_forward(gemma, prompt):
    ids = gemma.encode(prompt)
    t = ids.shape[1]
    token = int(own_logits(gemma, ids, positions.contiguous(t), first=t - 1)[-1].argmax())
    gaps = [0, 3, 2.5, 700.25]
    res = RetroactivePositionGenerator(gemma).explore(prompt, gaps=gaps, token=token)
    seq = torch.cat([ids, torch.tensor([[token]])], 1)
    for i, g in enumerate(gaps):
        expected = own_logits(gemma, seq, positions.appended(t, t + g), first=t)[-1]
        torch.testing.assert_close(res.logits[i], expected, atol=real_atol(gemma, expected), rtol=0,
                                   msg=f"gap {g}")


def test_compressed_paths_equal_the_models_own_forward(gemma, prompt):
    ids = gemma.encode(prompt)
    t = ids.shape[1]
    for gap in (5, 1.5):
        res = CompressedThoughtGenerator(gemma).generate(
            prompt, gap=gap, threshold=0.02, max_candidates=3, path_length=4, keep_logits=True, progress=False
        )
        assert len(res.paths) >= 2
        for path in res.paths:
            seq = torch.cat([ids, torch.tensor([path.token_ids])], 1)
            own = own_logits(gemma, seq, positions.with_gap(t, len(path.token_ids), gap), first=t - 1)
            expected = own[: len(path.token_ids)]
            torch.testing.assert_close(path.logits, expected, atol=real_atol(gemma, expected), rtol=0)


def test_tempo_visible_sets_equal_the_models_own_forward_with_shared_positions(gemma, prompt):
    """Visible TEMPO sets are causal over the fed slots with shared positions, which the model's own forward
    computes from ``position_ids`` alone: each step's distribution (the last member's row) must be its row."""
    ids = gemma.encode(prompt)
    t = ids.shape[1]
    res = ParallelTokenGenerator(gemma).generate(
        prompt, threshold=0.05, max_steps=5, intraset="visible", next_dist="last", progress=False
    )
    sizes = [len(step.token_ids) for step in res.steps]
    assert max(sizes) >= 2, f"no parallel set formed ({sizes}): the check would be plain greedy decoding"
    own = torch.softmax(own_logits(gemma, res.input_ids, res.positions, first=t - 1), -1)  # row t - 1 first
    fed = 0
    for k, step in enumerate(res.steps):
        torch.testing.assert_close(step.distribution, own[fed], atol=real_atol(gemma, 1.0), rtol=0,
                                   msg=f"step {k}")
        fed += sizes[k]


def test_tempo_single_member_sets_are_greedy_decoding_by_the_models_own_forward(gemma, prompt):
    ids = gemma.encode(prompt)
    t = ids.shape[1]
    for mode in ("isolated", "visible"):
        res = ParallelTokenGenerator(gemma).generate(
            prompt, threshold=1.0, max_steps=4, intraset=mode, progress=False
        )
        own = torch.softmax(own_logits(gemma, res.input_ids, res.positions, first=t - 1), -1)
        for k, step in enumerate(res.steps):
            torch.testing.assert_close(step.distribution, own[k], atol=real_atol(gemma, 1.0), rtol=0)
            assert step.token_ids == [int(own[k].argmax())]
