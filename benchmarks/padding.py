"""Where a study's batches compute padding, and what grouping a step's rows saves: for each measurement that
steps prompts in lockstep, how many of the query slots its forward passes feed are real tokens, with every
step as one pass and as the lockstep groups it (bundled model, float32, chunks of 32); then the two TEMPO
measurements timed both ways side by side.

Run: ``.venv/bin/python benchmarks/padding.py [--n 302] [--timed 96] [--repeats 3]
[--out benchmarks/padding.json]``

A :class:`~tempo_lab.generators.lockstep.Lockstep` pads in two places: a prefill left-pads every prompt to
the chunk's longest, and a step pads every row to the most tokens any row feeds (a TEMPO step: the largest
set of the batch), unless it runs the step as passes over groups of rows (``lockstep.PASS_COST`` decides;
the one-pass baseline here sets it out of reach). Each pass is recorded as it runs (``Lockstep._forward``
wrapped for the length of the measurement, the original still doing the work): its rows x query slots, and
how many of those are real (``Lockstep.real`` marks every row's own slots); also the histogram of how many
tokens a row feeds per pass (0: in a pass, its run stopped). The FLOP counts of ``benchmarks/roofline.py``
include the padding; this says how much of them it is. The timing: isolation and TEMPO set sizes over the
first ``--timed`` prompts, grouped and one pass in alternating quiet rounds
(``tempo_lab.timing.side_by_side``), their rows checked equal (1e-4).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import date
from pathlib import Path
from unittest import mock

from study import plan_of, same_rows

from tempo_lab import load_model, timing
from tempo_lab.generators import lockstep
from tempo_lab.generators.lockstep import Lockstep
from tempo_lab.phenomena import MEASURES
from tempo_lab.phenomena.conditions import Conditions

LOCKSTEP_MEASUREMENTS = ("fractional", "retroactive", "isolation", "compressed", "tempo_sets")


def recorded(measure, lm, plan, cond) -> dict:
    """Run ``measure`` over every chunk of ``plan`` and count its lockstep passes' slots."""
    counts = {"prefill": [0, 0], "steps": [0, 0]}  # [query slots fed, real ones]
    fed: Counter[int] = Counter()
    forward = Lockstep._forward

    def record(self, ids, positions, allowed, cache=None, rows=None, last=False):
        n, q = ids.shape
        width = allowed.shape[-1]  # this pass's last slot + 1 (a pass over a group of rows: their slots)
        real = (self.real if rows is None else self.real[rows])[:, width - q : width]  # the pass's slots
        kind = "prefill" if last else "steps"  # a prefill projects its last slot only; a step every slot
        counts[kind][0] += n * q
        counts[kind][1] += int(real.sum())
        if kind == "steps":
            fed.update(real.sum(1).tolist())
        return forward(self, ids, positions, allowed, cache=cache, rows=rows, last=last)

    with mock.patch.object(Lockstep, "_forward", autospec=True, side_effect=record):
        for chunk in plan:
            measure(lm, chunk, cond)
    out = {kind: {"slots": s, "real": r, "real_share": r / s if s else None}
           for kind, (s, r) in counts.items()}  # fmt: skip
    out["tokens_fed_per_row_and_pass"] = dict(sorted(fed.items()))
    return out


def one_pass():
    """Every lockstep step as one pass over all rows (grouping never pays)."""
    return mock.patch.object(lockstep, "PASS_COST", 10**9)


def timed(lm, plan, repeats: int) -> dict:
    """Isolation and TEMPO set sizes over ``plan``, grouped and one pass, side by side; rows checked equal."""
    out = {}
    for name in ("isolation", "tempo_sets"):
        rows: dict[str, list] = {}

        def grouped(name=name, rows=rows):
            rows["grouped"] = [r for chunk in plan for r in MEASURES[name](lm, chunk, Conditions())]

        def single(name=name, rows=rows):
            with one_pass():
                rows["one pass"] = [r for chunk in plan for r in MEASURES[name](lm, chunk, Conditions())]

        t = timing.side_by_side({"grouped": grouped, "one pass": single}, repeats, warm_up=False,
                                quiet_share=0.10, label=name)  # fmt: skip
        if not same_rows(rows["grouped"], rows["one pass"]):
            raise SystemExit(f"{name}: grouped steps changed the rows")
        ratio = t.medians["one pass"] / t.medians["grouped"]
        out[name] = {"seconds": t.medians, "one_pass_vs_grouped": ratio, "timing": t.as_record()}
        print(f"{name:<12} grouped {t.medians['grouped']:6.2f} s, one pass {t.medians['one pass']:6.2f} s: "
              f"{ratio:.2f}x")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=302)
    parser.add_argument("--timed", type=int, default=96, help="prompts of the side-by-side timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("padding.json"))
    args = parser.parse_args(argv)
    lm = load_model()
    plan = plan_of(lm, args.n)
    out: dict = {"date": date.today().isoformat(), "machine": timing.machine(), "model": lm.name,
                 "prompts": sum(len(c) for c in plan), "batch_size": 32, "pass_cost": lockstep.PASS_COST,
                 "measurements": {}}  # fmt: skip
    for name in LOCKSTEP_MEASUREMENTS:
        found = out["measurements"][name] = {}
        with one_pass():
            found["one pass"] = recorded(MEASURES[name], lm, plan, Conditions())
        found["grouped"] = recorded(MEASURES[name], lm, plan, Conditions())
        for way, counted in found.items():
            pre, steps = counted["prefill"], counted["steps"]
            print(f"{name:<12} {way:<8} prefill {pre['real']:6d} of {pre['slots']:6d} slots real "
                  f"({pre['real_share']:.1%}); steps {steps['real']:6d} of {steps['slots']:6d} "
                  f"({steps['real_share']:.1%}); "
                  f"tokens fed per row and pass: {counted['tokens_fed_per_row_and_pass']}")  # fmt: skip
    out["timed"] = {"prompts": args.timed, **timed(lm, plan_of(lm, args.timed), args.repeats)}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
