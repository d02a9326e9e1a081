"""Interventions on the bundled model: a head-patching sweep against the naive loop, and a position gradient
against one forward pass.

Run: ``.venv/bin/python benchmarks/interventions.py [--repeats 3] [--out benchmarks/interventions.json]``

Everything runs on the bundled SmolLM2-135M-Instruct (fp32, eager attention, torch's default threads) in one
process, each pair timed side by side in alternating rounds, quiet rounds only
(:func:`tempo_lab.timing.side_by_side`), medians reported.

1. **Head patching** (issue 20's target: >= 5x faster than the naive loop, with the same numbers): the
   prompt's last token moved 20 positions later (a retroactive move); every layer x head attention output at
   that slot patched from the clean run into the moved one (30 x 9 = 270 sites). :func:`patch` (two recorded
   runs, the unmoved slots prefilled once, the sites as batched one-token branches) against
   :func:`patch_naively` (one uncached forward per site). The script checks the two give the same numbers (to
   1e-4) before timing.
2. **Position gradient** (target: <= 3x one forward pass): :func:`position_gradients` over every slot (one
   forward with autograd, one backward, weights frozen) against one plain forward of the same sequence; and
   the per-layer gradient (a zero offset per layer) against the same forward.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tempo_lab import load_model, timing
from tempo_lab.forward import DecodingCore
from tempo_lab.interventions import Site, logit_diff, patch, patch_naively, position_gradients
from tempo_lab.layout import Layout

PROMPT = (
    "The old lighthouse keeper climbed the spiral stairs every evening, long after the ships had stopped "
    "coming. He polished the great lens, lit the lamp, and wrote in his logbook"
)
QUIET_SHARE = 0.10


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("interventions.json"))
    args = parser.parse_args(argv)
    lm = load_model()
    ids = lm.encode(PROMPT)
    n = ids.shape[1]
    out: dict = {
        "model": lm.name,
        "machine": timing.machine(),
        "prompt_tokens": n,
    }
    clean, corrupt = Layout.contiguous(n, "gap 0"), Layout.gapped(n, n - 1, 20.0, "gap 20")
    metric = logit_diff(lm, " the", " his")
    n_layers, n_heads = lm.model.config.num_hidden_layers, lm.model.config.num_attention_heads
    sites = [Site("head", layer, n - 1, head) for layer in range(n_layers) for head in range(n_heads)]

    def ours():
        return patch(lm, ids, clean, corrupt, metric, kinds=("head",), slots=[n - 1])

    def naive():
        return patch_naively(lm, ids, clean, corrupt, metric, sites)

    got, expected = ours(), naive()
    difference = float((torch.tensor(got.frame.metric.tolist()) - torch.tensor(expected)).abs().max())
    if difference > 1e-4:
        raise SystemExit(f"patch and the naive loop disagree by {difference:g}: nothing timed")
    timed = timing.side_by_side(
        {"patch": ours, "naive": naive},
        args.repeats,
        warm_up=False,
        quiet_share=QUIET_SHARE,
        label="patching",
    )
    out["patching"] = {
        "sites": len(sites),
        "batched_passes": got.runs,
        "max_difference": difference,
        "patch_seconds": timed.medians["patch"],
        "naive_seconds": timed.medians["naive"],
        "speedup": timed.medians["naive"] / timed.medians["patch"],
        "target_speedup": ">= 5",
    }

    core = DecodingCore(lm)
    fns = {
        "forward": lambda: core.full(ids, corrupt),
        "gradient": lambda: position_gradients(lm, ids, corrupt, metric),
        "per_layer_gradient": lambda: position_gradients(lm, ids, corrupt, metric, per_layer=True),
    }
    timed = timing.side_by_side(fns, max(5, args.repeats), quiet_share=QUIET_SHARE, label="gradient")
    forward = timed.medians["forward"]
    out["gradient"] = {
        "forward_seconds": forward,
        "gradient_seconds": timed.medians["gradient"],
        "per_layer_seconds": timed.medians["per_layer_gradient"],
        "gradient_vs_forward": timed.medians["gradient"] / forward,
        "per_layer_vs_forward": timed.medians["per_layer_gradient"] / forward,
        "target_vs_forward": "<= 3",
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
