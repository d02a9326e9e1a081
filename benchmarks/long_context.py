"""Long context on this CPU: the bundled model's forward at its whole trained context (8192 tokens) with a
capture of the last query row, and Self-Extend's cost against the plain forward at the same length.

Run: ``.venv/bin/python benchmarks/long_context.py [--length 8192] [--compare-length 2048] [--repeats 3]
[--out benchmarks/long_context.json]``. Each part runs in a fresh child process (this script with
``--part``), so the peak memory it reports is that part's own: the process's maximum resident set, and that
minus the resident set after the model was loaded.

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
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from datetime import date
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from tempo_lab import capture_attention, load_model, timing
from tempo_lab.corpus import load_corpus
from tempo_lab.extension import self_extended
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from roofline import peak  # noqa: E402  (the measured matmul peak, one definition)

WINDOW, GROUP = 512, 8


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


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
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention = config.num_hidden_layers * config.num_attention_heads * 4 * length**2 * head_dim
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
        "peak_rss_mib": rss_bytes() / 2**20,
        "peak_rss_over_loaded_mib": (rss_bytes() - loaded) / 2**20,
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


PARTS = {"forward": forward_part, "self_extend": self_extend_part}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--compare-length", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("long_context.json"))
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)  # one part, in a child
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.part:
        length = args.length if args.part == "forward" else args.compare_length
        print(json.dumps(PARTS[args.part](length, args.repeats)))
        return {}
    out: dict = {"date": str(date.today()), "machine": timing.machine(), "torch": torch.__version__}
    for part in PARTS:
        cmd = [sys.executable, __file__, "--part", part, "--length", str(args.length),
               "--compare-length", str(args.compare_length), "--repeats", str(args.repeats)]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[part] = json.loads(done.stdout.strip().splitlines()[-1])
        print(part, json.dumps(out[part]), flush=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
