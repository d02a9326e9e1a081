"""Where a study's batches compute padding: for each measurement that steps prompts in lockstep, how many of
the query slots its forward passes feed are real tokens (bundled model, float32, chunks of 32).

Run: ``.venv/bin/python benchmarks/padding.py [--n 302] [--out benchmarks/padding.json]``

A :class:`~tempo_lab.generators.lockstep.Lockstep` pads in two places: a prefill left-pads every prompt to
the chunk's longest, and a step pads every row to the most tokens any row feeds (a TEMPO step: the largest
set of the batch). Each pass is recorded as it runs (``Lockstep._forward`` wrapped for the length of the
measurement, the original still doing the work): its rows x query slots, and how many of those are real
(``Lockstep.real`` marks every row's own slots). The FLOP counts of ``benchmarks/roofline.py`` include the
padding; this says how much of them it is. Also the histogram of how many tokens a row feeds per step (0: its
run has stopped). Nothing here is timed.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import date
from pathlib import Path
from unittest import mock

from tempo_lab import load_model, timing
from tempo_lab.generators.lockstep import Lockstep
from tempo_lab.phenomena import MEASURES
from tempo_lab.studies import Conditions, bundled_prompts
from tempo_lab.studies.prompts import encode
from tempo_lab.studies.runner import chunks

LOCKSTEP_MEASUREMENTS = ("fractional", "retroactive", "isolation", "compressed", "tempo_sets")


def recorded(measure, lm, plan, cond) -> dict:
    """Run ``measure`` over every chunk of ``plan`` and count its lockstep passes' slots."""
    counts = {"prefill": [0, 0], "steps": [0, 0]}  # [query slots fed, real ones]
    fed: Counter[int] = Counter()
    forward = Lockstep._forward

    def record(self, ids, positions, allowed, last=False):
        rows, q = ids.shape
        real = self.real[:, -q:]  # already holds this pass's slots
        kind = "prefill" if last else "steps"  # a prefill projects its last slot only; a step every slot
        counts[kind][0] += rows * q
        counts[kind][1] += int(real.sum())
        if kind == "steps":
            fed.update(real.sum(1).tolist())
        return forward(self, ids, positions, allowed, last=last)

    with mock.patch.object(Lockstep, "_forward", autospec=True, side_effect=record):
        for chunk in plan:
            measure(lm, chunk, cond)
    out = {kind: {"slots": s, "real": r, "real_share": r / s if s else None}
           for kind, (s, r) in counts.items()}  # fmt: skip
    out["tokens_fed_per_row_and_step"] = dict(sorted(fed.items()))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=302)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("padding.json"))
    args = parser.parse_args(argv)
    lm = load_model()
    prompts = bundled_prompts().head(args.n)
    ids = [encode(lm, prompts, i) for i in range(len(prompts))]
    plan = [[(i, ids[i]) for i in chunk] for chunk in chunks([x.shape[1] for x in ids], 32)]
    out: dict = {"date": date.today().isoformat(), "machine": timing.machine(), "model": lm.name,
                 "prompts": len(prompts), "batch_size": 32, "measurements": {}}  # fmt: skip
    for name in LOCKSTEP_MEASUREMENTS:
        found = out["measurements"][name] = recorded(MEASURES[name], lm, plan, Conditions())
        pre, steps = found["prefill"], found["steps"]
        print(f"{name:<12} prefill {pre['real']:6d} of {pre['slots']:6d} slots real "
              f"({pre['real_share']:.1%}); steps {steps['real']:6d} of {steps['slots']:6d} "
              f"({steps['real_share']:.1%}); "
              f"tokens fed per row and step: {found['tokens_fed_per_row_and_step']}")  # fmt: skip
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
