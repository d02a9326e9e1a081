"""Many prompts in one batch: a padded prefill, then the generators' own policies stepped in lockstep.

The single-prompt loop (:func:`tempo_lab.generators.loop.decode`) runs one policy on one cache. A study runs
the same policies for many prompts at once: :class:`Lockstep` prefills every prompt in one padded batch and
then, at each step, asks every policy what it feeds, runs **one** forward pass for all of them (or one per
group of rows, below), and hands each policy its own logits. Policies are unchanged; each still speaks of its
own slots only.

Padding lives in masks and positions, never in what a real token attends to:

- every batch row keeps a map from its policy's slots (0, 1, 2, ...) to the batch cache's slots. Prompts are
  left-padded, and a step whose row feeds fewer tokens than another row's leaves padding slots behind;
- a policy's mask over its own slots is scattered into those columns; every other column (padding, slots of
  nothing) is closed to it;
- a padding query sees only its own slot, so no softmax row is empty; its logits are thrown away. It takes
  the position of its row's last real query, so positions never decrease along a row.

RoPE depends on position differences only, so each row's results equal its prompt run alone (to float
rounding, ~1e-6; a test checks them against the single-prompt generators).

Sliding-window layers count their window in cache slots, and padding slots would count too. On such a model
the batch keeps full-length cache layers (no slot is dropped) and every forward pass gets each slot's rank
among its row's real slots: the window is counted in those (:meth:`tempo_lab.families.Family.layer_masks`),
so a row sees the slots it sees alone, however ragged the batch.

Ragged steps: rows feed different numbers of tokens in one step (TEMPO sets of 1 to 5 members; stopped runs
feed none). One pass pads every row to the most any feeds; over a study's TEMPO steps two thirds of those
query slots were padding (``benchmarks/padding.py``). So a step can run as several passes, each over the rows
that feed similar numbers of tokens, on a copy of those rows' cache, their new keys and values written back
into the batch cache (which still grows by the step's width for every row, the slots a row did not feed
closed). The cost model (:data:`PASS_COST`) decides per step; each row's results do not depend on it.

Attention: run inside :func:`~tempo_lab.capture.capture_attention`, the passes a lockstep runs record every
row's attention; :meth:`Lockstep.attention_maps` assembles each row's ``(N, N)`` map over its own slots from
them (what the single-prompt generators' ``attention_map()`` gives), so no second pass is needed.

Contents: :class:`Lockstep` (``prefill``, ``expand``, ``run``, ``attention_maps``), :data:`PASS_COST`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import DynamicCache

from tempo_lab import masks
from tempo_lab.capture import AttentionRecord
from tempo_lab.forward import DecodingCore, select_rows
from tempo_lab.generators.loop import Policy
from tempo_lab.layout import Layout
from tempo_lab.loaded import widened

#: what one more forward pass in a step costs, in query slots: its fixed work (about 60 ms on the 2-core CPU,
#: the time of ~60 tokens' matmuls) and copying its rows' cache
PASS_COST = 64


class Lockstep:
    """A batch of prompts decoded together; rows are the prompts (``prefill``), or several rows per prompt
    after ``expand`` (one per branch of a policy with ``batch > 1``).

    ``pass_cost``: a step whose rows feed different numbers of tokens runs as one pass over every row, padded
    to the most, unless passes over groups of rows (by tokens fed; stopped rows in none) feed fewer query
    slots even with ``pass_cost`` added per pass (``0``: group wherever a slot is saved). Each row's results
    are the same either way (to float rounding)."""

    def __init__(self, core: DecodingCore, pass_cost: int | None = None):
        self.core = core
        self.pass_cost = PASS_COST if pass_cost is None else pass_cost
        self.cache: DynamicCache | None = None
        self.slots: list[list[int]] = []  # per row: batch-cache slot of each of the row's own slots
        self.width = 0  # batch-cache slots so far
        self.windowed = core.family.window is not None
        self.real = torch.zeros(0, 0, dtype=torch.bool)  # (rows, width): which batch slots are a row's own
        # per pass run so far: its first and end batch slot, and for each row now the pass's row it continues
        self.passes: list[tuple[int, int, torch.Tensor]] = []

    def prefill(self, prompts: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Run every prompt ``(1, T_i)`` (positions ``0..T_i-1``, causal) in one left-padded pass; returns
        each prompt's next-token logits ``(vocab,)`` (the vocabulary projection runs for the last slot only:
        left padding puts every row's last token there)."""
        if not prompts:
            raise ValueError("prefill needs at least one prompt")
        lengths = [int(p.shape[-1]) for p in prompts]
        width = max(lengths)
        # left-padded: a padding slot sees only itself, no real slot sees it
        visible, self.real = masks.left_padded([masks.causal_allowed(t) for t in lengths])
        ids = torch.zeros(len(prompts), width, dtype=torch.long)
        where = torch.zeros(len(prompts), width)
        self.slots = []
        for r, (p, t) in enumerate(zip(prompts, lengths, strict=True)):
            pad = width - t
            ids[r, pad:] = p.view(-1).cpu()
            where[r, pad:] = torch.arange(t)
            self.slots.append(list(range(pad, width)))
        # full-length layers when windows are counted in ranks (a sliding layer would drop slots by count)
        self.cache = DynamicCache() if self.windowed else DynamicCache(config=self.core.model.config)
        self.width = width
        self.passes = [(0, width, torch.arange(len(prompts)))]
        logits = self._forward(ids, where, visible, last=True)  # (rows, 1, vocab)
        return list(logits[:, -1])

    def expand(self, rows: Sequence[int]) -> None:
        """Re-index the batch: new row ``j`` is a copy of old row ``rows[j]`` (branches of one prompt)."""
        index = torch.tensor(list(rows), device=self.core.device)
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)
            layer.values = layer.values.index_select(0, index)
        self.slots = [list(self.slots[r]) for r in rows]
        self.real = self.real[list(rows)]
        self.passes = [(a, b, source[index.cpu()]) for a, b, source in self.passes]

    def run(
        self,
        policies: Sequence[Policy],
        max_steps: int,
        *,
        rows: Sequence[int] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Step every policy until each has stopped (``propose`` returned ``None``) or ``max_steps``.

        Policy ``i`` owns the next ``rows[i]`` batch rows (default 1 each): the batch of its feeds. The rows
        must already be laid out that way (``prefill``, then ``expand``). ``progress(steps, max_steps)`` is
        called after every step. Returns the steps run.
        """
        rows = [1] * len(policies) if rows is None else list(rows)
        if sum(rows) != len(self.slots) or len(rows) != len(policies):
            raise ValueError(
                f"{len(policies)} policies with rows {rows} do not fit a batch of {len(self.slots)}"
            )
        starts = [sum(rows[:i]) for i in range(len(rows))]
        rows_of = [list(range(a, a + b)) for a, b in zip(starts, rows, strict=True)]
        active = [True] * len(policies)
        for step in range(max_steps):
            feeds = [p.propose(step) if a else None for p, a in zip(policies, active, strict=True)]
            for f, r in zip(feeds, rows_of, strict=True):
                if f is not None and f.input_ids.shape[0] != len(r):
                    raise ValueError(f"a policy fed a batch of {f.input_ids.shape[0]} but owns {len(r)} rows")
            active = [f is not None for f in feeds]
            if not any(active):
                return step
            logits = self._step(feeds, rows_of)
            for p, f, rows in zip(policies, feeds, rows_of, strict=True):
                if f is not None:
                    p.accept(step, logits[rows, : f.input_ids.shape[1]])
            if progress is not None:
                progress(step + 1, max_steps)
        return max_steps

    # --- internals ---

    def _step(self, feeds, rows_of) -> torch.Tensor:
        fed = torch.zeros(len(self.slots), dtype=torch.long)  # tokens each row feeds (0: its policy stopped)
        for f, rows in zip(feeds, rows_of, strict=True):
            if f is not None:
                fed[rows] = f.input_ids.shape[1]
        q = int(fed.max())
        n_rows, width = len(self.slots), self.width + q
        ids = torch.zeros(n_rows, q, dtype=torch.long)
        positions = torch.zeros(n_rows, q)
        allowed = torch.zeros(n_rows, q, width, dtype=torch.bool)
        allowed[:, torch.arange(q), self.width + torch.arange(q)] = True  # padding queries see themselves
        real = torch.zeros(n_rows, q, dtype=torch.bool)
        for f, rows in zip(feeds, rows_of, strict=True):
            if f is None:
                continue
            fq = f.input_ids.shape[1]
            real[rows, :fq] = True
            own = None if f.layout.is_causal else f.layout.allowed().expand(len(rows), -1, -1, -1)[:, 0]
            for j, r in enumerate(rows):
                slots = self.slots[r] + [self.width + k for k in range(fq)]
                ids[r, :fq] = f.input_ids[j if f.input_ids.shape[0] > 1 else 0].cpu()
                where = f.layout.positions.expand(len(rows), -1)[j].cpu()
                positions[r] = where[-1]  # padding repeats the last
                positions[r, :fq] = where
                block = masks.causal_allowed(fq, len(slots)) if own is None else own[j].cpu()
                allowed[r, :fq][:, slots] = block
                self.slots[r] = slots
        self.real = torch.cat([self.real, real], dim=1)
        groups = self._groups(fed)
        if groups is None:
            logits = self._forward(ids, positions, allowed)
            self.passes.append((self.width, width, torch.arange(n_rows)))
        else:
            logits = self._grouped(groups, ids, positions, allowed)
        self.width = width
        return logits

    def _groups(self, fed: torch.Tensor) -> list[tuple[torch.Tensor, int]] | None:
        """How a step's rows run: ``None`` for one pass over all of them, padded to the most any feeds, or
        ``(rows, q)`` per pass: rows feeding consecutive numbers of tokens grouped (stopped rows in none), the
        grouping with the fewest query slots plus ``pass_cost`` per pass, when that is fewer than one pass
        over every row feeds."""
        counts = sorted(set(fed[fed > 0].tolist()))
        n = [int((fed == c).sum()) for c in counts]
        # best[j]: (slots, cut points) for the counts below j, every group paying pass_cost
        best: list[tuple[int, list[int]]] = [(0, [])]
        for j in range(1, len(counts) + 1):
            best.append(min((best[i][0] + sum(n[i:j]) * counts[j - 1] + self.pass_cost, best[i][1] + [j])
                            for i in range(j)))  # fmt: skip
        slots, cuts = best[-1]
        if slots >= len(fed) * int(fed.max()):
            return None  # one pass over every row costs no more
        bounds = [0, *cuts]
        return [(torch.nonzero((fed >= counts[a]) & (fed <= counts[b - 1])).view(-1), counts[b - 1])
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)]  # fmt: skip

    def _grouped(self, groups, ids, positions, allowed) -> torch.Tensor:
        """One pass per group of rows, each on a copy of its rows' cache (:func:`select_rows`); their new
        keys and values are written into the batch cache, which grows by the step's width for every row
        (slots a row does not feed stay zero and closed). Returns logits ``(rows, q, vocab)``."""
        start, q = self.width, ids.shape[1]

        def widen(t: torch.Tensor) -> torch.Tensor:  # (rows, heads, width, dim) -> width + q slots
            return torch.cat([t, t.new_zeros(t.shape[0], t.shape[1], q, t.shape[3])], dim=2)

        grown = [(widen(layer.keys), widen(layer.values)) for layer in self.cache.layers]
        logits = None
        for rows, g in groups:
            part = select_rows(self.cache, rows.to(self.core.device))
            sub = (ids[rows, :g], positions[rows, :g], allowed[rows, :g, : start + g])
            out = self._forward(*sub, cache=part, rows=rows)
            for (keys, values), layer in zip(grown, part.layers, strict=True):
                keys[rows, :, start : start + g] = layer.keys[:, :, start:]
                values[rows, :, start : start + g] = layer.values[:, :, start:]
            if logits is None:
                logits = out.new_zeros(len(self.slots), q, out.shape[-1])
            logits[rows, :g] = out
            source = torch.full((len(self.slots),), -1, dtype=torch.long)
            source[rows] = torch.arange(len(rows))
            self.passes.append((start, start + g, source))
        for layer, (keys, values) in zip(self.cache.layers, grown, strict=True):
            layer.keys, layer.values = keys, values
        return logits

    def attention_maps(self, record: AttentionRecord) -> list[torch.Tensor]:
        """Each row's attention between its own slots, ``(N_r, N_r)`` (row = query slot, column = key slot),
        averaged over the recorded layers and heads, from ``record``: a
        :func:`~tempo_lab.capture.capture_attention` block around this lockstep's prefill and steps (and
        nothing else). A row branched by :meth:`expand` shares its source row's prefill attention."""
        if len(record.passes) != len(self.passes):
            raise ValueError(
                f"the record holds {len(record.passes)} passes, this lockstep ran {len(self.passes)}: "
                "capture exactly its prefill and steps"
            )
        maps: list[torch.Tensor] = []
        for k, (start, end, source) in enumerate(self.passes):
            mean = widened(record.stacked(k, width=end)).mean(dim=(0, 2))  # (pass rows, q, end)
            maps = maps or [torch.zeros(len(s), len(s), dtype=mean.dtype) for s in self.slots]
            for r, slots in enumerate(self.slots):
                if source[r] < 0:  # not in this pass (a step's group of other rows)
                    continue
                own = torch.tensor(slots)
                queries = ((own >= start) & (own < end)).nonzero().view(-1)  # this row's slots fed here
                seen = (own < end).nonzero().view(-1)
                block = mean[source[r]][own[queries] - start][:, own[seen]]
                maps[r][queries[:, None], seen[None]] = block
        return maps

    def _forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        allowed: torch.Tensor,
        cache: DynamicCache | None = None,
        rows: torch.Tensor | None = None,
        last: bool = False,
    ) -> torch.Tensor:
        """One pass over the batch (or over ``rows`` of it, on ``cache``, a copy of their cache):
        ``allowed`` ``(rows, q, width)`` as an additive mask, and on a model with sliding windows each slot's
        rank among its row's real slots (``self.real`` already holds the new ones). ``last``: logits of the
        last slot only."""
        ranks = None
        if self.windowed:
            real = self.real if rows is None else self.real[rows, : allowed.shape[-1]]
            ranks = real.long().cumsum(1) - 1
        mask = masks.to_additive(allowed[:, None], self.core.dtype)
        cache = self.cache if cache is None else cache
        return self.core.forward(ids, Layout(positions, mask), cache, ranks=ranks, last=last)
