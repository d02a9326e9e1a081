"""Side-by-side timings of the three generators against their naive baselines, printed as ratios.

Run: ``.venv/bin/python benchmarks/run.py [--repeats N] [--out benchmarks/results.json]``

Everything runs on the bundled SmolLM2-135M-Instruct (fp32, eager attention, torch's default thread count) in
one process. Each measurement is the median of ``--repeats`` timed runs (``time.perf_counter``) after a
warm-up; a generator and its baseline are timed in alternating rounds, so a change in machine load hits both.
Rounds during which other processes used more than 10% of the CPUs (read from /proc/stat) are set aside and
rerun (:func:`tempo_lab.timing.side_by_side` with ``quiet_share``): on a shared 2-core machine one busy
neighbour slows a step by 10x.
Progress bars are off while timing. Every baseline computes the same thing as the code it is compared with,
and the script checks that (same tokens, logits equal to 1e-4) before timing.

Benchmarks (targets from issue 3):

1. retroactive, 16 positions: ``explore`` (one prefill + one batched forward of 16 + 1 branches) vs one full
   uncached recomputation per position (target >= 6x faster), and vs the floor = one prefill plus one
   single-token cached step (target <= 2x of the floor).
2. compressed thoughts, 5 paths, gap 20, 20 tokens each: ``generate`` (one prefill + 20 batched cached steps)
   vs greedy expansion of each path by uncached full forward passes, one per token (target >= 4x faster).
3. parallel tokens: the same sets fed in isolated vs visible mode (replayed with ``forced_sets``; target
   <= 1.10x), and the cost of one parallel step vs one greedy cached step of ``model.generate`` (target
   <= 1.3x). Per-step cost is measured by differencing, the same way on both sides, so the prefill cancels:
   ``generate``: ``(t(N new tokens) - t(1 new token)) / (N - 1)`` (``generate`` with one new token runs only
   the prefill; each further token is one cached step); ours: ``(t(S sets) - t(first set only)) / (S - 1)``
   with the sets replayed, so both runs feed identical tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tempo_lab import load_model, positions, reference, timing
from tempo_lab.forward import DecodingCore, branch
from tempo_lab.generators import (
    CompressedThoughtGenerator,
    ParallelTokenGenerator,
    RetroactivePositionGenerator,
)
from tempo_lab.layout import Layout
from tempo_lab.models import LoadedModel

PROMPT = (
    "The old lighthouse keeper climbed the spiral stairs every evening, long after the ships had stopped "
    "coming. He polished the great lens, lit the lamp, and wrote in his logbook the same three words: "
    "all is well. One stormy night in November, as the wind howled outside, he"
)
RETRO_GAPS = [0, 0.5, 1, 2, 3, 4.5, 6, 8, 10, 15, 20, 30, 50, 75, 100, 150]
PATHS, GAP, PATH_LEN = 5, 20, 20
PARALLEL = {"threshold": 0.1, "max_steps": 20, "max_set_size": 5}
QUIET_SHARE = 0.10  # a timing round counts as quiet if other processes used at most 10% of the CPUs
DEADLINE = [float("inf")]  # perf_counter time after which no timing round starts (set from --max-minutes)


def side_by_side(fns: dict[str, Callable[[], object]], repeats: int, *, warm_up=True, label=""):
    """:func:`tempo_lab.timing.side_by_side` over quiet rounds only: ``(medians, record of every round)``."""
    timed = timing.side_by_side(
        fns, repeats, warm_up=warm_up, quiet_share=QUIET_SHARE, deadline=DEADLINE[0], label=label
    )
    return timed.medians, timed.as_record()


def bench_retroactive(lm: LoadedModel, repeats: int) -> dict:
    gen, core = RetroactivePositionGenerator(lm), DecodingCore(lm)
    ids = lm.encode(PROMPT)
    t = ids.shape[1]
    token = int(core.prefill(ids).next_logits.argmax())

    def ours():
        return gen.explore(PROMPT, gaps=RETRO_GAPS, token=token)

    def naive():
        return reference.retroactive_naive(lm, PROMPT, token, RETRO_GAPS)

    def floor():
        prefix = core.prefill(ids)
        return core.step(branch(prefix.cache, 1), torch.tensor([[token]]), Layout(torch.tensor([[float(t)]])))

    floor()
    err = (ours().logits - naive()).abs().max().item()  # also the warm-up
    assert err < 1e-4, f"retroactive logits differ from the full recomputation by {err}"
    s, all_times = side_by_side(
        {"ours": ours, "naive": naive, "floor": floor}, repeats, warm_up=False, label="retroactive"
    )
    return {
        "prompt_tokens": t,
        "positions": len(RETRO_GAPS),
        "max_abs_logit_diff": err,
        "seconds": s,
        "timing": all_times,
        "speedup_vs_naive": s["naive"] / s["ours"],
        "cost_vs_floor": s["ours"] / s["floor"],
    }


def bench_compressed(lm: LoadedModel, repeats: int) -> dict:
    gen, core = CompressedThoughtGenerator(lm), DecodingCore(lm)
    ids = lm.encode(PROMPT)
    t = ids.shape[1]
    kw = {"gap": GAP, "threshold": 1e-4, "max_candidates": PATHS, "path_length": PATH_LEN, "progress": False}

    def ours():
        return gen.generate(PROMPT, **kw)

    def naive():
        """The candidates from one full pass, then each path grown by uncached full passes, one per token."""
        cands = core.full(ids, Layout(positions.contiguous(t)))[0, -1].topk(PATHS).indices.tolist()
        return reference.compressed_naive(lm, PROMPT, cands, GAP, PATH_LEN)

    res = ours()  # the correctness check doubles as the warm-up
    paths = [p.token_ids for p in res.paths]
    assert len(paths) == PATHS and paths == naive(), "compressed paths differ from the naive expansion"
    s, all_times = side_by_side(
        {"ours": ours, "naive": naive}, max(1, min(repeats, 3)), warm_up=False, label="compressed"
    )
    return {
        "prompt_tokens": t,
        "paths": PATHS,
        "gap": GAP,
        "path_length": PATH_LEN,
        "tokens_per_path": [len(p) - 1 for p in paths],
        "seconds": s,
        "timing": all_times,
        "speedup_vs_naive": s["naive"] / s["ours"],
    }


def bench_parallel(lm: LoadedModel, repeats: int) -> dict:
    gen = ParallelTokenGenerator(lm)
    ids = lm.encode(PROMPT)
    t = ids.shape[1]
    free = {m: gen.generate(PROMPT, intraset=m, progress=False, **PARALLEL) for m in ("isolated", "visible")}
    sets = [s.token_ids for s in free["isolated"].steps]
    n_sets = len(sets)
    assert n_sets >= 3 and free["isolated"].stop == "max_steps", "the benchmark prompt must not hit EOS early"

    def replay(mode: str, k: int) -> Callable[[], object]:
        return lambda: gen.generate(PROMPT, intraset=mode, forced_sets=sets[:k], progress=False)

    attn = torch.ones_like(ids)
    n_new = n_sets

    def hf_generate(n: int) -> Callable[[], object]:
        return lambda: lm.model.generate(
            ids, attention_mask=attn, max_new_tokens=n, min_new_tokens=n, do_sample=False,
            pad_token_id=lm.tokenizer.eos_token_id,
        )  # fmt: skip

    s, all_times = side_by_side(
        {
            "isolated": replay("isolated", n_sets),
            "visible": replay("visible", n_sets),
            "isolated_first_set": replay("isolated", 1),
            "generate_n": hf_generate(n_new),
            "generate_1": hf_generate(1),
        },
        repeats,
        label="parallel",
    )
    ours_step = (s["isolated"] - s["isolated_first_set"]) / (n_sets - 1)
    hf_step = (s["generate_n"] - s["generate_1"]) / (n_new - 1)
    sizes = [len(x) for x in sets]
    return {
        "prompt_tokens": t,
        "sets": n_sets,
        "set_sizes": sizes,
        "mean_set_size": sum(sizes) / len(sizes),
        "text_isolated": free["isolated"].text,
        "text_visible": free["visible"].text,
        "seconds": s,
        "timing": all_times,
        "isolated_vs_visible": s["isolated"] / s["visible"],
        "step_seconds": {"parallel_isolated": ours_step, "generate": hf_step},
        "step_vs_generate": ours_step / hf_step,
    }


# (benchmark, what, result key, target text, bound, "min" = ratio must be >= bound / "max" = <= bound)
ROWS = [
    ("retroactive", "16 positions: naive / ours", "speedup_vs_naive", ">= 6x", 6.0, "min"),
    ("retroactive", "16 positions: ours / floor", "cost_vs_floor", "<= 2x", 2.0, "max"),
    ("compressed", "5 paths x 20 tokens, gap 20: naive / ours", "speedup_vs_naive", ">= 4x", 4.0, "min"),
    ("parallel", "same sets: isolated / visible", "isolated_vs_visible", "<= 1.10x", 1.10, "max"),
    ("parallel", "per step: parallel / generate()", "step_vs_generate", "<= 1.3x", 1.3, "max"),
]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per measurement (median)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=30.0,
        help="time budget for waiting for quiet timing rounds, split over the 3 benchmarks",
    )
    args = parser.parse_args(argv)

    lm = load_model()
    load_before = os.getloadavg()
    results = {}
    for name, bench in (
        ("retroactive", bench_retroactive),
        ("compressed", bench_compressed),
        ("parallel", bench_parallel),
    ):
        DEADLINE[0] = time.perf_counter() + 60.0 * args.max_minutes / 3  # a third of the budget each
        results[name] = bench(lm, args.repeats)
    table = []
    for bench, what, key, target, bound, kind in ROWS:
        value = results[bench][key]
        # A differenced per-step time can come out <= 0 when the machine's load changed between rounds:
        # that is a failed measurement, never a met target.
        valid = value > 0
        ok = valid and (value >= bound if kind == "min" else value <= bound)
        row = {"benchmark": bench, "what": what, "ratio": round(value, 3), "target": target, "met": ok}
        if not valid:
            row["note"] = "invalid measurement (non-positive time difference): rerun on a quiet machine"
        table.append(row)
    results["table"] = table
    results["environment"] = {
        "model": lm.name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "repeats": args.repeats,
        "loadavg_before_after": [load_before, os.getloadavg()],
    }

    print(f"{'benchmark':<12} {'what':<44} {'ratio':>8}  {'target':<9} met")
    for row in table:
        b, w, v, tg = row["benchmark"], row["what"], row["ratio"], row["target"]
        print(f"{b:<12} {w:<44} {v:>7.2f}x  {tg:<9} {row['met']}")
    r, c, p = results["retroactive"], results["compressed"], results["parallel"]
    print(
        f"\nretroactive: ours {r['seconds']['ours']:.3f}s, naive {r['seconds']['naive']:.3f}s, "
        f"floor {r['seconds']['floor']:.3f}s ({r['prompt_tokens']}-token prompt, max |dlogit| "
        f"{r['max_abs_logit_diff']:.1e})"
    )
    print(f"compressed: ours {c['seconds']['ours']:.3f}s, naive {c['seconds']['naive']:.3f}s")
    ps, st = p["seconds"], p["step_seconds"]
    print(
        f"parallel: {p['sets']} sets (mean size {p['mean_set_size']:.2f}); isolated {ps['isolated']:.3f}s, "
        f"visible {ps['visible']:.3f}s (same sets replayed)\n"
        f"  per step: ours {st['parallel_isolated'] * 1e3:.1f} ms = (t(S sets) - t(1 set)) / (S - 1);"
        f" generate {st['generate'] * 1e3:.1f} ms = (t(N tokens) - t(1 token)) / (N - 1), S = N = {p['sets']}"
    )
    for name in ("retroactive", "compressed", "parallel"):
        rounds = results[name]["timing"]["rounds"]
        used = results[name]["timing"]["quiet_rounds_used"]
        note = "" if used else " (too few quiet rounds: all rounds used)"
        print(f"{name}: {len(rounds)} timing rounds, {used} quiet rounds used{note}")
    print(f"load average before/after: {load_before} / {os.getloadavg()}")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
