"""How to rebuild each notebook's first view from its parameters: imported by the browser tests, and by the
one cell the browser runs in each notebook's own kernel (the lab fixture copies this file beside the
notebooks), so the page and the test process make the same package calls on the same values.

Each recipe takes the values of the notebook's ``parameters`` cell (with the small parameters of
:mod:`tests.notebooks.small` on top) and makes the same package calls as the notebook, returning the same
:class:`~tempo_lab.views.View`. ``shows`` is the notebook's call that builds the view; the browser test checks
that the notebook still contains it, so a recipe cannot silently drift from it. Notebooks 06, 08 and 10 read
their committed results from ``p["results_root"]``.

Contents: :class:`Recipe`, :data:`RECIPES`, :func:`rebuild`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tempo_lab.views import View


@dataclass(frozen=True)
class Recipe:
    shows: str
    rebuild: Callable[[dict[str, Any]], View]


def _nb01(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.phenomena import gap_dropout
    from tempo_lab.phenomena.gap_dropout import display as gap_dropout_display

    result = gap_dropout.gap_probe(load_model(p["model_name"]), p["prompt"], p["token"], p["gaps"])
    return gap_dropout_display.view(result)


def _nb02(p: dict[str, Any]) -> View:
    from tempo_lab import load_model, positions
    from tempo_lab.generators import RetroactivePositionGenerator
    from tempo_lab.phenomena.fractional import display as fractional_display

    lm = load_model(p["model_name"])
    natural = lm.encode_prompt(p["prompt"])[1].shape[1] - 1  # start and stop are offsets from it
    grid = positions.grid(natural + p["start"], natural + p["stop"], p["step"])
    return fractional_display.view(RetroactivePositionGenerator(lm).sweep(p["prompt"], grid))


def _nb03(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.generators import RetroactivePositionGenerator
    from tempo_lab.phenomena.retroactive import display as retroactive_display

    lm = load_model(p["model_name"])
    gaps = list(range(0, p["max_gap"] + 1, p["gap_step"]))
    gen = RetroactivePositionGenerator(lm)
    sweep = gen.explore(p["prompt"], gaps=gaps, token=p["token"], top_k=p["top_k"])
    return retroactive_display.view(sweep, lm)


def _nb04(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.phenomena import isolation
    from tempo_lab.phenomena.isolation import display as isolation_display

    thresholds = sorted(set(p["thresholds"]) | {p["threshold"]})
    pairs = isolation.parallel_pairs(load_model(p["model_name"]), p["prompt"], thresholds,
                                     max_steps=p["max_steps"], max_set_size=p["max_set_size"])  # fmt: skip
    return isolation_display.view(pairs)


def _nb05(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.phenomena import compressed
    from tempo_lab.phenomena.compressed import display as compressed_display

    runs = compressed.compressed_runs(
        load_model(p["model_name"]), p["prompt"], p["gaps"], threshold=p["threshold"],
        max_candidates=p["max_candidates"], path_length=p["path_length"],
    )  # fmt: skip
    return compressed_display.view(runs)


def _nb06(p: dict[str, Any]) -> View:
    from tempo_lab.phenomena.retroactive import display as retroactive_display
    from tempo_lab.studies import read_study

    return retroactive_display.study_view(read_study(Path(p["results_root"]) / "06_claims_at_scale"))


def _nb07(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.phenomena import pruning
    from tempo_lab.phenomena.pruning import display as pruning_display

    thresholds = sorted(set(p["prune_thresholds"]) | {p["prune_threshold"]})
    runs = pruning.pruning_runs(load_model(p["model_name"]), p["prompt"], thresholds, window=p["window"],
                                threshold=p["threshold"], max_steps=p["max_steps"])  # fmt: skip
    return pruning_display.view(runs)


def _nb08(p: dict[str, Any]) -> View:
    from tempo_lab.corpus import load_corpus
    from tempo_lab.tpi import display as tpi_display
    from tempo_lab.tpi.runs import checkpoint

    folder = Path(p["results_root"]) / "08_tpi"
    models = {name: checkpoint(name, folder) for name in ("rope", "tpi", "tpi-decay")}
    text = bytes(load_corpus().val[:96].tolist()).decode("utf-8", errors="replace")  # the first probe snippet
    return tpi_display.shift_view(models, text)


def _nb10(p: dict[str, Any]) -> View:
    import torch

    from tempo_lab.corpus import load_corpus
    from tempo_lab.tpi import display as tpi_display
    from tempo_lab.tpi import lengths
    from tempo_lab.tpi.runs import checkpoint

    folder = Path(p["results_root"]) / "10_context_extension"
    text = torch.tensor(list(p["prompt"].encode()) + load_corpus().val.tolist())[: p["live_bytes"]]
    return tpi_display.length_view(checkpoint("rope", folder), text, lengths.trained_length(folder))


def _nb11(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.caches import display
    from tempo_lab.corpus import load_corpus

    lm = load_model(p["model_name"])
    corpus = bytes(load_corpus().val.tolist()).decode("utf-8", errors="replace")
    text = lm.encode(p["prompt"] + corpus)[:, : p["live_tokens"]]
    return display.cache_view(lm, text, lm.encode(p["live_prefix"]), lm.encode(p["live_chunk"]))


def _nb09(p: dict[str, Any]) -> View:
    from tempo_lab import load_model
    from tempo_lab.generators import ParallelTokenGenerator
    from tempo_lab.phenomena import localisation as loc
    from tempo_lab.phenomena.localisation import display as loc_display

    lm = load_model(p["model_name"])
    locs = {}
    for gap in p["gaps"]:
        ids, clean, corrupt = loc.retro_pair(lm, p["prompt"], p["token"], gap)
        locs[f"gap {gap:g}"] = loc.localise(lm, ids, clean, corrupt, metric=p["metric"], name=f"gap {gap:g}")
    for step in p["half_steps"]:
        ids, clean, corrupt = loc.half_step_pair(lm, p["half_prompt"], step)
        locs[f"+{step:g}"] = loc.localise(lm, ids, clean, corrupt, metric=p["metric"], name=f"+{step:g}")
    run = ParallelTokenGenerator(lm).generate(p["set_prompt"], threshold=p["threshold"],
                                              max_steps=p["set_steps"] + 2, progress=False)
    ids, visible, isolated = loc.set_pair(run, p["set_steps"])
    locs["isolated vs visible"] = loc.localise(lm, ids, visible, isolated, metric=p["metric"],
                                               name="isolated vs visible")  # fmt: skip
    return loc_display.view(locs)


RECIPES: dict[str, Recipe] = {
    "01_gap_attention_dropout": Recipe("views.show(gap_dropout_display.view(result))", _nb01),
    "02_decimal_positions": Recipe("views.show(fractional_display.view(sweep))", _nb02),
    "03_retroactive_exploration": Recipe("views.show(retroactive_display.view(sweep, lm))", _nb03),
    "04_isolated_vs_visible_attention": Recipe("views.show(isolation_display.view(pairs))", _nb04),
    "05_compressed_thoughts": Recipe("views.show(compressed_display.view(runs))", _nb05),
    "06_claims_at_scale": Recipe("views.show(retroactive_display.study_view(study))", _nb06),
    "07_retroactive_pruning_and_hidden_sets": Recipe("views.show(pruning_display.view(runs))", _nb07),
    "08_tpi_vs_rope": Recipe("views.show(tpi_display.shift_view(models, text))", _nb08),
    "09_where_position_acts": Recipe(
        'views.show(loc_display.view({**comma, **half, "isolated vs visible": sets}))', _nb09
    ),
    "10_beyond_the_trained_context": Recipe(
        'views.show(tpi_display.length_view(checkpoint("rope", results), text, trained))', _nb10
    ),
    "11_attention_sinks_and_moved_caches": Recipe(
        "views.show(display.cache_view(lm, text, lm.encode(live_prefix), lm.encode(live_chunk)))", _nb11
    ),
}


def rebuild(stem: str, p: dict[str, Any]) -> View:
    """Notebook ``stem``'s first view, rebuilt from parameter values ``p``."""
    return RECIPES[stem].rebuild(p)
