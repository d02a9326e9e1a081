"""A loaded model: the model with its tokenizer, and the prompt/token encoding every part of tempo_lab uses.

Contents: :class:`LoadedModel`, :func:`evaluating` (eval mode for a block, restored after),
:func:`keeps_logits`, :func:`widened` (float32, or float64 where a tensor already is), :func:`token_bytes`,
:func:`trained_context`, :func:`default_device` (where
models go when no device is named: ``$TEMPO_LAB_DEVICE``, else the CPU), :func:`beyond_context` (positions
past the trained context allowed for a block). Loading is :mod:`tempo_lab.models`;
tiny random models are :mod:`tempo_lab.tiny`.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.convert_slow_tokenizer import bytes_to_unicode

from tempo_lab.families import Family, family_of, rope_parameters
from tempo_lab.plumbing import checks


@contextmanager
def beyond_context(lm: LoadedModel) -> Iterator[LoadedModel]:
    """Inside the block, positions past ``lm``'s trained context are allowed (``lm.max_positions`` is
    ``None``): a rotary model computes any position, and running it there is what context extension studies
    (:mod:`tempo_lab.extension`, whose :func:`~tempo_lab.extension.scaled` opens one itself). A model with a
    learned position table (or a rotary one looked up in a table, GPT-J) has no row past its context:
    refused with the reason. Blocks nest."""
    family = lm.family
    if family.integer_positions:
        raise ValueError(
            f"{type(lm.model).__name__} has no position past its context ({lm.max_positions}) to run at: "
            f"{family.position_reason()}"
        )
    lm._past_context += 1
    try:
        yield lm
    finally:
        lm._past_context -= 1


def default_device() -> torch.device:
    """Where :func:`~tempo_lab.load_model` and :func:`~tempo_lab.tiny.tiny_random` put a model when no device
    is named: ``$TEMPO_LAB_DEVICE`` (``pytest --device cuda`` sets it for the whole test session), else the
    CPU."""
    return torch.device(os.environ.get("TEMPO_LAB_DEVICE") or "cpu")


@dataclass
class LoadedModel:
    """A model in eval mode with its tokenizer. ``name`` is what was asked for (or the bundled model's
    name)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    _past_context: int = field(default=0, repr=False, compare=False)  # open beyond_context() blocks

    @property
    def device(self) -> torch.device:
        """Where inputs go: the device of the input embeddings (the first device of a ``device_map``)."""
        return self.model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def max_positions(self) -> int | None:
        """The model's context length (``max_position_embeddings``), if it declares one: the largest position
        tempo_lab lets a pass reach, plus one. ``None`` (no limit) inside :func:`beyond_context`."""
        if self._past_context:
            return None
        return getattr(self.model.config, "max_position_embeddings", None)

    @property
    def family(self) -> Family:
        """The model's family (:func:`~tempo_lab.families.family_of`: its row of the family table and what its
        config adds); refused, naming it, when the table has no row for it."""
        return family_of(self.model)

    @property
    def is_rotary(self) -> bool:
        """Whether positions enter through a rotary embedding in every layer (the family table says)."""
        return self.family.is_rotary

    def encode(self, text: str) -> torch.Tensor:
        """Token ids of ``text``, shape ``(1, T)``: the text's tokens, after the BOS token when the model's
        tokenizer starts every text with one (Gemma does, and its predictions fall apart without it; SmolLM2
        and the tiny models do not); no other special tokens. Refuses an empty prompt."""
        if not isinstance(text, str) or not text:
            raise ValueError("the prompt is empty: give at least one character of text")
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        if ids.shape[1] == 0:
            raise ValueError(f"the prompt {text!r} encodes to no tokens")
        bos = self.tokenizer.bos_token_id
        if bos is not None and ids[0, 0] != bos and self.tokenizer(text).input_ids[:1] == [bos]:
            ids = torch.cat([torch.tensor([[bos]]), ids], dim=1)
        return ids.to(self.device)

    def encode_prompt(self, prompt: str | torch.Tensor) -> tuple[str, torch.Tensor]:
        """``(text, ids (1, T))`` for a prompt given as text or as token ids ``(T,)`` / ``(1, T)``.

        Refuses an empty prompt (text or ids) before any model work.
        """
        if isinstance(prompt, torch.Tensor):
            ids = prompt if prompt.dim() == 2 else prompt.reshape(1, -1)
            if ids.shape[0] != 1 or ids.shape[1] == 0 or ids.is_floating_point():
                raise ValueError(
                    f"prompt ids must be a non-empty integer tensor of shape (T,) or (1, T), got "
                    f"{tuple(prompt.shape)} {prompt.dtype}"
                )
            return self.tokenizer.decode(ids[0].tolist()), ids.to(self.device)
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"the prompt is empty: give at least one character of text (got {prompt!r})")
        return prompt, self.encode(prompt)

    def token_str(self, token_id: int) -> str:
        """The text of one token, as it would be decoded in context. A byte-level token that holds only part
        of a multi-byte character (an emoji's first bytes) decodes to the replacement character; it is shown
        as its bytes instead, e.g. ``<0xF0 0x9F>``."""
        text = self.tokenizer.decode([int(token_id)])
        if "\ufffd" in text:
            raw = token_bytes(self.tokenizer, int(token_id))
            if raw is not None and "\ufffd" not in raw.decode("utf-8", errors="ignore"):
                return "<" + " ".join(f"0x{b:02X}" for b in raw) + ">"
        return text

    def token_id(self, token: str | int) -> int:
        """The id of a token given as an id or as text that encodes to exactly one token."""
        if checks.is_number(token) and float(token).is_integer():
            token = int(token)
            if not 0 <= token < self.model.config.vocab_size:
                raise ValueError(
                    f"token id {token} is outside the vocabulary (0..{self.model.config.vocab_size - 1})"
                )
            return token
        ids = self.tokenizer(token, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise ValueError(
                f"{token!r} encodes to {len(ids)} tokens {ids}; give text that is exactly one token"
            )
        return ids[0]


def token_bytes(tokenizer: PreTrainedTokenizerBase, token_id: int) -> bytes | None:
    """The bytes a token stands for, when its tokenizer says: a byte-fallback token (``<0xF0>``) or a
    byte-level BPE token (GPT-2's byte-to-unicode alphabet); ``None`` otherwise."""
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    if not isinstance(piece, str):
        return None
    fallback = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
    if fallback:
        return bytes([int(fallback.group(1), 16)])
    alphabet = _byte_alphabet()
    if piece and all(ch in alphabet for ch in piece):
        return bytes(alphabet[ch] for ch in piece)
    return None


@functools.cache
def _byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character -> byte."""
    return {ch: b for b, ch in bytes_to_unicode().items()}


@contextmanager
def evaluating(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """Run ``model`` in eval mode inside the block (no dropout); a model that was training is put back."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


def widened(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32, or left in float64: probabilities and logits are never computed in half precision,
    and a float64 model's (the tiny models' the tests check the mathematics on) keep their precision."""
    return x if x.dtype == torch.float64 else x.float()


def wide(dtype: torch.dtype) -> torch.dtype:
    """The dtype :func:`widened` gives a tensor of ``dtype``: float64 for float64, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def keeps_logits(model: PreTrainedModel) -> bool:
    """True if ``model``'s forward takes transformers' ``logits_to_keep`` (project only those slots onto the
    vocabulary: an int ``k``, the last ``k`` slots, or a 1D tensor of slot indices)."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def trained_context(lm: LoadedModel) -> int:
    """The context ``lm`` was trained at: the ``original_max_position_embeddings`` of its checkpoint's own
    scaling (its ``rope_parameters``, or the config itself, where Phi-3 keeps the pre-extension length),
    else its ``max_position_embeddings`` (also inside :func:`~tempo_lab.loaded.beyond_context`, where
    ``lm.max_positions`` is ``None``)."""
    config = lm.model.config.get_text_config(decoder=True)
    return (
        rope_parameters(config).get("original_max_position_embeddings")
        or getattr(config, "original_max_position_embeddings", None)
        or config.max_position_embeddings
    )
