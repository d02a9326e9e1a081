"""Re-positioned caches against recomputing: a rolling-cache step against the recomputed window, and a
reused chunk against the full prefill, on the bundled model.

Run: ``.venv/bin/python benchmarks/caches.py [--window 1024] [--chunk 512] [--repeats 3]
[--out benchmarks/caches.json]``. Text: the committed TPI corpus. Timed side by side
(``timing.side_by_side``, alternating rounds, medians), 2 threads.

- **rolling**: StreamingLLM with 4 sinks and ``window - 4`` window tokens, the cache full: one step = evict
  the oldest window token, move the window one position down (:func:`~tempo_lab.caches.reposition`), feed
  the next token; against the exact reference, the ``window`` kept tokens run from scratch (what a rolling
  window costs without a cache). Target: the step at least 10x faster at window 1024.
- **chunk**: a ``--chunk``-token chunk whose cache was computed earlier, placed behind a 64-token prefix: the
  prefix's prefill, the chunk's cache moved and appended, one query token; against the full prefill of prefix
  and chunk and the same query token.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import torch

from tempo_lab import load_model, masks, timing
from tempo_lab.caches import Rolling, concat, evict, kept_slots, reposition
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from long_context import text_ids  # noqa: E402  (the corpus text, one definition)

SINKS, PREFIX = 4, 64


def rolling_part(lm, window: int, repeats: int) -> dict:
    core = DecodingCore(lm)
    rolling = Rolling(SINKS, window - SINKS)
    ids = text_ids(lm, window + 1)
    full = core.prefill(ids[:, :window]).cache  # the cache is full: the next token evicts
    t = window  # the token fed next
    kept = kept_slots(rolling, t)
    step_mask = masks.causal_mask(1, window, dtype=lm.dtype)

    def step() -> torch.Tensor:
        cache = reposition(lm, evict(full, SINKS), -1.0, slots=range(SINKS, window - 1))
        at = torch.tensor([[float(window - 1)]])  # the last cache slot's position
        return core.forward(ids[:, t : t + 1], Layout(at, step_mask), cache, last=True)

    def recompute() -> torch.Tensor:
        where = torch.arange(len(kept), dtype=torch.float32)[None]
        allowed = torch.ones(len(kept), len(kept), dtype=torch.bool).tril()[None, None]
        return core.forward(ids[:, kept], Layout(where, allowed), last=True)

    medians = timing.side_by_side({"step": step, "recompute": recompute}, repeats).medians
    return {"window": window, "sinks": SINKS, "step_seconds": medians["step"],
            "recompute_seconds": medians["recompute"],
            "speedup": medians["recompute"] / medians["step"]}  # fmt: skip


def chunk_part(lm, chunk: int, repeats: int) -> dict:
    core = DecodingCore(lm)
    ids = text_ids(lm, PREFIX + chunk + 1)
    prefix, held, query = ids[:, :PREFIX], ids[:, PREFIX : PREFIX + chunk], ids[:, -1:]
    stored = core.prefill(held).cache  # computed earlier, as a serving system keeps it
    where = torch.tensor([[float(PREFIX + chunk)]])
    sees = masks.causal_mask(1, PREFIX + chunk + 1, dtype=lm.dtype)

    def reused() -> torch.Tensor:
        cache = concat(core.prefill(prefix).cache, reposition(lm, stored, float(PREFIX)))
        return core.forward(query, Layout(where, sees), cache, last=True)

    def recomputed() -> torch.Tensor:
        cache = core.prefill(ids[:, : PREFIX + chunk]).cache
        return core.forward(query, Layout(where, sees), cache, last=True)

    medians = timing.side_by_side({"reused": reused, "recomputed": recomputed}, repeats).medians
    return {"prefix": PREFIX, "chunk": chunk, "reused_seconds": medians["reused"],
            "recomputed_seconds": medians["recomputed"],
            "speedup": medians["recomputed"] / medians["reused"]}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("caches.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    lm = load_model()
    out = {"date": str(date.today()), "machine": timing.machine(), "torch": torch.__version__,
           "rolling": rolling_part(lm, args.window, args.repeats),
           "chunk": chunk_part(lm, args.chunk, args.repeats)}  # fmt: skip
    print(json.dumps({k: out[k] for k in ("rolling", "chunk")}, indent=1))
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
