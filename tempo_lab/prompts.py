"""Prompt sets: the bundled 302 prompts, or any list of strings, text file or pandas column.

The bundled set (``tempo_lab/data/prompts.tsv``) was written for this project (CC0): 302 short prompts of
nine kinds, about 33 each: narrative, factual, dialogue, instruction, question, list, code, poetry and chat.
The poetry prompts are opening lines of public-domain poems and nursery rhymes. Prompts of kind ``chat`` are
wrapped in the model's chat template (a user turn, then the generation prompt) when the tokenizer has one.

Contents:
- ``PromptSet``: prompts, their kinds and whether each takes the chat template; ``fingerprint`` names the set.
- ``bundled_prompts()``: the bundled set.
- ``as_prompt_set(source)``: a ``PromptSet`` from a ``PromptSet``, a list of strings, a pandas Series, or a
  ``.txt`` (one prompt per line) or ``.tsv`` (``kind<TAB>prompt`` with a header) file.
- ``encode(lm, prompts, i)``: prompt ``i`` as token ids ``(1, T)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from tempo_lab.loaded import LoadedModel

BUNDLED = Path(__file__).resolve().parent / "data" / "prompts.tsv"
CHAT_KIND = "chat"


@dataclass(frozen=True)
class PromptSet:
    """Prompts with a kind each (``"prompt"`` when none was given); ``name`` says where they came from."""

    prompts: tuple[str, ...]
    kinds: tuple[str, ...]
    name: str = "prompts"

    def __post_init__(self) -> None:
        if not self.prompts:
            raise ValueError("the prompt set is empty: give at least one prompt")
        if len(self.kinds) != len(self.prompts):
            raise ValueError(f"{len(self.prompts)} prompts but {len(self.kinds)} kinds")
        seen: dict[str, int] = {}
        for i, p in enumerate(self.prompts):
            if not isinstance(p, str):
                raise ValueError(f"prompt {i} is not a string: {p!r}")
            if not p.strip():
                raise ValueError(f"prompt {i} is empty")
            if p in seen:
                raise ValueError(f"prompt {i} repeats prompt {seen[p]}: {p!r}; give each prompt once")
            seen[p] = i

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def fingerprint(self) -> str:
        """SHA-256 (first 16 hex digits) of every kind and prompt, in order: a results folder's identity."""
        text = "\n".join(f"{k}\t{p}" for k, p in zip(self.kinds, self.prompts, strict=True))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def head(self, n: int) -> PromptSet:
        """The first ``n`` prompts, or a spread over the kinds: every kind's first prompts in turn."""
        if not 1 <= n <= len(self):
            raise ValueError(f"n must be in 1..{len(self)}, got {n!r}")
        order = sorted(range(len(self)), key=lambda i: (self.kinds[: i + 1].count(self.kinds[i]), i))
        keep = sorted(order[:n])
        return PromptSet(
            tuple(self.prompts[i] for i in keep), tuple(self.kinds[i] for i in keep), f"{self.name}[:{n}]"
        )


def _read_text(path: Path) -> str:
    """A prompt file's text; a file that is not UTF-8 text is refused, naming it and the first bad byte."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        raise ValueError(
            f"the prompt file {str(path)!r} is not UTF-8 text (byte 0x{bad} at offset {exc.start}); give a "
            ".txt file with one prompt per line or a .tsv file with a kind<TAB>prompt header"
        ) from None


def _read_tsv(path: Path) -> PromptSet:
    lines = _read_text(path).splitlines()
    if not lines or lines[0].split("\t") != ["kind", "prompt"]:
        raise ValueError(f"{path} must start with the header 'kind<TAB>prompt'")
    rows = [line.split("\t", 1) for line in lines[1:] if line.strip()]
    for n, row in enumerate(rows, start=2):
        if len(row) != 2:
            raise ValueError(f"{path} line {n} has no tab between kind and prompt: {row[0]!r}")
    return PromptSet(tuple(r[1] for r in rows), tuple(r[0] for r in rows), path.name)


def bundled_prompts() -> PromptSet:
    """The bundled set: 302 prompts of nine kinds (see the module docstring)."""
    return _read_tsv(BUNDLED)


def as_prompt_set(source, name: str | None = None) -> PromptSet:
    """A ``PromptSet`` from a ``PromptSet``, a list/tuple of strings, a pandas Series (its index is ignored),
    or the path of a ``.txt`` (one prompt per line) or ``.tsv`` (``kind<TAB>prompt``) file."""
    if isinstance(source, PromptSet):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ValueError(f"no prompt file at {str(path)!r} (a single prompt must be given in a list)")
        if path.suffix == ".tsv":
            return _read_tsv(path)
        if path.is_dir():
            raise ValueError(f"{str(path)!r} is a folder; give a .txt or .tsv file of prompts")
        prompts = tuple(line for line in _read_text(path).splitlines() if line.strip())
        return PromptSet(prompts, ("prompt",) * len(prompts), name or path.name)
    if hasattr(source, "tolist") and hasattr(source, "index"):  # a pandas Series
        source = source.tolist()
    if isinstance(source, Sequence):
        prompts = tuple(source)
        return PromptSet(prompts, ("prompt",) * len(prompts), name or "prompts")
    raise ValueError(f"cannot read prompts from {type(source).__name__}; give a list of strings or a file")


def encode(lm: LoadedModel, prompts: PromptSet, i: int) -> torch.Tensor:
    """Prompt ``i`` as token ids ``(1, T)``: plain text, or the chat template for kind ``chat``."""
    text = prompts.prompts[i]
    tok = lm.tokenizer
    if prompts.kinds[i] == CHAT_KIND and getattr(tok, "chat_template", None):
        ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return torch.tensor([list(ids)], dtype=torch.long)
    return lm.encode(text)
