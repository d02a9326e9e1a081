"""The six measurements of a study, each over a batch of prompts at once.

Every function takes the loaded model, a batch ``[(prompt index, ids (1, T)), ...]`` and the study's
:class:`Conditions`, and returns one dict per prompt x condition. The prompts share forward passes: the
gap-dropout probe right-pads them (its default strategies take no mask, but all are causal, so padding after
a row's last slot is never seen); everything else runs in one left-padded batch through
:class:`~tempo_lab.generators.lockstep.Lockstep`, stepping the single-prompt generators' own policies. A test
checks every measurement against the single-prompt generators and probe (to 1e-4).

Contents: :class:`Conditions`, :data:`PHENOMENA`, :data:`MEASURES` (name -> function), :func:`gap_dropout`,
:func:`fractional`, :func:`retroactive`, :func:`modes`, :func:`compressed`, :func:`tempo`,
:func:`context_needed`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from tempo_lab import masks, metrics
from tempo_lab import positions as pos
from tempo_lab.capture import capture_attention
from tempo_lab.generators import CompressedThoughtGenerator, ParallelTokenGenerator
from tempo_lab.generators.core import DecodingCore
from tempo_lab.generators.lockstep import Lockstep
from tempo_lab.generators.loop import Feed
from tempo_lab.models import LoadedModel
from tempo_lab.probe import CAPTURE_BUDGET_BYTES, strategy_forward

Batch = Sequence[tuple[int, torch.Tensor]]


@dataclass(frozen=True)
class Conditions:
    """What each measurement sweeps. Gap lists start at 0, the reference every other gap is compared with.

    The defaults keep a study of the bundled 302 prompts to a few minutes on a 2-core CPU."""

    dropout_gaps: tuple[float, ...] = (0, 5, 20)
    dropout_strategies: tuple[str, ...] = ("default_no_cache", "additive_4d")
    retro_gaps: tuple[float, ...] = (0, 6, 16, 46, 96)
    mode_threshold: float = 0.1
    mode_steps: int = 6
    compressed_gaps: tuple[float, ...] = (0, 5, 10, 20)
    compressed_candidates: int = 3
    compressed_threshold: float = 0.05
    path_length: int = 5
    tempo_thresholds: tuple[float, ...] = (0.05, 0.1, 0.2)
    tempo_steps: int = 6

    def __post_init__(self) -> None:
        for name in ("dropout_gaps", "retro_gaps", "compressed_gaps"):
            gaps = getattr(self, name)
            if not gaps or gaps[0] != 0 or any(g < 0 for g in gaps) or len(set(gaps)) != len(gaps):
                raise ValueError(f"{name} must start at 0 and hold distinct gaps >= 0, got {gaps!r}")
        for name in ("mode_steps", "tempo_steps", "path_length", "compressed_candidates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for t in (self.mode_threshold, self.compressed_threshold, *self.tempo_thresholds):
            if not 0 < t <= 1:
                raise ValueError(f"thresholds must be in (0, 1], got {t!r}")

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> Conditions:
        """The inverse of :meth:`as_dict` (a results folder's manifest holds that form)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def context_needed(prompt_len: int, cond: Conditions) -> int:
    """The largest position any measurement gives a prompt of ``prompt_len`` tokens, plus one."""
    return int(
        prompt_len
        + max(
            max(cond.dropout_gaps) + 1,
            max(cond.retro_gaps) + 1,
            max(cond.compressed_gaps) + cond.path_length + 1,
            cond.mode_steps,
            cond.tempo_steps,
        )
    )


# --- one padded step that places tokens right after a prefix ---


def _together(core: DecodingCore, n: int) -> list[list[int]]:
    """Which of ``n`` runs share a batch: all of them, or one at a time on a model with sliding-window layers
    (ragged runs leave padding slots, which a window would count)."""
    return [list(range(n))] if core.family.window is None else [[k] for k in range(n)]


class _Place:
    """One step: ``tokens`` at ``positions`` after the prefix, one branch (batch row) each, so each sees the
    prefix and itself, as :meth:`~tempo_lab.generators.RetroactivePositionGenerator.place` feeds them."""

    def __init__(self, tokens: Sequence[int], positions: Sequence[float]):
        self.n = len(tokens)
        ids, where = torch.tensor(list(tokens)), torch.tensor(list(positions), dtype=torch.float32)
        self.feed = Feed(ids.view(-1, 1), where.view(-1, 1))
        self.logits: torch.Tensor | None = None

    def propose(self, step: int) -> Feed | None:
        return self.feed if step == 0 else None

    def accept(self, step: int, logits: torch.Tensor) -> None:
        self.logits = logits[:, -1]  # (n, vocab)


def _placed(
    lm: LoadedModel, prefixes: Sequence[torch.Tensor], make: Callable[[int, torch.Tensor], tuple[list, list]]
) -> list[torch.Tensor]:
    """Prefill ``prefixes`` together, then place ``make(i, next_logits)`` = (tokens, positions) after each
    in one step, a branch per placement. Returns each prefix's placed probabilities ``(n_i, vocab)``."""
    core = DecodingCore(lm)
    out: list = [None] * len(prefixes)
    for group in _together(core, len(prefixes)):
        lock = Lockstep(core)
        logits = lock.prefill([prefixes[k] for k in group])
        policies = [_Place(*make(k, lg[-1])) for k, lg in zip(group, logits, strict=True)]
        lock.expand([row for row, p in enumerate(policies) for _ in range(p.n)])
        lock.run(policies, 1, rows=[p.n for p in policies])
        for k, p in zip(group, policies, strict=True):
            out[k] = torch.softmax(p.logits.float(), -1)
    return out


def tv(a: torch.Tensor, b: torch.Tensor) -> float:
    """Total variation between two distributions ``(vocab,)``."""
    return float(metrics.divergences(a[None], b)[0][0])


# --- the measurements ---


def _right_padded(seqs: Sequence[torch.Tensor], positions: Sequence[torch.Tensor]):
    """Rows of different lengths right-padded into ``(ids (B, N), positions (B, N), last (B,))``; padding
    continues each row's positions by +1, so it only ever follows the row's real slots."""
    width = max(len(x) for x in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    where = torch.zeros(len(seqs), width)
    for r, (x, p) in enumerate(zip(seqs, positions, strict=True)):
        n = len(x)
        ids[r, :n], where[r, :n] = x.cpu(), p.cpu()
        where[r, n:] = p[-1] + torch.arange(1, width - n + 1)
    return ids, where, torch.tensor([len(x) - 1 for x in seqs])


def _buckets(lengths: Sequence[int], bytes_per_slot2: int, slack: float = 1.25) -> list[list[int]]:
    """Row indices grouped by similar length (longest at most ``slack`` x the shortest, so padding stays
    small) and cut so that a group's captured attention stays under the probe's budget."""
    order = sorted(range(len(lengths)), key=lambda r: lengths[r])
    groups: list[list[int]] = []
    for r in order:
        g = groups[-1] if groups else None
        width = lengths[r]
        full = g is not None and (len(g) + 1) * bytes_per_slot2 * width**2 > CAPTURE_BUDGET_BYTES
        if g is None or width > slack * lengths[g[0]] or full:
            groups.append([r])
        else:
            g.append(r)
    return groups


def gap_dropout(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt x strategy x gap: the placed token's attention mass on the prompt (mean over layers and
    heads) and whether its top next token differs from gap 0 (:func:`tempo_lab.probe.gap_probe`).

    Every strategy is causal, so rows of similar lengths share one pass right-padded (padding follows a
    row's real slots and no slot sees a later one); the logits and attention of each row's own last slot are
    read. Rows are grouped by length (:func:`_buckets`): with the model's cost in tokens, padding is the waste
    to avoid."""
    gaps = list(cond.dropout_gaps)
    prompts = [ids[0].cpu() for _, ids in batch]
    ids, where, last = _right_padded(prompts, [torch.arange(len(x), dtype=torch.float32) for x in prompts])
    first = strategy_forward(lm, ids, where, "additive_4d", capture=False, query=last)
    nxt = first.logits.argmax(-1).cpu()  # (B,)
    seqs, positions, lengths = [], [], []
    for x, token in zip(prompts, nxt, strict=True):
        t = len(x)
        for g in gaps:
            seqs.append(torch.cat([x, token[None]]))
            positions.append(pos.with_gap(t, 1, g)[0])
            lengths.append(t)
    config = lm.model.config
    per_token2 = config.num_hidden_layers * config.num_attention_heads * lm.dtype.itemsize
    rows = []
    for strategy in cond.dropout_strategies:
        mass, top = torch.zeros(len(seqs)), torch.zeros(len(seqs), dtype=torch.long)
        for part in _buckets([len(x) for x in seqs], per_token2):
            ids, where, last = _right_padded([seqs[r] for r in part], [positions[r] for r in part])
            res = strategy_forward(lm, ids, where, strategy, query=last)
            w = res.attention.stacked().float()  # (layers, rows, heads, N, N)
            for j, (r, q) in enumerate(zip(part, last.tolist(), strict=True)):
                mass[r] = w[:, j, :, q, : lengths[r]].sum(-1).mean()
            top[part] = res.logits.argmax(-1).cpu()
        top_all = top
        for b, (i, _) in enumerate(batch):
            for k, g in enumerate(gaps):
                r = b * len(gaps) + k
                rows.append({
                    "prompt": i, "strategy": strategy, "gap": float(g), "prompt_mass": float(mass[r]),
                    "top1_changed": bool(top_all[r] != top_all[b * len(gaps)]),
                })  # fmt: skip
    return rows


def fractional(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt: its last token at ``T - 1.5`` (between its integer neighbours ``T - 2`` and ``T - 1``).
    ``tv_low`` / ``tv_high``: total variation of the next-token distribution against each neighbour's;
    ``tv_neighbours``: between the neighbours; ``between``: both TVs at most ``tv_neighbours``."""
    prefixes = [ids[:, :-1] for _, ids in batch]

    def make(b: int, _: torch.Tensor) -> tuple[list, list]:
        t = batch[b][1].shape[1]
        return [int(batch[b][1][0, -1])] * 3, [t - 2.0, t - 1.5, t - 1.0]

    rows = []
    for (i, _), p in zip(batch, _placed(lm, prefixes, make), strict=True):
        low, mid, high = p
        tv_low, tv_high, tv_n = tv(mid, low), tv(mid, high), tv(low, high)
        rows.append({
            "prompt": i, "tv_low": tv_low, "tv_high": tv_high, "tv_neighbours": tv_n,
            "between": bool(tv_low <= tv_n and tv_high <= tv_n),
            "top1_changed": bool(mid.argmax() != high.argmax()),
        })  # fmt: skip
    return rows


def retroactive(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt x gap: the prompt's greedy next token re-placed at ``T + gap``; TV of the distribution
    after it against gap 0, and whether its top token stays the same
    (:meth:`~tempo_lab.generators.RetroactivePositionGenerator.place`)."""
    gaps = list(cond.retro_gaps)

    def make(b: int, next_logits: torch.Tensor) -> tuple[list, list]:
        t = batch[b][1].shape[1]
        return [int(next_logits.argmax())] * len(gaps), [float(t + g) for g in gaps]

    rows = []
    for (i, _), p in zip(batch, _placed(lm, [ids for _, ids in batch], make), strict=True):
        for k, g in enumerate(gaps):
            rows.append({
                "prompt": i, "gap": float(g), "tv": tv(p[k], p[0]), "p1": float(p[k].max()),
                "top1_same": bool(p[k].argmax() == p[0].argmax()),
            })  # fmt: skip
    return rows


def _tempo_runs(lm: LoadedModel, batch: Batch, plans: list[tuple[int, dict]]):
    """Run TEMPO for every (batch position, options) in ``plans`` in lockstep; returns the results."""
    gen = ParallelTokenGenerator(lm)
    runs = [gen.plan(batch[b][1], **opts) for b, opts in plans]
    policies: list = [None] * len(runs)
    for group in _together(gen.core, len(runs)):
        lock = Lockstep(gen.core)
        logits = lock.prefill([runs[k].input_ids for k in group])
        for k, lg in zip(group, logits, strict=True):
            policies[k] = runs[k].policy(None, lg[-1])
        lock.run([policies[k] for k in group], max(runs[k].n_steps for k in group))
    return [r.result(p) for r, p in zip(runs, policies, strict=True)]


def _attention_maps(lm: LoadedModel, results) -> list[torch.Tensor]:
    """Every TEMPO result's full attention map ``(N, N)`` (mean over layers and heads), recomputed in one
    padded uncached pass over the finished sequences with their own masks and positions."""
    core = DecodingCore(lm)
    seqs, pos_, allowed = [], [], []
    for r in results:
        seqs.append(r.input_ids)
        pos_.append(r.positions[0])
        allowed.append(
            masks.parallel_allowed(r.labels, r.mode, later=r.later, hidden_after=r.hidden_after)[0]
        )
    out: list = [None] * len(results)
    for group in _together(core, len(results)):
        with capture_attention(lm.model) as record:
            pick = [seqs[k] for k in group], [pos_[k] for k in group], [allowed[k] for k in group]
            Lockstep(core).prefill(*pick)
        weights = record.stacked(-1).float().mean(dim=(0, 2))  # (rows, width, width)
        for row, k in enumerate(group):
            n = results[k].input_ids.shape[1]
            out[k] = weights[row, -n:, -n:]
    return out


# --- per-run summaries, shared with the one-prompt-at-a-time path (studies.single) ---


def parallel_later_mass(result, attention: torch.Tensor) -> float:
    """Later queries' mean attention on the parallel sets (2+ members) of a TEMPO result, from its ``(N, N)``
    attention map; NaN when no parallel set has a later query."""
    table = metrics.later_mass(result, attention)
    parallel = table["mass"][[result.steps[k].size >= 2 for k in table["step"]]]
    return float(parallel.mean()) if len(parallel) else float("nan")


def modes(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt x intra-set mode (TEMPO at ``mode_threshold``): later tokens' mean attention on each
    parallel set (2+ members), the sets' sizes, whether both modes give the same text, and the first step
    whose sets differ (``-1`` when none)."""
    common = {"threshold": cond.mode_threshold, "max_steps": cond.mode_steps}
    plans = [(b, {**common, "intraset": m}) for b in range(len(batch)) for m in ("isolated", "visible")]
    results = _tempo_runs(lm, batch, plans)
    maps = _attention_maps(lm, results)
    rows = []
    for b, (i, _) in enumerate(batch):
        iso, vis = results[2 * b], results[2 * b + 1]
        differ = first_difference(iso, vis)
        for mode, r, amap in (("isolated", iso, maps[2 * b]), ("visible", vis, maps[2 * b + 1])):
            sizes = r.set_sizes
            rows.append({
                "prompt": i, "mode": mode, "later_mass": parallel_later_mass(r, amap),
                "parallel_sets": sum(s >= 2 for s in sizes), "mean_set_size": mean_or_nan(sizes),
                "identical_text": iso.text == vis.text, "first_difference": differ, "text": r.text,
            })  # fmt: skip
    return rows


def first_difference(a, b) -> int:
    """The first step whose sets differ between two TEMPO results (``-1`` when every step is the same)."""
    sets = [[s.token_ids for s in r.steps] for r in (a, b)]
    differ = next((k for k, (x, y) in enumerate(zip(*sets, strict=False)) if x != y), -1)
    if differ == -1 and len(sets[0]) != len(sets[1]):
        differ = min(len(sets[0]), len(sets[1]))
    return differ


def mean_or_nan(values: Sequence[float]) -> float:
    """Mean, or NaN for a run that fed no set (its first set held the end-of-sequence token)."""
    return sum(values) / len(values) if values else float("nan")


def repetition(ids: Sequence[int]) -> float:
    """Share of a path's tokens that repeat an earlier token of the same path (0 = no repetition)."""
    return 1 - len(set(ids)) / len(ids) if ids else 0.0


def compressed(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt x gap: compressed-thought paths; ``agreement``: mean over candidates of the share of path
    slots holding the token of the same candidate's gap-0 path; ``repetition``: mean share of repeated tokens
    in a path (degeneration)."""
    gen = CompressedThoughtGenerator(lm)
    gaps = list(cond.compressed_gaps)
    opts = {"threshold": cond.compressed_threshold, "max_candidates": cond.compressed_candidates,
            "path_length": cond.path_length}  # fmt: skip
    lock = Lockstep(gen.core)
    logits = lock.prefill([ids for _, ids in batch])
    runs, policies, rows_of = [], [], []
    for b, (_, ids) in enumerate(batch):
        for g in gaps:
            run = gen.plan(ids, gap=g, **opts)
            policy = run.policy(logits[b][-1])
            runs.append(run)
            policies.append(policy)
            rows_of += [b] * policy.n
    lock.expand(rows_of)
    lock.run(policies, cond.path_length, rows=[p.n for p in policies])
    results = [r.result(p) for r, p in zip(runs, policies, strict=True)]
    rows = []
    for b, (i, _) in enumerate(batch):
        per_gap = dict(zip(gaps, results[b * len(gaps) : (b + 1) * len(gaps)], strict=True))
        agree = metrics.path_agreement(per_gap, reference_gap=0)
        for g, res in per_gap.items():
            rows.append({
                "prompt": i, "gap": float(g), "agreement": float(agree[f"same@{g:g}"].mean()),
                "repetition": sum(repetition(p.token_ids) for p in res.paths) / len(res.paths),
                "candidates": len(res.paths),
            })  # fmt: skip
    return rows


def tempo(lm: LoadedModel, batch: Batch, cond: Conditions) -> list[dict]:
    """Per prompt x threshold (isolated TEMPO): mean and largest set size, and the share of steps whose set
    has two or more members."""
    plans = [(b, {"threshold": t, "max_steps": cond.tempo_steps}) for b in range(len(batch))
             for t in cond.tempo_thresholds]  # fmt: skip
    results = _tempo_runs(lm, batch, plans)
    rows = []
    for (b, opts), r in zip(plans, results, strict=True):
        sizes = r.set_sizes
        rows.append({
            "prompt": batch[b][0], "threshold": opts["threshold"], "mean_set_size": mean_or_nan(sizes),
            "max_set_size": max(sizes, default=0), "parallel_share": mean_or_nan([s >= 2 for s in sizes]),
        })  # fmt: skip
    return rows


MEASURES: dict[str, Callable[[LoadedModel, Batch, Conditions], list[dict]]] = {
    "gap_dropout": gap_dropout,
    "fractional": fractional,
    "retroactive": retroactive,
    "modes": modes,
    "compressed": compressed,
    "tempo": tempo,
}
PHENOMENA: tuple[str, ...] = tuple(MEASURES)
