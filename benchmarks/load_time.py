"""Load time of the bundled model: first load (GGUF conversion into an empty cache) and cached load.

Run: ``.venv/bin/python benchmarks/load_time.py [--repeats 3]``

Each load runs in a fresh Python process, so nothing is warm in memory. Per repeat: a new empty temporary
``TEMPO_LAB_CACHE`` folder, one *first* load (de-quantise the GGUF, convert the tokenizer, write the cache,
load it), then one *cached* load from that folder. The time is ``load_model()`` alone
(``time.perf_counter``); the ``import tempo_lab`` (torch + transformers) before it is timed separately.
Prints every run and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = """
import json, time
t0 = time.perf_counter()
from tempo_lab import load_model
t1 = time.perf_counter()
lm = load_model()
t2 = time.perf_counter()
assert lm.encode("Once upon a time,").shape[1] == 5
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1}))
"""


def timed_load(cache: str) -> dict:
    env = dict(os.environ, TEMPO_LAB_CACHE=cache, TQDM_DISABLE="1")
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    first, cached = [], []
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="tempo_lab_cache.") as cache:
            a = timed_load(cache)
            b = timed_load(cache)
        first.append(a["load_s"])
        cached.append(b["load_s"])
        print(
            f"run {r + 1}: first load {a['load_s']:.2f} s, cached load {b['load_s']:.2f} s "
            f"(import tempo_lab {a['import_s']:.2f} s / {b['import_s']:.2f} s)",
            flush=True,
        )
    print(f"median first load (conversion): {statistics.median(first):.2f} s")
    print(f"median cached load:             {statistics.median(cached):.2f} s")


if __name__ == "__main__":
    main()
