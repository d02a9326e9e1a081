"""Long context on this CPU: the bundled model's forward at its whole trained context (8192 tokens) with a
capture of the last query row, Self-Extend's cost against the plain forward at the same length, and the
study's 16k forward under each method against transformers' own.

Run: ``.venv/bin/python benchmarks/long_context.py [--length 8192] [--compare-length 2048] [--long 16384]
[--repeats 3] [--only long] [--out benchmarks/long_context.json]``. Each part runs in a fresh child process
(this script with ``--part``), so the peak memory it reports is that part's own: the process's maximum
resident set, and that minus the resident set after the model was loaded.

- **forward**: ``--length`` tokens of the committed TPI corpus's text through the decoding core, causal, the
  last slot's logits only, inside ``capture_attention(queries=[-1])`` (every layer's output by SDPA, the last
  row's probabilities kept: ``(1, heads, 1, length)`` per layer). Its FLOPs: the linear layers as
  ``FlopCounterMode`` counts them, plus attention as SDPA with a mask computes it, ``4 n² head_dim`` per head
  and layer (the counter does not see CPU SDPA); the rate as a fraction of the matmul peak measured in the
  same process (``roofline.peak``, the fastest linear layer on the model's own shapes).
- **self_extend**: at ``--compare-length`` tokens, the plain forward (eager attention, as the model is loaded)
  against the same forward inside ``self_extended(window=512, group=8)`` (two score matrices per layer), timed
  side by side (``timing.side_by_side``, alternating rounds, medians); the ratio. Self-Extend's paper puts its
  cost at two score matrices: at most about twice the attention.
- **long**: at ``--long`` tokens, the model loaded as the long-context study loads it (SDPA), the last slot's
  logits of four forwards: transformers' own ``model(ids, logits_to_keep=1)`` (the baseline), tempo_lab's
  ``DecodingCore.forward`` under the plain layout, under YaRN and under Self-Extend, each method set for the
  length as the study sets it (``Method.for_length``). Times side by side in one process (alternating rounds,
  medians, ``--long-repeats``), the ratios to the baseline, and the plain layout's last logits against the
  baseline's; the peak memory of each in a fresh child process of its own (its maximum resident set over the
  resident set after loading, one forward), the ratios to the baseline's; and each one's FLOP rate as a
  fraction of the measured matmul peak, with the linear layers as ``FlopCounterMode`` counts them on 2048
  tokens, scaled to the length (they grow with the tokens), and the attention counted causally
  (``2 n² head_dim`` per head and layer: the upper triangle is not computed; Self-Extend's two score matrices
  count twice). The study's targets: the plain layout and YaRN within 1.1x the baseline's time and 1.2x its
  memory, Self-Extend within 2.5x the plain forward's time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from tempo_lab import capture_attention, load_model, timing
from tempo_lab.corpus import load_corpus
from tempo_lab.extension import self_extended
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.long_context.study import load_study_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from roofline import peak  # noqa: E402  (the measured matmul peak, one definition)

WINDOW, GROUP = 512, 8


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory(loaded: int) -> dict:
    """This process's peak resident set so far, and that over ``loaded`` (the resident set after loading),
    in MiB."""
    return {"peak_rss_mib": rss_bytes() / 2**20, "peak_rss_over_loaded_mib": (rss_bytes() - loaded) / 2**20}


def attention_flops(config, length: int, *, causal_only: bool) -> int:
    """The score and value matmuls of every head and layer at ``length`` tokens: ``4 n² head_dim`` per head
    and layer when the whole square is computed (SDPA with a mask), half that when only the causal triangle
    is."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    per_head = (2 if causal_only else 4) * length**2 * head_dim
    return config.num_hidden_layers * config.num_attention_heads * per_head


def text_ids(lm, length: int) -> torch.Tensor:
    """``(1, length)`` token ids of the TPI corpus's training text."""
    text = bytes(load_corpus().train.tolist()).decode("utf-8", errors="replace")
    ids = lm.encode(text)
    if ids.shape[1] < length:
        raise ValueError(f"the corpus gives {ids.shape[1]} tokens, fewer than --length {length}")
    return ids[:, :length]


def causal(n: int) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool).tril()[None, None]


def forward_part(length: int, repeats: int) -> dict:
    lm = load_model()
    config = lm.model.config
    loaded = rss_bytes()
    top = peak(config, torch.float32)["peak"]
    ids = text_ids(lm, length)
    positions, mask, core = torch.arange(length, dtype=torch.float32)[None], causal(length), DecodingCore(lm)

    def run() -> torch.Tensor:
        with capture_attention(lm.model, queries=[-1]) as rec:
            logits = core.forward(ids, Layout(positions, mask), last=True)
        assert rec.weights[0].shape == (1, config.num_attention_heads, 1, length)
        return logits

    with FlopCounterMode(display=False) as counter:
        run()
    attention = attention_flops(config, length, causal_only=False)
    seconds = timing.side_by_side({"forward": run}, repeats, warm_up=False).medians["forward"]
    total = counter.get_total_flops() + attention
    return {
        "tokens": length,
        "seconds": seconds,
        "tokens_per_second": length / seconds,
        "gflop_linear": counter.get_total_flops() / 1e9,
        "gflop_attention": attention / 1e9,
        "gflops": total / seconds / 1e9,
        "peak_gflops": top,
        "fraction_of_peak": total / seconds / 1e9 / top,
        **peak_memory(loaded),
    }


def self_extend_part(length: int, repeats: int) -> dict:
    lm = load_model()
    ids = text_ids(lm, length)
    positions, mask, core = torch.arange(length, dtype=torch.float32)[None], causal(length), DecodingCore(lm)

    def plain() -> torch.Tensor:
        return core.forward(ids, Layout(positions, mask), last=True)

    def extended() -> torch.Tensor:
        with self_extended(lm, window=WINDOW, group=GROUP):
            return core.forward(ids, Layout(positions, mask), last=True)

    medians = timing.side_by_side({"plain": plain, "self_extend": extended}, repeats).medians
    return {
        "tokens": length,
        "window": WINDOW,
        "group": GROUP,
        "plain_seconds": medians["plain"],
        "self_extend_seconds": medians["self_extend"],
        "ratio": medians["self_extend"] / medians["plain"],
        "peak_rss_mib": rss_bytes() / 2**20,
    }


LONG = ("model", "plain", "yarn", "self_extend")


def _long_runs(lm, length: int) -> dict:
    """The four forwards of the long part, each returning the last slot's logits ``(1, vocab)``."""
    from tempo_lab.extension.methods import Method

    ids = text_ids(lm, length)
    core = DecodingCore(lm)

    def model() -> torch.Tensor:
        with torch.inference_mode():
            return lm.model(input_ids=ids, logits_to_keep=1).logits[:, -1]

    def under(name: str):
        method = Method.for_length(lm, name, length)

        def run() -> torch.Tensor:
            with torch.inference_mode(), method.applied(lm):
                return core.forward(ids, Layout.contiguous(length), last=True)[:, -1]

        return run

    return {"model": model, **{name: under(name) for name in LONG[1:]}}


def long_memory_part(length: int, repeats: int, variant: str = "model") -> dict:
    lm = load_study_model("smollm2-135m")
    loaded = rss_bytes()
    start = time.perf_counter()
    _long_runs(lm, length)[variant]()
    return {"seconds_once": time.perf_counter() - start, **peak_memory(loaded)}


def long_time_part(length: int, repeats: int) -> dict:
    lm = load_study_model("smollm2-135m")
    config = lm.model.config
    small = min(length, 2048)  # the linear layers' FLOPs grow with the tokens: counted at 2048, scaled
    with FlopCounterMode(display=False) as counter:
        _long_runs(lm, small)["plain"]()
    linear = counter.get_total_flops() * length / small
    runs, last = _long_runs(lm, length), {}

    def kept(name: str):
        def run() -> None:
            last[name] = runs[name]()

        return run

    medians = timing.side_by_side({name: kept(name) for name in LONG}, repeats, warm_up=False).medians
    same = torch.allclose(last["model"], last["plain"], atol=1e-3, rtol=1e-3)
    assert same, "the plain layout's logits left the model's own"
    causal_attention = attention_flops(config, length, causal_only=True)
    top = peak(config, torch.float32)["peak"]
    out = {"tokens": length, "peak_gflops": top, "gflop_linear": linear / 1e9,
           "gflop_attention_causal": causal_attention / 1e9,
           "plain_vs_model_max_logit_difference": float((last["model"] - last["plain"]).abs().max()),
           }  # fmt: skip
    for name in LONG:
        flops = linear + causal_attention * (2 if name == "self_extend" else 1)
        out[name] = {"seconds": medians[name], "time_ratio": medians[name] / medians["model"],
                     "fraction_of_peak": flops / medians[name] / 1e9 / top}  # fmt: skip
    out["self_extend"]["time_over_plain"] = medians["self_extend"] / medians["plain"]
    return out


PARTS = {"forward": forward_part, "self_extend": self_extend_part, "long_time": long_time_part,
         "long_memory": long_memory_part}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--compare-length", type=int, default=2048)
    parser.add_argument("--long", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-repeats", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=["forward", "self_extend", "long"],
                        help="only these parts (the others are kept from --out as it is)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("long_context.json"))
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)  # one part, in a child
    parser.add_argument("--variant", choices=LONG, default="model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.part:
        length = {"forward": args.length, "self_extend": args.compare_length}.get(args.part, args.long)
        repeats = args.long_repeats if args.part.startswith("long") else args.repeats
        extra = {"variant": args.variant} if args.part == "long_memory" else {}
        print(json.dumps(PARTS[args.part](length, repeats, **extra)))
        return {}
    kept = json.loads(args.out.read_text()) if args.only and args.out.exists() else {}
    out: dict = {"date": str(date.today()), "machine": timing.machine(), "torch": torch.__version__}
    out = {**out, **kept}  # with --only, the kept parts keep their date; the new ones carry their own

    def child(part: str, *extra: str) -> dict:
        cmd = [sys.executable, __file__, "--part", part, "--length", str(args.length), "--compare-length",
               str(args.compare_length), "--long", str(args.long), "--repeats", str(args.repeats),
               "--long-repeats", str(args.long_repeats), *extra]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    for part in ("forward", "self_extend"):
        if not args.only or part in args.only:
            out[part] = {**child(part), "date": str(date.today())}
            print(part, json.dumps(out[part]), flush=True)
    if not args.only or "long" in args.only:
        long = child("long_time")
        for name in LONG:
            long[name].update(child("long_memory", "--variant", name))
        for name in LONG:
            long[name]["memory_ratio"] = (long[name]["peak_rss_over_loaded_mib"]
                                          / long["model"]["peak_rss_over_loaded_mib"])  # fmt: skip
        out["long"] = {**long, "repeats": args.long_repeats, "date": str(date.today())}
        print("long", json.dumps(long), flush=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
