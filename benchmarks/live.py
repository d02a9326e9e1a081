"""Live exploration on the bundled model: the cost of a move, end to end, a prompt change, and memory.

Run: ``.venv/bin/python benchmarks/live.py [--moves 50] [--out benchmarks/live.json]``

1. Model part of a position move (the position explorer's one cached step of two branches: the chosen
   position and gap 0) against one cached decode step of the same prompt (``DecodingCore.step`` of one token
   on a branch of the prompt's cache), side by side, quiet rounds only (``tempo_lab.timing.side_by_side``).
2. End to end: ``--moves`` scripted slider moves through a :class:`tempo_lab.views.Panel`, each the work the
   panel's worker does for one event (the model, the figure, the PNG, the widget values); p50 and p90, and
   the p50 of its two parts: the render (the model's step, the numbers, the figure's artists updated) and the
   drawing (the figure drawn and encoded as a PNG, the widget values set). The browser's own drawing is not
   included. Then the figure part alone, side by side: a move's figure kept and updated, and encoded at the
   light zlib level (what the explorers do), against a figure built anew and encoded at the default level
   (what they did before), over the same moves of one exploration. Then the end to end for changes of the
   layers and the rotary bands that see the move (notebook 09's live controls), with the forward passes each
   change runs.
3. A prompt change: the forward passes it runs (counted with a hook on the model).
4. Memory: the process's RSS before and after 200 moves, after 150 warm-up moves (the first moves fill the
   allocator's pools and matplotlib's caches: RSS grows by ~40 MiB once, then stays flat).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from datetime import date
from pathlib import Path

import psutil
import torch

from tempo_lab import load_model, plots, timing
from tempo_lab.forward import branch
from tempo_lab.generators import RetroactivePositionGenerator
from tempo_lab.layout import Layout
from tempo_lab.live.session import LiveSession
from tempo_lab.phenomena import gap_dropout, retroactive
from tempo_lab.phenomena.retroactive import display as retroactive_display
from tempo_lab.views import Panel
from tempo_lab.views.panel import png

PROMPT = (
    "The old lighthouse keeper climbed the spiral stairs every evening, long after the ships had stopped "
    "coming. He polished the great lens, lit the lamp, and wrote in his logbook"
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("live.json"))
    args = parser.parse_args(argv)
    lm = load_model()
    out: dict = {"date": date.today().isoformat(), "machine": timing.machine(), "model": lm.name}

    # 1. the model part of a move against one cached decode step
    session = LiveSession(lm)
    prefix = session.use_prompt(PROMPT)
    t, token = prefix.length, session.token_id(" the")
    out["prompt_tokens"] = t

    def move():
        return session.place(token, [t + 2.5, float(t)])

    def decode_step():
        placed = Layout(torch.tensor([[float(t)]]))
        return session.core.step(branch(prefix.cache, 1), torch.tensor([[token]]), placed)

    fns = {"move": move, "decode_step": decode_step}
    timed = timing.side_by_side(fns, 20, quiet_share=0.10, label="move")
    out["move_seconds"], out["decode_step_seconds"] = timed.medians["move"], timed.medians["decode_step"]
    out["move_vs_decode_step"] = timed.medians["move"] / timed.medians["decode_step"]

    # 2. end to end through a panel, for the position and the gap explorers
    for name, slice_, control in (("position", retroactive, "gap"), ("gap", gap_dropout, "gap")):
        panel = Panel(slice_.explorer(LiveSession(lm)), prompt=PROMPT, token=" the")
        seconds, rendering, drawing = [], [], []
        for i in range(args.moves):
            values = {**panel.values(), control: (i % 25) + (0.5 if name == "position" else 0)}
            start = time.perf_counter()
            rendered = panel._render(values, None)
            middle = time.perf_counter()
            panel._show(values, rendered)
            end = time.perf_counter()
            seconds.append(end - start)
            rendering.append(middle - start)
            drawing.append(end - middle)
        q = statistics.quantiles(seconds, n=10)
        out[f"{name}_end_to_end_p50"], out[f"{name}_end_to_end_p90"] = statistics.median(seconds), q[8]
        out[f"{name}_render_p50"] = statistics.median(rendering)
        out[f"{name}_drawing_p50"] = statistics.median(drawing)

    # 2a. the figure part alone: kept and updated vs built anew, over the same moves
    explored = RetroactivePositionGenerator(lm).explore(PROMPT, gaps=[g / 2 for g in range(61)], token=" the")
    kept, moves = plots.LiveFigure(), iter(range(10**9))

    def gap() -> float:
        return (next(moves) % 59 + 1) / 2

    def kept_figure():
        return png(retroactive_display.render(explored, lm, gap(), 30.0, kept=kept).figure, fast=True)

    def new_figure():
        return png(retroactive_display.render(explored, lm, gap(), 30.0).figure)

    fns = {"kept": kept_figure, "new": new_figure}
    timed = timing.side_by_side(fns, 20, quiet_share=0.10, label="figure")
    out["figure_kept_seconds"], out["figure_new_seconds"] = timed.medians["kept"], timed.medians["new"]
    out["figure_new_vs_kept"] = timed.medians["new"] / timed.medians["kept"]

    # 2b. the layers and bands that see the move (notebook 09's live controls): each change one cached step
    panel = Panel(retroactive_display.explorer(LiveSession(lm)), prompt=PROMPT, token=" the")
    options = panel.view.controls["bands"].options
    n_layers = lm.model.config.num_hidden_layers
    seconds, passes = [], []
    hook = lm.model.base_model.register_forward_pre_hook(lambda *_: passes.append(1))
    for i in range(args.moves):
        values = {
            **panel.values(),
            "gap": 46.0,
            "layers_to": 5 + i % (n_layers - 5),
            "bands": options[i % len(options)],
        }
        passes.clear()
        start = time.perf_counter()
        panel._show(values, panel._render(values, None))
        seconds.append(time.perf_counter() - start)
    hook.remove()
    q = statistics.quantiles(seconds, n=10)
    out["seen_by_end_to_end_p50"], out["seen_by_end_to_end_p90"] = statistics.median(seconds), q[8]
    out["seen_by_forward_passes_per_change"] = len(passes)

    # 3. a prompt change: which forward passes run
    panel = Panel(retroactive_display.explorer(LiveSession(lm)), prompt=PROMPT, token=" the")
    calls = []
    hook = lm.model.base_model.register_forward_pre_hook(
        lambda _m, _a, kw: calls.append(list(kw["input_ids"].shape)), with_kwargs=True
    )
    values = {**panel.values(), "prompt": "Once upon a time, in a small village by the sea,"}
    start = time.perf_counter()
    panel._show(values, panel._render(values, None))
    out["prompt_change_seconds"] = time.perf_counter() - start
    hook.remove()
    out["prompt_change_forward_passes"] = calls  # [batch, q] per pass: the prefill, then one step

    # 4. memory over 200 moves, after a warm-up
    for i in range(150):
        values = {**panel.values(), "gap": (i % 50) * 0.5}
        panel._show(values, panel._render(values, None))
    gc.collect()
    rss = psutil.Process().memory_info().rss
    for i in range(200):
        values = {**panel.values(), "gap": (i % 50) * 0.5}
        panel._show(values, panel._render(values, None))
    gc.collect()
    out["rss_mib_before_after_200_moves"] = [rss / 2**20, psutil.Process().memory_info().rss / 2**20]

    for key, value in out.items():
        print(f"{key:<36} {value:.4f}" if isinstance(value, float) else f"{key:<36} {value}")
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
