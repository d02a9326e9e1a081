"""The one timer: functions timed side by side in alternating rounds, medians, optionally quiet rounds only.

    timed = side_by_side({"batched": fast, "naive": slow}, repeats=3)
    timed.medians                      # {"batched": 0.21, "naive": 1.9} seconds
    timing_table(timed.medians, {"batched": 2, "naive": 16}, "naive")

A round calls every function once, in turn, so the functions compared share the machine's state (a change in
load hits both). On a shared machine one busy neighbour slows a step by 10x, so ``quiet_share`` (used by
``benchmarks/``) waits before each round for other processes to go quiet, measures the CPU share they used
during it (from ``/proc/stat``), and keeps only quiet rounds. Timings vary from run to run: the notebooks
show them in cells whose output nbval does not compare.

Every benchmark names the machine its seconds come from (:func:`machine`): the 2-core CPUs this project has
run on differ by 2.4x in float32 matmul peak and 120x in bfloat16 (with and without AMX).

Contents: :func:`side_by_side` → :class:`Timing`, :func:`timing_table`, :func:`others_share`,
:func:`wait_for_quiet`, :func:`machine`.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from tempo_lab.plumbing import checks


@dataclass
class Timing:
    """Median seconds per function (``medians``) and every timed round (``rounds``: per round its
    ``seconds`` per function, and with quiet rounds also ``others_cpu_share``, ``quiet`` and ``waited``).
    ``quiet_rounds_used``: how many quiet rounds the medians come from (0 = all rounds, quiet or not)."""

    medians: dict[str, float]
    rounds: list[dict] = field(default_factory=list)
    quiet_rounds_used: int = 0

    def as_record(self) -> dict:
        """The rounds as a JSON-ready record."""
        return {"rounds": self.rounds, "quiet_rounds_used": self.quiet_rounds_used}


def side_by_side(
    fns: dict[str, Callable[[], object]],
    repeats: int = 3,
    *,
    warm_up: bool = True,
    quiet_share: float | None = None,
    max_wait: float = 60.0,
    deadline: float = float("inf"),
    label: str = "",
) -> Timing:
    """Time ``fns`` in ``repeats`` alternating rounds (after one warm-up call each, unless ``warm_up=False``
    for code that has already run) and return the medians.

    With ``quiet_share`` (e.g. ``0.10``): before each round wait up to ``max_wait`` seconds for other
    processes to use at most that share of the CPUs, and count only rounds during which they did; run up to
    ``3 * repeats`` rounds, none starting after ``deadline`` (a ``time.perf_counter()`` value). If too few
    rounds were quiet, all rounds count (``quiet_rounds_used == 0`` says so). Each round is reported on
    stderr, prefixed with ``label``.
    """
    repeats = checks.count("repeats", repeats)
    for fn in fns.values() if warm_up else ():
        fn()
    rounds: list[dict] = []
    max_rounds = repeats if quiet_share is None else 3 * repeats
    while len(rounds) < max_rounds and sum(r["quiet"] for r in rounds) < repeats:
        if rounds and time.perf_counter() > deadline:
            break
        waited = 0.0 if quiet_share is None else wait_for_quiet(quiet_share, max_wait)
        start, c0 = time.perf_counter(), _cpu_counters()
        seconds = {name: _timed(fn) for name, fn in fns.items()}
        share = others_share(c0, _cpu_counters(), time.perf_counter() - start)
        quiet = quiet_share is None or share <= quiet_share
        rounds.append(
            {"seconds": seconds, "others_cpu_share": round(share, 3), "quiet": quiet, "waited": waited}
        )
        if quiet_share is not None:
            shown = ", ".join(f"{k} {v:.3f}s" for k, v in seconds.items())
            print(
                f"  [{label} round {len(rounds)}] {shown}; others used {share:.0%} of the CPUs",
                file=sys.stderr,
            )
    quiet_rounds = [r for r in rounds if r["quiet"]]
    used = quiet_rounds if len(quiet_rounds) >= repeats else rounds
    medians = {name: statistics.median(r["seconds"][name] for r in used) for name in fns}
    return Timing(medians, rounds, len(used) if used is quiet_rounds else 0)


def timing_table(seconds: dict[str, float], passes: dict[str, int], baseline: str) -> pd.DataFrame:
    """One row per timed function: seconds, forward passes, and the baseline's time divided by its time."""
    return pd.DataFrame(
        [
            {
                "method": name,
                "seconds": round(s, 4),
                "forward passes": passes.get(name),
                f"{baseline} / this": round(seconds[baseline] / s, 2),
            }
            for name, s in seconds.items()
        ]
    ).set_index("method")


#: the instruction sets that decide a CPU's matmul rates (float32: AVX-512; bfloat16: AVX-512 BF16, AMX)
MATMUL_ISA = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def machine() -> dict:
    """What ran a benchmark: ``{"cpu": model name, "cores": usable cores, "threads": torch's threads,
    "isa": the :data:`MATMUL_ISA` flags the CPU has}`` (from ``/proc/cpuinfo``; ``cpu`` is the platform's
    processor string elsewhere, and ``isa`` empty)."""
    import torch

    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            info = file.read()
    except OSError:
        info = ""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": name, "cores": cores, "threads": torch.get_num_threads(),
            "isa": [f for f in MATMUL_ISA if f in flags]}  # fmt: skip


def others_share(before: tuple[float, float] | None, after: tuple[float, float] | None, wall: float) -> float:
    """Fraction of the machine's CPU capacity used by *other* processes between two counters (0 = quiet)."""
    if before is None or after is None or wall <= 0:
        return 0.0
    others = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, others / (wall * (os.cpu_count() or 1)))


def wait_for_quiet(quiet_share: float, max_wait: float) -> float:
    """Sleep in 1-second probes until other processes use at most ``quiet_share`` of the CPUs (or
    ``max_wait`` seconds have passed); returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_wait:
        c0, t0 = _cpu_counters(), time.perf_counter()
        time.sleep(1.0)
        if others_share(c0, _cpu_counters(), time.perf_counter() - t0) <= quiet_share:
            break
    return time.perf_counter() - start


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu_counters() -> tuple[float, float] | None:
    """``(busy CPU seconds of the machine, CPU seconds of this process)``; ``None`` without /proc/stat."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    own = os.times()
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), own.user + own.system
