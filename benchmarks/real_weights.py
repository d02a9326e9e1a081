"""Exactness on real weights: the largest difference between each generator and the model's own forward, on
both bundled models (SmolLM2-135M-Instruct and Gemma 3 270M), on one prompt longer than Gemma's sliding
window (512 tokens). These are the "real weights" rows of the family table (docs/models.md);
``tests/test_gemma.py`` asserts the same checks on Gemma.

Run: ``.venv/bin/python benchmarks/real_weights.py [--out benchmarks/real_weights.json]``

Checks (float32, eager attention): the retroactive generator at gaps 0, 3, 2.5 and 700.25 (logits); compressed
paths at gaps 5 and 1.5 (logits); TEMPO visible sets with the last member's row as the next distribution
(probabilities: the model's own forward is told only the shared positions).
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

import torch

from tempo_lab import load_model, positions, timing
from tempo_lab.generators import (
    CompressedThoughtGenerator,
    ParallelTokenGenerator,
    RetroactivePositionGenerator,
)
from tempo_lab.prompts import bundled_prompts

MODELS = {"SmolLM2-135M-Instruct": None, "gemma-3-270m": "gemma3-270m"}
GAPS = [0, 3, 2.5, 700.25]


def long_prompt(lm, length: int) -> str:
    """The bundled prompts, one per line in file order, joined until they pass ``length`` tokens of ``lm``."""
    text = ""
    for line in bundled_prompts().prompts:
        text = f"{text}\n{line}".strip()
        if lm.encode(text).shape[1] > length:
            return text
    raise ValueError("the bundled prompts are too short")


def own(lm, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return lm.model(ids, position_ids=positions.as_model_positions(pos)).logits[0].float()


def measure(lm, prompt: str) -> dict:
    ids = lm.encode(prompt)
    t = ids.shape[1]
    token = int(own(lm, ids, positions.contiguous(t))[-1].argmax())
    seq = torch.cat([ids, torch.tensor([[token]])], 1)
    res = RetroactivePositionGenerator(lm).explore(prompt, gaps=GAPS, token=token)
    retro = max(
        float((res.logits[i] - own(lm, seq, positions.appended(t, t + g))[-1]).abs().max())
        for i, g in enumerate(GAPS)
    )
    compressed = 0.0
    for gap in (5, 1.5):
        run = CompressedThoughtGenerator(lm).generate(
            prompt, gap=gap, threshold=0.02, max_candidates=3, path_length=4, keep_logits=True, progress=False
        )
        for path in run.paths:
            full = own(
                lm,
                torch.cat([ids, torch.tensor([path.token_ids])], 1),
                positions.with_gap(t, len(path.token_ids), gap),
            )
            compressed = max(
                compressed, float((path.logits - full[t - 1 : t - 1 + len(path.token_ids)]).abs().max())
            )
    tempo = ParallelTokenGenerator(lm).generate(
        prompt, threshold=0.05, max_steps=5, intraset="visible", next_dist="last", progress=False
    )
    probs = torch.softmax(own(lm, tempo.input_ids, tempo.positions), -1)
    fed, tempo_diff = t - 1, 0.0
    for step in tempo.steps:
        tempo_diff = max(tempo_diff, float((step.distribution - probs[fed]).abs().max()))
        fed += len(step.token_ids)
    return {
        "prompt_tokens": t,
        "retroactive_max_abs_logit": retro,
        "compressed_max_abs_logit": compressed,
        "tempo_visible_max_abs_prob": tempo_diff,
        "tempo_set_sizes": [len(s.token_ids) for s in tempo.steps],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("real_weights.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    gemma = load_model("gemma3-270m")
    prompt = long_prompt(gemma, gemma.model.config.sliding_window + 100)
    results = {"date": str(date.today()), "machine": timing.machine(), "models": {}}
    for name, key in MODELS.items():
        lm = gemma if key == "gemma3-270m" else load_model(key)
        results["models"][name] = measure(lm, prompt)
        print(name, json.dumps(results["models"][name]))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
