"""Rolling caches: attention sinks plus a window, slid along a long text one token at a time (StreamingLLM).

    logp = rolling_logprobs(lm, ids, Rolling(sinks=4, window=252))                    # StreamingLLM
    logp = rolling_logprobs(lm, ids, Rolling(sinks=0, window=256))                    # a plain window
    logp = rolling_logprobs(lm, ids, Rolling(sinks=4, window=252, reposition=False))  # sinks, not moved
    exact = rolling_logprobs(lm, ids, Rolling(sinks=4, window=252), recompute=True)   # the reference

``logp[t]`` is ``log p(ids[t + 1] | what the cache holds after token t)``: the cache keeps the first
``sinks`` tokens and the last ``window`` ones. When it is full, the oldest window token is evicted before the
next token is fed.

- ``reposition=True`` (StreamingLLM): positions are cache slots, ``0 .. sinks + window - 1``: after an
  eviction the window's keys are moved one position down (:func:`~tempo_lab.caches.reposition`) and the new
  token takes the last slot's position. The reference (``recompute=True``) runs the kept tokens from scratch
  at those positions every step.
- ``reposition=False``: every token keeps its position in the text, so a gap opens between the sinks and the
  window. The reference runs the kept tokens from scratch at their text positions.

Only the keys' rotation is corrected when the window moves; the cached keys and values of deeper layers
still carry the context they were computed in (tokens since evicted), which is the deviation from the
reference that :mod:`tempo_lab.caches` measures. A 1-layer model has none: its rolling log-probabilities
equal the reference's. With ``sinks + window`` at least the text's length nothing is evicted and the result
is the plain model's own.

Several variants of one size (``sinks + window``) run together, one batch row each, in one pass per token:
``rolling_logprobs(lm, ids, [streaming, plain, unmoved])`` returns ``(3, N - 1)``. On CPU a one-token pass
is bound by reading the weights, so three rows cost about what one does. The reference can be computed at
chosen steps only (``steps=``; the others are NaN): each of its steps is a whole pass over the kept tokens.

Sliding-window families (Gemma 2/3, Mistral, ...) are supported while the rolling cache is shorter than
their window (``sinks + window < sliding_window``): every sliding layer then holds every kept slot, and its
count of seen tokens is kept equal to them (:mod:`tempo_lab.caches.slots`); a longer rolling cache is refused.

Contents: :class:`Rolling`, :func:`rolling_logprobs`, :func:`kept_slots`, :func:`rolled_steps`,
:func:`recomputed_steps`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from numbers import Integral

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from tempo_lab.caches.reposition import reposition
from tempo_lab.caches.slots import evict
from tempo_lab.forward import DecodingCore
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel, wide, widened


@dataclass(frozen=True)
class Rolling:
    """A rolling cache layout: ``sinks`` first tokens kept, then the last ``window`` tokens; ``reposition``:
    positions are cache slots (StreamingLLM) rather than text positions."""

    sinks: int
    window: int
    reposition: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.sinks, bool) or not isinstance(self.sinks, int) or self.sinks < 0:
            raise ValueError(f"sinks must be an integer >= 0, got {self.sinks!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be an integer >= 1, got {self.window!r}")

    @property
    def size(self) -> int:
        return self.sinks + self.window


def kept_slots(rolling: Rolling, t: int) -> list[int]:
    """The text indices the cache holds once token ``t`` is in: the sinks, then the last ``window`` tokens."""
    if t + 1 <= rolling.size:
        return list(range(t + 1))
    return list(range(rolling.sinks)) + list(range(t + 1 - rolling.window, t + 1))


def _variants(lm: LoadedModel, rolling: Rolling | Sequence[Rolling]) -> list[Rolling]:
    variants = [rolling] if isinstance(rolling, Rolling) else list(rolling)
    for i, r in enumerate(variants):
        if not isinstance(r, Rolling):
            raise ValueError(f"rolling[{i}] must be a Rolling(sinks=, window=), got {r!r}")
    sizes = sorted({r.size for r in variants})
    if len(sizes) != 1:
        raise ValueError(f"variants run together must have one size (sinks + window), got sizes {sizes}")
    window = lm.family.window
    if window is not None and sizes[0] >= window:
        raise ValueError(
            f"{type(lm.model).__name__} slides over {window} tokens; a rolling cache of {sizes[0]} slots "
            f"(sinks + window) must be shorter than that (its sliding layers would drop kept slots)"
        )
    return variants


def rolling_logprobs(
    lm: LoadedModel,
    ids: torch.Tensor,
    rolling: Rolling | Sequence[Rolling],
    *,
    recompute: bool = False,
    steps: Iterable[int] | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """The log-probability of each next token of ``ids`` ``(1, N)`` under ``rolling`` (see the module
    docstring): ``(N - 1,)`` float32 for one :class:`Rolling`, ``(variants, N - 1)`` for a sequence of them
    (one size). ``recompute``: the exact reference, the kept tokens run from scratch at each step of
    ``steps`` (default: every step; the others NaN). A progress bar counts the tokens (``progress=False``:
    none)."""
    variants = _variants(lm, rolling)
    if ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] < 2:
        raise ValueError(f"ids must be one text of at least 2 tokens, shape (1, N); got {tuple(ids.shape)}")
    n = ids.shape[1]
    chosen = range(n - 1) if steps is None else sorted(set(steps))
    for t in chosen:
        if isinstance(t, bool) or not isinstance(t, Integral) or not 0 <= t < n - 1:
            raise ValueError(f"step {t!r} is outside the text's steps 0..{n - 2}")
    chosen = [int(t) for t in chosen] if steps is not None else chosen
    if steps is not None and not recompute:
        raise ValueError("steps= chooses the reference's steps: give it with recompute=True")
    out = torch.full((len(variants), n - 1), float("nan"), dtype=wide(lm.dtype))
    if recompute:
        run = recomputed_steps(lm, ids, variants, chosen)
    else:
        run = ((t, logits) for t, logits, _ in rolled_steps(lm, ids, variants, chosen))
    for t, logits in tqdm(run, total=len(chosen), desc="rolling", disable=not progress, leave=False):
        out[:, t] = torch.log_softmax(widened(logits[:, -1]), -1)[:, ids[0, t + 1]].cpu()
    return out[0] if isinstance(rolling, Rolling) else out


def recomputed_steps(
    lm: LoadedModel, ids: torch.Tensor, variants: Sequence[Rolling], steps: Iterable[int]
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(t, logits (variants, 1, vocab))`` at each step ``t`` of ``steps``: the tokens each variant keeps
    after token ``t``, run from scratch at their positions (one batch row per variant, one size)."""
    core = DecodingCore(lm)
    for t in steps:
        kept = [kept_slots(r, t) for r in variants]
        where = torch.tensor(
            [list(range(len(k))) if r.reposition else k for r, k in zip(variants, kept, strict=True)]
        )
        yield t, core.forward(ids[0, torch.tensor(kept)], Layout(widened(where)), last=True)


def rolled_steps(
    lm: LoadedModel,
    ids: torch.Tensor,
    variants: Sequence[Rolling],
    steps: range,
    cache: DynamicCache | None = None,
) -> Iterator[tuple[int, torch.Tensor, DynamicCache]]:
    """``(t, logits (variants, 1, vocab), cache)`` after feeding token ``t``, for the consecutive ``steps``,
    on the rolling ``cache`` (one batch row per variant; ``None``: empty, for steps starting at 0) that holds
    what the variants keep before ``steps.start``. The cache yielded is the one to continue from."""
    core = DecodingCore(lm)
    size = variants[0].size
    if cache is None:
        if steps.start != 0:
            raise ValueError(f"steps start at {steps.start}: give the rolling cache held before that step")
        cache = DynamicCache(config=lm.model.config)
    evicted = [r.sinks for r in variants]
    moved = torch.tensor(
        [[-1.0 if r.reposition and s >= r.sinks else 0.0 for s in range(size - 1)] for r in variants]
    )
    for t in steps:
        if cache.get_seq_length() == size:  # full: each row's oldest window token goes
            cache = reposition(lm, evict(cache, evicted), moved)
        held = cache.get_seq_length()
        where = torch.tensor([[float(held if r.reposition else t)] for r in variants])
        logits = core.forward(ids[:, t : t + 1].expand(len(variants), -1), Layout(where), cache, last=True)
        yield t, logits, cache
