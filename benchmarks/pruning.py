"""The cost of retroactive pruning by attention (bundled model) against an unpruned run on the same sets.

Run: ``.venv/bin/python benchmarks/pruning.py [--repeats 5] [--out benchmarks/pruning.json]``

The sets of a free TEMPO run (threshold 0.1, 20 steps) are replayed three ways, side by side in alternating
quiet rounds (``tempo_lab.timing.side_by_side``): unpruned; pruned by closing mask columns (the mechanism,
attention of every layer captured to decide); pruned with the recompute baseline (the cache rebuilt from
scratch after each pruning). Target: mask-only pruning <= 1.15x the unpruned run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tempo_lab import load_model, timing
from tempo_lab.generators import ParallelTokenGenerator, Pruning

PROMPT = (
    "The old lighthouse keeper climbed the spiral stairs every evening, long after the ships had stopped "
    "coming. He polished the great lens, lit the lamp, and"
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("pruning.json"))
    args = parser.parse_args(argv)
    lm = load_model()
    gen = ParallelTokenGenerator(lm)
    free = gen.generate(PROMPT, threshold=0.1, max_steps=20, progress=False)
    sets = [s.token_ids for s in free.steps if s.fed]
    masked, rebuilt = Pruning(threshold=0.3, window=2), Pruning(threshold=0.3, window=2, recompute=True)
    runs = {
        "unpruned": lambda: gen.generate(PROMPT, forced_sets=sets, progress=False),
        "pruned": lambda: gen.generate(PROMPT, forced_sets=sets, prune=masked, progress=False),
        "pruned_recompute": lambda: gen.generate(PROMPT, forced_sets=sets, prune=rebuilt, progress=False),
    }
    pruned_run = runs["pruned"]()
    timed = timing.side_by_side(runs, args.repeats, quiet_share=0.10, label="pruning")
    s = timed.medians
    out = {
        "sets": len(sets),
        "set_sizes": [len(x) for x in sets],
        "members_pruned": sum(sum(st.pruned) for st in pruned_run.steps if st.pruned),
        "text": pruned_run.text,
        "seconds": s,
        "pruned_vs_unpruned": s["pruned"] / s["unpruned"],
        "recompute_vs_unpruned": s["pruned_recompute"] / s["unpruned"],
        "timing": timed.as_record(),
    }
    for key in ("sets", "set_sizes", "members_pruned", "text", "seconds", "pruned_vs_unpruned",
                "recompute_vs_unpruned"):  # fmt: skip
        print(f"{key:<24} {out[key]}")
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
