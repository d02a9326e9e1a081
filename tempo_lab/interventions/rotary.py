"""A model's rotary embedding as tempo_lab reads it: where it sits, its frequency bands, how it rotates.

Nothing here is a copy of a model's code. Where the rotary module and the layers are, and how its cos/sin
are laid out, is the family table's (:data:`tempo_lab.families.ARCHITECTURES`); the frequencies are read off
the model's own rotary module (its cos/sin at position 1: each column's angle is its frequency), and a
rotation is applied with the model's own ``apply_rotary_pos_emb`` (the public function of the attention
module's modeling file), so half-split, interleaved, half-width (gpt-oss) and partial rotary layouts are all
the model's.

- **Bands** are the rotary frequency pairs, indexed from the highest frequency (band 0, wavelength 2π tokens
  for ``inv_freq = 1``) to the lowest; each band fills two columns of cos/sin. A model with one RoPE base per
  layer type (Gemma 3) has the same band indices with other wavelengths per layer type.
- RoPE rotations compose: ``R(p + d) = R(d) R(p)``, so a query or key already rotated at its position is moved
  by ``d`` exactly by one more rotation, :meth:`Rotary.rotate`.
- Some families leave RoPE out of some layers (Cohere 2's full-attention layers see no positions at all).
  :meth:`Rotary.is_positional` measures it: the layer's own output for two tokens at distance 1 and at
  distance 3, equal when the layer ignores the embedding it is given.

Contents: :class:`Rotary`, :func:`rotary_of`, :func:`check_indices`.
"""

from __future__ import annotations

import inspect
import math
import sys
import weakref
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from tempo_lab.families import FREQUENCY_CHOOSING_ROPE
from tempo_lab.loaded import LoadedModel

# What a Rotary measures about a model (each layer type's frequencies, whether each layer applies RoPE), kept
# for as long as the model lives: a Rotary is made per call, its measurements once per model. The values hold
# no reference to the model, so the model can still be collected.
_MEASURED: weakref.WeakKeyDictionary[nn.Module, tuple[dict, dict]] = weakref.WeakKeyDictionary()


class Rotary:
    """The rotary embedding of one model (see the module docstring). Refuses a model without one (learned
    position tables, GPT-2), one whose rotary cos/sin are looked up in a table of integer positions (GPT-J,
    CodeGen: no frequencies to read or rescale), and, unless ``fixed=False`` (a scaling composed with the
    frequencies of each pass, :func:`~tempo_lab.extension.scaled`), one whose RoPE chooses its frequencies
    from the positions it sees (dynamic, longrope), where a rotation at other positions is not a fixed
    rotation."""

    def __init__(self, lm: LoadedModel, *, fixed: bool = True):
        model, base, family = lm.model, lm.model.base_model, lm.family
        if not family.is_rotary:
            raise ValueError(
                f"{type(model).__name__} has no rotary position embedding (it looks positions up in a "
                "learned table at the input): positions enter once, before the first layer, so per-layer, "
                "per-band and per-head positions mean nothing for it; patch activations across layouts "
                "instead (tempo_lab.interventions.patching)"
            )
        if not family.has_bands:
            raise ValueError(
                f"{type(model).__name__}: {family.position_reason()}, so it has no frequencies to read, "
                "rescale or rotate by a fraction of a position; per-layer, per-band and per-head positions "
                "and context-extension methods need a rotary embedding computed from the positions; patch "
                "activations across layouts instead (tempo_lab.interventions.patching)"
            )
        self.module: nn.Module = _part_or_refuse(base, "rotary_emb", family.model_type)
        self.half_width = family.architecture.rotary.half_width
        self.family = family
        layers = family.modules(model).layers
        if fixed and family.rope_type in FREQUENCY_CHOOSING_ROPE:
            raise ValueError(
                f"{type(model).__name__}'s RoPE (rope_type {family.rope_type!r}) chooses its frequencies "
                "from the largest position it sees, so a rotation at other positions is not one fixed "
                "rotation; load it with rope_parameters={'rope_type': 'default', ...} to study it with "
                "interventions"
            )
        self.model, self.layers = model, list(layers)
        config = model.config.get_text_config(decoder=True)
        self.layer_types = list(getattr(config, "layer_types", None) or ["full_attention"] * len(self.layers))
        self.n_heads = config.num_attention_heads
        self.takes_layer_type = "layer_type" in inspect.signature(self.module.forward).parameters
        self._read: dict[str, tuple[torch.Tensor, float]]
        self._positional: dict[int, bool]
        self._read, self._positional = _MEASURED.setdefault(model, ({}, {}))

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def embeddings(self, x: torch.Tensor, positions: torch.Tensor, layer: int) -> tuple[torch.Tensor, ...]:
        """The model's own ``(cos, sin)`` for ``positions`` ``(batch, q)`` at ``layer``; each
        ``(batch, q, rotary_dim)``, differentiable in the positions."""
        if self.takes_layer_type:
            return self.module(x, positions, self.layer_types[layer])
        return self.module(x, positions)

    def attention(self, layer: int) -> nn.Module:
        """The self-attention module of ``layer`` (where the family table says it is)."""
        return getattr(self.layers[layer], self.family.architecture.parts.attention)

    def is_positional(self, layer: int) -> bool:
        """Whether ``layer`` applies the rotary embedding it receives (measured once, see the module
        docstring)."""
        if layer not in self._positional:
            block = self.layers[layer]
            weight = next(block.parameters())
            hidden_size = self.model.config.get_text_config(decoder=True).hidden_size
            g = torch.Generator(device="cpu").manual_seed(0)
            h = torch.randn(1, 2, hidden_size, generator=g).to(weight.device, weight.dtype)
            mask = torch.zeros(1, 1, 2, 2, dtype=weight.dtype, device=weight.device)
            mask[..., 0, 1] = torch.finfo(weight.dtype).min
            outputs = []
            with torch.no_grad():
                for far in (1.0, 3.0):
                    p = torch.tensor([[0.0, far]], device=weight.device)
                    out = block(
                        h,
                        attention_mask=mask,
                        position_ids=p,
                        position_embeddings=self.embeddings(h, p, layer),
                        **dict(self.family.architecture.layer_kwargs),
                    )
                    outputs.append(out[0] if isinstance(out, tuple) else out)
            self._positional[layer] = not torch.equal(*outputs)
        return self._positional[layer]

    # --- bands ---

    def _angles(self, layer_type: str) -> tuple[torch.Tensor, float]:
        """Per cos/sin column its frequency (radians per position), and the module's amplitude scaling."""
        if layer_type not in self._read:
            self._read[layer_type] = self._measure(layer_type)
        return self._read[layer_type]

    def _measure(self, layer_type: str) -> tuple[torch.Tensor, float]:
        layer = self.layer_types.index(layer_type)
        x = torch.zeros(1, dtype=torch.float32, device=self.module_device())
        cos, sin = self.embeddings(x, torch.ones(1, 1, device=x.device), layer)
        cos, sin = cos[0, 0].double(), sin[0, 0].double()
        scale = float(torch.sqrt(cos[0] ** 2 + sin[0] ** 2))
        return torch.atan2(sin, cos).float().cpu(), scale

    def module_device(self) -> torch.device:
        buffers = list(self.module.buffers())
        return buffers[0].device if buffers else torch.device("cpu")

    def columns(self, layer: int) -> torch.Tensor:
        """The band of each cos/sin column at ``layer``, ``(rotary_dim,)`` long: band 0 is the highest
        frequency."""
        angles, _ = self._angles(self.layer_types[layer])
        freqs = sorted(set(angles.tolist()), reverse=True)
        return torch.tensor([freqs.index(a) for a in angles.tolist()], dtype=torch.long)

    def n_bands(self, layer: int = 0) -> int:
        return int(self.columns(layer).max()) + 1

    def bands(self) -> pd.DataFrame:
        """One row per band and layer type: ``band``, ``layer_type``, ``frequency`` (radians per position),
        ``wavelength`` (tokens per turn, ``2π / frequency``)."""
        rows = []
        for layer_type in dict.fromkeys(self.layer_types):
            angles, _ = self._angles(layer_type)
            for band, freq in enumerate(sorted(set(angles.tolist()), reverse=True)):
                rows.append(
                    {
                        "band": band,
                        "layer_type": layer_type,
                        "frequency": freq,
                        "wavelength": 2 * math.pi / freq if freq > 0 else math.inf,
                    }
                )
        return pd.DataFrame(rows)

    def check_bands(self, bands: Sequence[int]) -> list[int]:
        """``bands`` as a list of valid band indices (``ValueError`` naming one outside the rotary dims)."""
        n = self.n_bands()
        out = []
        for i, b in enumerate(bands):
            if isinstance(b, bool) or not isinstance(b, int) or not 0 <= b < n:
                raise ValueError(
                    f"bands[{i}] = {b!r} is outside the rotary dimensions: this model has {n} frequency "
                    f"bands (0..{n - 1}, 0 the highest frequency)"
                )
            out.append(b)
        return out

    # --- rotating ---

    def delta(self, shift: torch.Tensor, layer: int, bands: Sequence[int] | None) -> tuple[torch.Tensor, ...]:
        """``(cos, sin)`` of a pure rotation by ``shift`` ``(batch, n)`` positions (the module's amplitude
        scaling taken out), the identity (cos 1, sin 0) outside ``bands`` (``None``: every band)."""
        x = torch.zeros(1, dtype=torch.float32, device=shift.device)
        cos, sin = self.embeddings(x, shift, layer)
        _, scale = self._angles(self.layer_types[layer])
        cos, sin = cos / scale, sin / scale
        if bands is not None:
            keep = torch.isin(self.columns(layer), torch.tensor(list(bands))).to(cos.device)
            cos = torch.where(keep, cos, torch.ones_like(cos))
            sin = torch.where(keep, sin, torch.zeros_like(sin))
        return cos, sin

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layer: int) -> torch.Tensor:
        """``x`` ``(batch, heads, n, head_dim)`` rotated by ``(cos, sin)`` ``(batch, n, columns)`` with the
        model's own ``apply_rotary_pos_emb``, on the first rotated dims (partial rotary, as every family with
        it lays it out: ``columns`` of them, or twice as many for a half-width family); the other dims are
        left as they are."""
        d = cos.shape[-1] * (2 if self.half_width else 1)
        rotated, _ = self.apply(layer)(x[..., :d], x[..., :d], cos.to(x.dtype), sin.to(x.dtype))
        return rotated if d == x.shape[-1] else torch.cat([rotated, x[..., d:]], -1)

    def apply(self, layer: int) -> Callable:
        """The model's ``apply_rotary_pos_emb`` (its attention module's file holds it)."""
        module = sys.modules[type(self.attention(layer)).__module__]
        fn = getattr(module, "apply_rotary_pos_emb", None)
        if fn is None:
            raise ValueError(
                f"{module.__name__} has no apply_rotary_pos_emb: per-head positions are not "
                "supported for this family"
            )
        return fn


def _part_or_refuse(owner: nn.Module, name: str, family: str) -> nn.Module:
    found = getattr(owner, name, None)
    if not isinstance(found, nn.Module):
        raise ValueError(f"{family}'s base model has no {name!r}: its rotary module is not where the family "
                         "table expects it")  # fmt: skip
    return found


def check_indices(name: str, values: Sequence[int], n: int, what: str) -> list[int]:
    """``values`` as a list of indices in ``0..n-1`` (``ValueError`` naming the first one out of range, e.g.
    ``layers[1] = 7 is out of range: this model has 2 layers (0..1)``); empty stays empty."""
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
            raise ValueError(f"{name}[{i}] = {v!r} is out of range: this model has {n} {what} (0..{n - 1})")
        out.append(v)
    return out


def rotary_of(lm: LoadedModel) -> Rotary:
    """The :class:`Rotary` of ``lm`` (``ValueError`` with the reason when it has none it can use)."""
    return Rotary(lm)
