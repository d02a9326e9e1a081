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

Sliding-window families (Gemma 2/3, Mistral, ...) are refused for now: their sliding cache layers count the
tokens they have seen, which eviction would have to rewrite.

Contents: :class:`Rolling`, :func:`rolling_logprobs`, :func:`kept_slots`, :func:`evict`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from tempo_lab.caches.reposition import reposition
from tempo_lab.families import family_of
from tempo_lab.generators import DecodingCore
from tempo_lab.loaded import LoadedModel


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


def evict(cache: DynamicCache, slot: int) -> DynamicCache:
    """A copy of ``cache`` without slot ``slot`` (keys and values of every layer; ``cache`` is untouched)."""
    out = copy.copy(cache)
    out.layers = []
    for held in cache.layers:
        part = copy.copy(held)
        keep = torch.cat([torch.arange(slot), torch.arange(slot + 1, held.keys.shape[2])]).to(
            held.keys.device
        )
        part.keys, part.values = held.keys.index_select(2, keep), held.values.index_select(2, keep)
        out.layers.append(part)
    return out


def rolling_logprobs(
    lm: LoadedModel,
    ids: torch.Tensor,
    rolling: Rolling,
    *,
    recompute: bool = False,
    progress: bool = True,
) -> torch.Tensor:
    """``(N - 1,)`` float32: the log-probability of each next token of ``ids`` ``(1, N)`` under ``rolling``
    (see the module docstring); ``recompute``: the exact reference, the kept tokens run from scratch at each
    step. A progress bar counts the tokens (``progress=False``: none)."""
    if not isinstance(rolling, Rolling):
        raise ValueError(f"rolling must be a Rolling(sinks=, window=), got {rolling!r}")
    if family_of(lm.model).window is not None:
        raise ValueError(
            f"{type(lm.model).__name__} has sliding-window layers: rolling caches are not supported on them "
            "yet (their cache layers count the tokens they have seen, which eviction would rewrite)"
        )
    if ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] < 2:
        raise ValueError(f"ids must be one text of at least 2 tokens, shape (1, N); got {tuple(ids.shape)}")
    core = DecodingCore(lm)
    n = ids.shape[1]
    out = torch.empty(n - 1)
    cache = DynamicCache(config=lm.model.config)
    for t in tqdm(range(n - 1), desc="rolling", disable=not progress, leave=False):
        kept = kept_slots(rolling, t)
        if recompute:
            token_ids = ids[:, kept]
            where = torch.arange(len(kept)) if rolling.reposition else torch.tensor(kept)
            full = torch.ones(len(kept), len(kept), dtype=torch.bool).tril()[None, None]
            logits = core.forward(token_ids, where[None].float(), full, None, last=True)
        else:
            if cache.get_seq_length() == rolling.size:  # full: the oldest window token goes
                cache = evict(cache, rolling.sinks)
                if rolling.reposition:
                    cache = reposition(lm, cache, -1.0, slots=range(rolling.sinks, cache.get_seq_length()))
            position = cache.get_seq_length() if rolling.reposition else t
            sees = torch.ones(1, 1, 1, cache.get_seq_length() + 1, dtype=torch.bool)
            logits = core.forward(
                ids[:, t : t + 1], torch.tensor([[float(position)]]), sees, cache, last=True
            )
        out[t] = torch.log_softmax(logits[0, -1].float(), -1)[ids[0, t + 1]].cpu()
    return out
