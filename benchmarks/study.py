"""A study over 64 prompts, batched, against looping the single-prompt generators (bundled model), or against
the same measurement run one prompt at a time (``--baseline one-at-a-time``: what models with sliding-window
layers ran before their batches counted windows per row).

Run: ``.venv/bin/python benchmarks/study.py [--n 64] [--repeats 1] [--out benchmarks/study.json]``; on
Gemma 3: ``.venv/bin/python benchmarks/study.py --model gemma3-270m --n 32
--baseline one-at-a-time --out benchmarks/study_gemma.json``

For each measurement, the batched run (the phenomenon's ``measure``, prompts in chunks of 32 as
``run_study`` cuts them) and the loop (its ``single_rows``, prompt after prompt through the single-prompt
generators and probe) run side by side in alternating quiet rounds
(``tempo_lab.timing.side_by_side``, no warm-up: the model is warm after loading); the rows of the timed
runs are checked equal (1e-4).
Reports each measurement's ratio, its batched throughput in prompts per second, and the ratio over the
whole study. Target: the whole study >= 4x faster batched.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import date
from pathlib import Path

import torch

from tempo_lab import load_model, timing
from tempo_lab.phenomena import DEFAULT_STUDY, MEASURES, SINGLE
from tempo_lab.phenomena.conditions import Conditions
from tempo_lab.prompts import bundled_prompts, encode
from tempo_lab.studies.run import chunks

KEYS = ("prompt", "strategy", "mode", "gap", "threshold")


def same_rows(a: list[dict], b: list[dict]) -> bool:
    index = {tuple(r.get(k) for k in KEYS): r for r in b}
    for row in a:
        other = index[tuple(row.get(k) for k in KEYS)]
        for name, value in row.items():
            if isinstance(value, float):
                if not (math.isnan(value) and math.isnan(other[name])) and abs(value - other[name]) > 1e-4:
                    return False
            elif value != other[name]:
                return False
    return len(a) == len(b)


def plan_of(lm, n: int, batch_size: int = 32) -> list[list[tuple[int, torch.Tensor]]]:
    """The first ``n`` bundled prompts, encoded, in the chunks ``run_study`` cuts (sorted by length)."""
    prompts = bundled_prompts().head(n)
    ids = [encode(lm, prompts, i) for i in range(len(prompts))]
    return [[(i, ids[i]) for i in chunk] for chunk in chunks([x.shape[1] for x in ids], batch_size)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--model", default=None, help="a load_model name (default: the bundled SmolLM2)")
    parser.add_argument("--baseline", choices=["loop", "one-at-a-time"], default="loop")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("study.json"))
    args = parser.parse_args(argv)
    lm = load_model(args.model)
    cond = Conditions()
    plan = plan_of(lm, args.n, args.batch_size)
    everything = [pair for chunk in plan for pair in chunk]
    out: dict = {"date": date.today().isoformat(), "machine": timing.machine(), "model": lm.name,
                 "baseline": args.baseline, "prompts": len(everything),
                 "batch_size": args.batch_size, "conditions": cond.as_dict()}  # fmt: skip
    total = {"batched": 0.0, "looped": 0.0}
    for phenomenon in DEFAULT_STUDY:
        measure, rows = MEASURES[phenomenon], {}

        def batched(m=measure, out=rows):
            out["batched"] = [row for chunk in plan for row in m(lm, chunk, cond)]

        def one_by_one(p=phenomenon, m=measure, out=rows):
            if args.baseline == "loop":
                out["looped"] = [row for i, ids in everything for row in SINGLE[p](lm, i, ids, cond)]
            else:
                out["looped"] = [row for pair in everything for row in m(lm, [pair], cond)]

        timed = timing.side_by_side({"batched": batched, "looped": one_by_one}, args.repeats, warm_up=False,
                                    quiet_share=0.10, label=phenomenon)  # fmt: skip
        if not same_rows(rows["batched"], rows["looped"]):
            raise SystemExit(f"{phenomenon}: batched rows differ from the single-prompt rows")
        s = timed.medians
        total = {k: total[k] + s[k] for k in total}
        out[phenomenon] = {
            "seconds": s,
            "speedup": s["looped"] / s["batched"],
            "prompts_per_second": len(everything) / s["batched"],
            "timing": timed.as_record(),
        }
        rec = out[phenomenon]
        print(f"{phenomenon:<12} batched {s['batched']:7.1f} s  looped {s['looped']:7.1f} s  "
              f"{rec['speedup']:5.2f}x  {rec['prompts_per_second']:6.2f} prompts/s")  # fmt: skip
    out["total"] = {"seconds": total, "speedup": total["looped"] / total["batched"],
                    "prompts_per_second": len(everything) / total["batched"]}  # fmt: skip
    print(f"{'all six':<12} batched {total['batched']:7.1f} s  looped {total['looped']:7.1f} s  "
          f"{out['total']['speedup']:5.2f}x")  # fmt: skip
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
