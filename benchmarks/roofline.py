"""Speed against the machine's own limit: each workload's achieved FLOP rate as a fraction of the measured
matmul peak, in float32 and bfloat16 (bundled model).

Run: ``.venv/bin/python benchmarks/roofline.py [--prompts 8] [--repeats 3] [--dtypes float32 bfloat16]
[--out benchmarks/roofline.json]`` (a run of some dtypes replaces only theirs in an existing ``--out``).

- **Peak**: ``torch.nn.functional.linear`` (the call and weight layout of the model's own layers) on the
  model's own shapes (512 tokens x hidden into the intermediate size, the vocabulary, and the hidden size),
  the best rate of those (per shape the fastest of 30 runs: the median of 5 moved by a third from one run to
  the next on this shared machine, the fastest by ~5%), per dtype: what this CPU's kernels deliver for the
  work a forward pass consists of. (A bfloat16 ``a @ b`` with a row-major ``b`` runs ten times slower than
  the same product as a linear layer on a CPU without AVX-512 BF16, so the layout matters.)
- **FLOPs** of a workload: counted while it runs, by ``torch.utils.flop_counter.FlopCounterMode`` (every
  matmul and attention product it really computes: padding, masked slots and recomputations included; the
  elementwise work is not counted, so a fraction near 1 means the matmuls ran at peak and nothing else cost).
- **Time**: the median of ``--repeats`` runs after the counting run, which warms up; 2 threads. (A single run
  of a study measurement, timed while a short job shared the cores, once took 7x its usual time.)

Workloads: a prefill (8 prompts x 64 tokens), one cached decode step (8 rows after 64 tokens), a retroactive
move (16 positions: one prefill and one batched step), a compressed run (5 paths x 20 tokens), a TEMPO run
(10 steps), each of the six study measurements on ``--prompts`` bundled prompts batched, and their sum, the
study.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from tempo_lab import load_model, timing
from tempo_lab.forward import DecodingCore, branch
from tempo_lab.generators import (
    CompressedThoughtGenerator,
    ParallelTokenGenerator,
    RetroactivePositionGenerator,
)
from tempo_lab.layout import Layout
from tempo_lab.phenomena import DEFAULT_STUDY, MEASURES
from tempo_lab.phenomena.conditions import Conditions
from tempo_lab.prompts import bundled_prompts, encode

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
STORY = "Once upon a time, in a small village by the sea, there lived an old fisherman who"


def run_seconds(fn: Callable[[], object], repeats: int, warm_up: bool = True, best: bool = False) -> float:
    """The median (``best``: the fastest) of ``repeats`` timed calls of ``fn``, after one untimed call."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) if best else statistics.median(times)


def flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def peak(config, dtype: torch.dtype) -> dict:
    """The best matmul rate on the model's own shapes, GFLOP/s: per shape the fastest of 30 runs (the median
    of 5 moved by a third from one run to the next on this shared machine; the fastest moves by ~5%)."""
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    rates = {}
    for name, (m, k, n) in {"mlp": (512, h, i), "head": (512, h, v), "attention proj": (512, h, h)}.items():
        x, weight = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
        seconds = run_seconds(lambda x=x, w=weight: torch.nn.functional.linear(x, w), 30, best=True)
        rates[name] = 2 * m * k * n / seconds / 1e9
    return {"shapes": rates, "peak": max(rates.values())}


def workloads(lm, n_prompts: int) -> dict[str, Callable[[], object]]:
    core = DecodingCore(lm)
    story = lm.encode(STORY)
    ids = torch.cat([story] * 8, 1)[:, :64].repeat(8, 1)  # (8, 64)
    positions = torch.arange(64, dtype=torch.float32).repeat(8, 1)
    causal = torch.ones(64, 64, dtype=torch.bool).tril()[None, None]
    prefix = core.prefill(ids[:1])

    def prefill():
        core.forward(ids, Layout(positions, causal))

    def cached_step():
        core.step(branch(prefix.cache, 8), torch.full((8, 1), 11), Layout(torch.full((8, 1), 64.0)))

    retro, compressed, tempo = (
        RetroactivePositionGenerator(lm),
        CompressedThoughtGenerator(lm),
        ParallelTokenGenerator(lm),
    )
    prompts = bundled_prompts().head(n_prompts)
    cond = Conditions()
    batch = [(k, encode(lm, prompts, k)) for k in range(len(prompts))]
    out = {
        "prefill (8 x 64 tokens)": prefill,
        "cached step (8 rows after 64)": cached_step,
        "retroactive move (16 positions)": lambda: retro.explore(
            STORY, gaps=[g / 2 for g in range(16)], token=","
        ),
        "compressed run (5 paths x 20 tokens)": lambda: compressed.generate(
            STORY, gap=20, threshold=0.01, max_candidates=5, path_length=20, progress=False
        ),
        "TEMPO run (10 steps)": lambda: tempo.generate(STORY, threshold=0.1, max_steps=10, progress=False),
    }
    for name in DEFAULT_STUDY:
        out[f"study: {name} ({len(batch)} prompts)"] = lambda m=MEASURES[name]: m(lm, batch, cond)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("roofline.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    results: dict = json.loads(args.out.read_text()) if args.out.is_file() else {"dtypes": {}}
    results.update({"threads": torch.get_num_threads(), "prompts": args.prompts, "repeats": args.repeats})
    for dname in args.dtypes:
        dtype = DTYPES[dname]
        lm = load_model(dtype=dtype)
        top = peak(lm.model.config, dtype)
        rows, study = {}, {"gflop": 0.0, "seconds": 0.0}
        shapes = ", ".join(f"{k} {v:.1f}" for k, v in top["shapes"].items())
        print(f"{dname}: peak {top['peak']:.1f} GFLOP/s ({shapes})", flush=True)
        for name, fn in workloads(lm, args.prompts).items():
            gflop = flops(fn) / 1e9  # also the warm-up
            seconds = run_seconds(fn, args.repeats, warm_up=False)
            rate = gflop / seconds
            rows[name] = {"gflop": gflop, "seconds": seconds, "gflops": rate, "fraction": rate / top["peak"]}
            if name.startswith("study"):
                study = {"gflop": study["gflop"] + gflop, "seconds": study["seconds"] + seconds}
            share = rate / top["peak"]
            print(f"  {name:<42} {gflop:9.2f} GFLOP {seconds:8.3f} s {rate:7.1f} GFLOP/s {share:6.1%}")
        rate = study["gflop"] / study["seconds"]
        rows["the study (six measurements)"] = {**study, "gflops": rate, "fraction": rate / top["peak"]}
        print(f"  {'the study (six measurements)':<42} {study['gflop']:9.2f} GFLOP {study['seconds']:8.3f} s "
              f"{rate:7.1f} GFLOP/s {rate / top['peak']:6.1%}")  # fmt: skip
        results["dtypes"][dname] = {"date": str(date.today()), "machine": timing.machine(), "peak": top,
                                    "workloads": rows}
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
