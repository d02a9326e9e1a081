"""Small computations the notebooks need beyond the generators: the fractional-position sweep, key numbers.

Everything here is a pure function of a loaded model and plain inputs (or of results computed earlier), so the
notebooks stay thin and every number they print can be recomputed by a test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from tempo_lab import masks
from tempo_lab.generators.core import DecodingCore, branch, encode_prompt
from tempo_lab.generators.retroactive import divergences
from tempo_lab.models import LoadedModel

DECIMALS = 4
TOP_KEPT = 10  # a position sweep keeps the display text of this many top tokens per position


# --- key numbers: the few results each notebook reports (read back by `tempo-lab run`) ---


def _rounded(value: Any, decimals: int) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        out = round(float(value), decimals)
        return 0.0 if out == 0 else out  # no "-0.0"
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _rounded(v, decimals) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v, decimals) for v in value]
    return value


def key_numbers(numbers: Mapping[str, Any], *, decimals: int = DECIMALS) -> None:
    """Print ``numbers`` as one JSON object, one key per line, every float rounded to ``decimals``.

    The notebooks call this in a cell tagged ``key-numbers``; ``tempo-lab run`` parses that cell's output to
    print its summary (see :func:`tempo_lab.cli.key_numbers`).
    """
    out = _rounded(dict(numbers), decimals)
    body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in out.items())
    print("{\n" + body + "\n}")


# --- fractional positions: move the prompt's last token along a fine grid of positions ---


def sweep_positions(start: float, stop: float, step: float) -> list[float]:
    """``start, start + step, …`` up to and including ``stop`` (within rounding), rounded to 6 decimals.

    Example: ``sweep_positions(1, 2, 0.25)`` → ``[1.0, 1.25, 1.5, 1.75, 2.0]``.
    """
    for name, v in (("start", start), ("stop", stop), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    if stop < start:
        raise ValueError(f"stop ({stop}) must be >= start ({start})")
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    return [round(start + i * step, 6) for i in range(n)]


@dataclass
class PositionSweep:
    """Next-token distributions with the prompt's last token placed at each of ``positions``.

    ``prefix_len``: tokens before the moved one (at ``0..prefix_len-1``); its natural position is
    ``prefix_len``. ``positions``: ``P`` floats, sorted, ``>= prefix_len - 1``; ``probs``: ``(P, vocab)``.
    ``token_text``: display text of every token among the :data:`TOP_KEPT` most probable at any position.
    """

    prompt: str
    prompt_tokens: list[str]
    prefix_len: int
    token_id: int
    token: str
    positions: list[float]
    probs: torch.Tensor
    token_text: dict[int, str]

    @property
    def natural(self) -> float:
        return float(self.prefix_len)

    def index(self, position: float) -> int:
        """Row of ``position`` (matched to 1e-6); ``ValueError`` when it was not swept."""
        for i, p in enumerate(self.positions):
            if abs(p - position) < 1e-6:
                return i
        raise ValueError(
            f"position {position} is not in the sweep ({self.positions[0]} .. {self.positions[-1]})"
        )

    def top_ids(self, k: int, position: float | None = None) -> list[int]:
        """The ``k <= TOP_KEPT`` most probable next tokens at ``position`` (default: the natural position)."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= TOP_KEPT:
            raise ValueError(f"k must be an integer in 1..{TOP_KEPT}, got {k!r}")
        row = self.probs[self.index(self.natural if position is None else position)]
        return [int(i) for i in row.topk(k).indices]


def position_sweep(lm: LoadedModel, prompt: str, positions: Sequence[float]) -> PositionSweep:
    """Place the prompt's last token at each of ``positions`` and return every next-token distribution.

    The first ``T - 1`` prompt tokens keep positions ``0..T-2``; the last token (naturally at ``T - 1``) is
    fed at each position, which may be fractional and may go back as far as ``T - 2`` (onto the previous
    token's position). Every integer neighbour ``floor(p)``, ``ceil(p)`` of a swept position is added to the
    sweep, so divergences to them can be computed.

    Cost: one prefill of the first ``T - 1`` tokens and one forward pass of ``P`` single-token branches over
    views of that cache (:func:`tempo_lab.generators.core.branch`). Needs a prompt of at least two tokens and
    a rotary model for fractional positions.
    """
    text, ids = encode_prompt(lm, prompt)
    t = ids.shape[1]
    if t < 2:
        raise ValueError(f"the prompt {prompt!r} has {t} token; the sweep moves the last of two or more")
    if isinstance(positions, (int, float)):
        positions = [positions]
    wanted: set[float] = set()
    for i, p in enumerate(positions):
        number = isinstance(p, (int, float, np.integer, np.floating)) and not isinstance(p, bool)
        if not number or not math.isfinite(p):
            raise ValueError(f"positions[{i}] = {p!r} is not a finite number")
        if p < t - 2:
            raise ValueError(
                f"positions[{i}] = {p} precedes position {t - 2} of the token before it; the moved token "
                "may go back at most onto that position"
            )
        wanted.update({round(float(p), 6), float(math.floor(p)), float(math.ceil(p))})
    if not wanted:
        raise ValueError("give at least one position")
    placed = sorted(wanted)
    core = DecodingCore(lm)
    core.check_positions(torch.tensor([placed]))  # context limit and rotary check, before any model work
    prefix = core.prefill(ids[:, :-1])
    n = len(placed)
    pos = torch.tensor(placed, dtype=torch.float32).view(n, 1)
    tok = ids[:, -1:].expand(n, 1)
    mask = masks.causal_mask(1, t, dtype=lm.dtype)
    logits = core.step(branch(prefix.cache, n), tok, pos, mask)[:, -1]  # (P, vocab)
    probs = torch.softmax(logits.float(), dim=-1).cpu()
    kept = sorted({int(i) for i in probs.topk(min(TOP_KEPT, probs.shape[-1]), dim=-1).indices.flatten()})
    return PositionSweep(
        prompt=text,
        prompt_tokens=[lm.token_str(i) for i in ids[0].tolist()],
        prefix_len=t - 1,
        token_id=int(ids[0, -1]),
        token=lm.token_str(int(ids[0, -1])),
        positions=placed,
        probs=probs,
        token_text={i: lm.token_str(i) for i in kept},
    )


def neighbour_divergence(sweep: PositionSweep) -> pd.DataFrame:
    """Per swept position: total variation and ``KL(p || p_neighbour)`` to the integer positions below and
    above, to the natural position, and the top token there.

    Columns: ``position``, ``floor``, ``ceil``, ``tv_floor``, ``tv_ceil``, ``kl_floor``, ``kl_ceil``,
    ``tv_natural``, ``max_abs_diff`` (largest single-token probability change against the natural position),
    ``top1``, ``p1``. At an integer position ``floor == ceil`` and both divergences are 0.
    """
    probs = sweep.probs.double()
    nat = probs[sweep.index(sweep.natural)]
    rows = []
    for i, p in enumerate(sweep.positions):
        lo, hi = float(math.floor(p)), float(math.ceil(p))
        tv_lo, kl_lo = divergences(probs[i : i + 1], probs[sweep.index(lo)])
        tv_hi, kl_hi = divergences(probs[i : i + 1], probs[sweep.index(hi)])
        tv_nat, _ = divergences(probs[i : i + 1], nat)
        top_p, top_i = probs[i].max(-1)
        rows.append(
            {
                "position": p,
                "floor": lo,
                "ceil": hi,
                "tv_floor": float(tv_lo[0]),
                "tv_ceil": float(tv_hi[0]),
                "kl_floor": float(kl_lo[0]),
                "kl_ceil": float(kl_hi[0]),
                "tv_natural": float(tv_nat[0]),
                "max_abs_diff": float((probs[i] - nat).abs().max()),
                "top1": repr(sweep.token_text[int(top_i)]),
                "p1": float(top_p),
            }
        )
    return pd.DataFrame(rows)


def top_token_curves(sweep: PositionSweep, k: int = 5) -> pd.DataFrame:
    """Probabilities of the ``k`` most probable tokens at the natural position, at every swept position.

    One row per position (index ``position``), one column per token (its text, ``repr``-quoted).
    """
    ids = sweep.top_ids(k)
    table = pd.DataFrame(
        sweep.probs[:, ids].double().numpy(),
        index=pd.Index(sweep.positions, name="position"),
        columns=[repr(sweep.token_text[i]) for i in ids],
    )
    table.columns.name = "token"
    return table


# --- notebook set-up and small tables ---


def notebook_defaults() -> None:
    """Notebook set-up: figures shown inline, no model-loading progress bars, 4-decimal pandas tables.

    The figures are built without pyplot, which loads its backend lazily; ``%matplotlib inline`` is what
    registers the PNG formatter that displays a ``Figure`` in a kernel (without it a cell shows only its
    repr).
    Outside IPython that step is skipped.
    """
    from transformers.utils import logging as hf_logging

    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with jupyterlab
        get_ipython = None  # type: ignore[assignment]
    shell = get_ipython() if get_ipython else None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")

    hf_logging.disable_progress_bar()
    pd.set_option("display.precision", DECIMALS)
    pd.set_option("display.width", 160)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", 80)


def top_token_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The top next token and its probability per (gap, strategy) of a gap probe, as ``"' was' 0.7886"``."""
    cells = frame.assign(top=[f"{t!r} {p:.4f}" for t, p in zip(frame["top1"], frame["p1"], strict=True)])
    order = list(dict.fromkeys(frame["strategy"]))
    return cells.pivot(index="gap", columns="strategy", values="top")[order]


def packed_split_evidence(
    lm: LoadedModel, prompt: str, token: str | int | None, gap: float
) -> dict[str, Any]:
    """Evidence that the gap dropout is transformers' packed-sequence detection.

    Returns ``segments``: the "document" index transformers assigns to each slot for positions
    ``0..T-1, T+gap`` (:func:`transformers.masking_utils.find_packed_sequence_indices`; ``None`` = one
    document); ``logit_diff_vs_alone``: the largest absolute difference between the last token's logits with
    no mask and no cache, and its logits when fed *alone* (no prompt at all) at the same position; and the top
    token of each. A difference of ~0 means the token after the gap behaves as if the prompt did not exist.
    """
    from transformers.masking_utils import find_packed_sequence_indices

    from tempo_lab import positions as pos
    from tempo_lab.probe import strategy_forward

    ids = lm.encode(prompt)
    t = ids.shape[1]
    token_id = lm.token_id(token) if token is not None else None
    if token_id is None:
        token_id = int(
            strategy_forward(lm, ids, pos.contiguous(t), "additive_4d", capture=False).logits.argmax()
        )
    seq = torch.cat([ids, torch.tensor([[token_id]], device=ids.device)], dim=1)
    positions = pos.with_gap(t, 1, gap)
    segments = find_packed_sequence_indices(positions)
    no_cache = strategy_forward(lm, seq, positions, "default_no_cache", capture=False).logits
    alone = strategy_forward(lm, seq[:, -1:], positions[:, -1:], "additive_4d", capture=False).logits
    explicit = strategy_forward(lm, seq, positions, "additive_4d", capture=False).logits
    return {
        "gap": gap,
        "positions": [float(p) for p in positions[0]],
        "segments": None if segments is None else [int(s) for s in segments[0]],
        "logit_diff_vs_alone": float((no_cache - alone).abs().max()),
        "logit_diff_vs_explicit_mask": float((no_cache - explicit).abs().max()),
        "top_no_mask": lm.token_str(int(no_cache.argmax())),
        "top_alone": lm.token_str(int(alone.argmax())),
        "top_explicit_mask": lm.token_str(int(explicit.argmax())),
    }


def compare_positions(sweep: PositionSweep, positions: Sequence[float], k: int = 5) -> pd.DataFrame:
    """Probabilities of the ``k`` most probable tokens at the natural position, with the last token at each of
    ``positions`` (swept ones): one row per token (``repr`` text), one column per position, plus a final row
    ``max |diff| vs natural`` (the largest change of any single token's probability, over the whole
    vocabulary).
    """
    ids = sweep.top_ids(k)
    nat = sweep.probs[sweep.index(sweep.natural)].double()
    cols = {}
    for p in positions:
        row = sweep.probs[sweep.index(p)].double()
        cols[f"{p:g}"] = [float(row[i]) for i in ids] + [float((row - nat).abs().max())]
    table = pd.DataFrame(cols, index=[repr(sweep.token_text[i]) for i in ids] + ["max |diff| vs natural"])
    table.columns.name = "position"
    return table


# --- retroactive exploration ---


def retro_heat_table(lm: LoadedModel, result, k: int = 5) -> pd.DataFrame:
    """Probability of the tokens that matter over the explored gaps of a
    :class:`~tempo_lab.generators.retroactive.RetroactiveResult`: the ``k`` most probable at the first gap,
    plus
    every token that is the top prediction at some gap. One row per token (``repr`` text, ordered by their
    highest probability), one column per gap; ``attrs`` holds ``prompt``, ``token``, ``token_ids`` (one per
    row), and ``top1`` / ``top1_ids`` (the top token's text / id at each gap)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    probs = result.probs.double().cpu()  # (P, vocab)
    ids = list(dict.fromkeys([*probs[0].topk(k).indices.tolist(), *probs.argmax(-1).tolist()]))
    sub = probs[:, ids].T.numpy()  # (tokens, P)
    order = np.argsort(-sub.max(axis=1), kind="stable")
    ordered = [ids[i] for i in order]
    table = pd.DataFrame(
        sub[order],
        index=pd.Index(token_labels(lm, ordered), name="token"),
        columns=pd.Index([plain_number(g) for g in result.gaps], name="gap"),
    )
    table.attrs.update(
        prompt=result.prompt,
        token=result.token,
        token_ids=ordered,
        top1=[lm.token_str(int(i)) for i in probs.argmax(-1)],
        top1_ids=[int(i) for i in probs.argmax(-1)],
    )
    return table


def token_labels(lm: LoadedModel, ids: Sequence[int]) -> list[str]:
    """``repr`` of each token's text, with ``#id`` appended where two different ids would read the same
    (e.g. byte tokens that decode to the replacement character)."""
    texts = [repr(lm.token_str(int(i))) for i in ids]
    return [f"{t} #{int(i)}" if texts.count(t) > 1 else t for t, i in zip(texts, ids, strict=True)]


def plain_number(x: float) -> int | float:
    """An integral float as ``int`` (labels ``5`` rather than ``5.0``)."""
    return int(x) if float(x).is_integer() else float(x)


def top1_changes(table: pd.DataFrame) -> list[tuple[int | float, str]]:
    """``(gap, token text)`` wherever the top prediction differs from the one at the previous gap (first gap
    included) in a :func:`retro_heat_table`."""
    out, prev = [], None
    for gap, tok in zip(table.columns, table.attrs["top1"], strict=True):
        if tok != prev:
            out.append((gap, tok))
            prev = tok
    return out


# --- parallel tokens: isolated vs visible ---


@dataclass
class ModePair:
    """One prompt and threshold in both intra-set modes.

    ``isolated``: the isolated run (attention captured). ``visible``: a free visible run (its own sets).
    ``replay``: the isolated run's sets replayed in visible mode (attention captured), so ``isolated`` and
    ``replay`` hold the same tokens in the same slots and differ only by the mask. ``slot_tokens``: the text
    of
    every slot of ``isolated``, prompt first.
    """

    threshold: float
    isolated: Any
    visible: Any
    replay: Any
    slot_tokens: list[str]

    def run(self, mode: str):
        """The captured run of ``mode`` on the shared layout: ``isolated`` or ``visible`` (the replay)."""
        if mode not in ("isolated", "visible"):
            raise ValueError(f"mode must be 'isolated' or 'visible', got {mode!r}")
        return self.isolated if mode == "isolated" else self.replay


def parallel_pairs(
    lm: LoadedModel,
    prompt: str,
    thresholds: Sequence[float],
    *,
    max_steps: int = 15,
    max_set_size: int = 5,
) -> dict[float, ModePair]:
    """Run TEMPO generation in both modes at each threshold (see :class:`ModePair`); keys are the thresholds.

    Cost per threshold: three runs of at most ``max_steps`` cached steps each (isolated and the replay capture
    attention of every layer).
    """
    from tempo_lab.generators import ParallelTokenGenerator

    if isinstance(thresholds, (int, float)):
        thresholds = [thresholds]
    if not thresholds:
        raise ValueError("give at least one threshold")
    gen = ParallelTokenGenerator(lm)
    common = {"max_steps": max_steps, "max_set_size": max_set_size, "progress": False}
    out: dict[float, ModePair] = {}
    for th in thresholds:
        iso = gen.generate(prompt, threshold=th, intraset="isolated", capture=True, **common)
        vis = gen.generate(prompt, threshold=th, intraset="visible", **common)
        sets = [s.token_ids for s in iso.steps if s.fed]
        replay = gen.generate(prompt, intraset="visible", forced_sets=sets, capture=True, progress=False)
        tokens = [lm.token_str(i) for i in iso.input_ids[0].tolist()]
        out[float(th)] = ModePair(float(th), iso, vis, replay, tokens)
    return out


def set_spans(result) -> list[tuple[int, int, int]]:
    """``(set index, first slot, last slot + 1)`` of every fed parallel set of a ParallelResult."""
    return [(k, s.slots[0], s.slots[-1] + 1) for k, s in enumerate(result.steps) if s.fed]


def later_mass(result, attention: torch.Tensor) -> pd.DataFrame:
    """Attention of later tokens on each earlier parallel set.

    ``attention``: ``(N, N)`` map of ``result`` (e.g. ``result.attention_map()``). For set ``k`` with slots
    ``a..b-1``, ``mass`` is the summed attention on those slots, averaged over every later query slot
    (``b..N-1``); sets with no later slot are left out. Columns: ``step``, ``tokens``, ``position``,
    ``later_queries``, ``mass``.
    """
    n = attention.shape[0]
    rows = []
    for k, a, b in set_spans(result):
        if b >= n:
            continue
        mass = attention[b:, a:b].sum(-1).mean()
        step = result.steps[k]
        rows.append(
            {
                "step": k,
                "tokens": "/".join(step.tokens),
                "position": step.position,
                "later_queries": n - b,
                "mass": float(mass),
            }
        )
    return pd.DataFrame(rows, columns=["step", "tokens", "position", "later_queries", "mass"])


def mode_mass_table(pair: ModePair, layer: int | None = None, head: int | None = None) -> pd.DataFrame:
    """:func:`later_mass` in both modes on the shared layout, with the relative change isolated vs visible."""
    iso = later_mass(pair.isolated, pair.isolated.attention_map(layer, head))
    vis = later_mass(pair.replay, pair.replay.attention_map(layer, head))
    table = iso.rename(columns={"mass": "isolated"})
    table["visible"] = vis["mass"].to_numpy()
    table["relative change"] = (table["isolated"] - table["visible"]) / table["visible"]
    return table


def mode_texts_table(pairs: Mapping[float, ModePair]) -> pd.DataFrame:
    """Per threshold: the text of the free isolated and visible runs, whether they are identical, and the
    first
    step whose sets differ (``<NA>`` when none does)."""
    rows = []
    for th, pair in pairs.items():
        sets = mode_sets_table(pair)
        differ = [int(s) for s, same in zip(sets["step"], sets["same set"], strict=True) if not same]
        rows.append(
            {
                "threshold": th,
                "isolated": pair.isolated.text,
                "visible": pair.visible.text,
                "identical": pair.isolated.text == pair.visible.text,
                "first differing step": differ[0] if differ else None,
            }
        )
    table = pd.DataFrame(rows)
    table["first differing step"] = table["first differing step"].astype("Int64")
    return table


def mode_sets_table(pair: ModePair) -> pd.DataFrame:
    """The sets chosen by the free runs of both modes, step by step, and whether they are the same."""
    rows = []
    n = max(len(pair.isolated.steps), len(pair.visible.steps))
    for k in range(n):
        a = pair.isolated.steps[k] if k < len(pair.isolated.steps) else None
        b = pair.visible.steps[k] if k < len(pair.visible.steps) else None
        rows.append(
            {
                "step": k,
                "position": (a or b).position,
                "isolated": "/".join(repr(t) for t in a.tokens) if a else "",
                "visible": "/".join(repr(t) for t in b.tokens) if b else "",
                "same set": bool(a and b and sorted(a.token_ids) == sorted(b.token_ids)),
                "same order": bool(a and b and a.token_ids == b.token_ids),
            }
        )
    return pd.DataFrame(rows)


# --- compressed thoughts ---


def compressed_runs(
    lm: LoadedModel,
    prompt: str,
    gaps: Sequence[float],
    *,
    threshold: float = 0.05,
    max_candidates: int = 5,
    path_length: int = 10,
) -> dict[int | float, Any]:
    """Greedy compressed-thought runs of ``prompt`` at each gap (same candidates, since they come from the
    prompt's own next-token distribution; the paths differ). Keys are the gaps (``int`` when integral)."""
    from tempo_lab.generators import CompressedThoughtGenerator

    if isinstance(gaps, (int, float)):
        gaps = [gaps]
    if not gaps:
        raise ValueError("give at least one gap")
    gen = CompressedThoughtGenerator(lm)
    return {
        plain_number(g): gen.generate(
            prompt,
            gap=g,
            threshold=threshold,
            max_candidates=max_candidates,
            path_length=path_length,
            progress=False,
        )
        for g in gaps
    }


def paths_table(runs: Mapping[Any, Any]) -> pd.DataFrame:
    """Every path of every gap: one row per (candidate, gap) with the path's text (candidate included),
    length and mean step probability."""
    rows = []
    for gap, res in runs.items():
        for rank, path in enumerate(res.paths):
            rows.append(
                {
                    "candidate": repr(path.candidate.token),
                    "p_candidate": path.candidate.prob,
                    "gap": gap,
                    "first_position": path.positions[0],
                    "path": repr(path.text),
                    "tokens": len(path.token_ids),
                    "mean_step_prob": sum(path.step_probs[1:]) / max(1, len(path.step_probs) - 1),
                    "rank": rank,
                }
            )
    frame = pd.DataFrame(rows)
    return frame.sort_values(["rank", "gap"], kind="stable").drop(columns="rank").reset_index(drop=True)


def path_agreement(runs: Mapping[Any, Any], reference_gap: Any | None = None) -> pd.DataFrame:
    """How each candidate's path at each gap agrees with its path at ``reference_gap`` (default: the first
    gap): the fraction of path slots holding the same token, and the first slot where they differ (``None``
    when identical). One row per candidate, one column pair per gap."""
    gaps = list(runs)
    ref = runs[gaps[0] if reference_gap is None else reference_gap]
    rows = []
    for k, base in enumerate(ref.paths):
        row: dict[str, Any] = {"candidate": repr(base.candidate.token)}
        for gap in gaps:
            other = runs[gap].paths[k]
            if other.candidate.token_id != base.candidate.token_id:
                raise ValueError(f"gap {gap} has different candidates than the reference gap")
            n = max(len(base.token_ids), len(other.token_ids))
            same = [
                i < len(base.token_ids)
                and i < len(other.token_ids)
                and base.token_ids[i] == other.token_ids[i]
                for i in range(n)
            ]
            row[f"same@{gap:g}"] = sum(same) / n
            row[f"differs from@{gap:g}"] = next((i for i, s in enumerate(same) if not s), None)
        rows.append(row)
    table = pd.DataFrame(rows)
    for gap in gaps:
        table[f"differs from@{gap:g}"] = table[f"differs from@{gap:g}"].astype("Int64")
    return table


def visible_paths(result, threshold: float, length: int) -> list[Any]:
    """The paths a run with a higher ``threshold`` and a shorter ``path_length`` would give: candidates with
    probability ``>= threshold`` (always at least the first), each path cut to its candidate plus ``length``
    tokens. Valid for greedy runs (``sample=False``): a greedy path's prefix does not depend on its length."""
    if result.sample:
        raise ValueError("cutting paths is only valid for greedy runs (sample=False)")
    kept = [p for p in result.paths if p.candidate.prob >= threshold] or result.paths[:1]
    return [
        type(p)(
            candidate=p.candidate,
            token_ids=p.token_ids[: length + 1],
            tokens=p.tokens[: length + 1],
            text="".join(p.tokens[: length + 1]),
            step_probs=p.step_probs[: length + 1],
            positions=p.positions[: length + 1],
            ended_by_eos=p.ended_by_eos and len(p.token_ids) <= length + 1,
        )
        for p in kept
    ]


def quote_tokens(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a result table with token columns (``top1``, ``top2``, …) shown as ``repr`` (``' the'``), so
    leading spaces and newlines are visible."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(col, str) and col.startswith("top") and col[3:].isdigit():
            out[col] = [repr(v) if isinstance(v, str) else v for v in out[col]]
    return out
