"""Rotary scalings as position layouts: context-extension methods applied at inference to an unchanged model.

    scaling = RopeScaling.yarn(4.0, original_length=8192)
    with scaled(lm, scaling):                    # every layer; layers=[...] for some of them
        ...                                      # any forward pass: generators, sessions, studies, patching

transformers implements these methods as config (``rope_parameters``), applied to the whole model and chosen
when it is loaded. Here each method is a frequency table over the rotary bands (band 0 the highest
frequency, as in :mod:`tempo_lab.interventions.rotary`) and an attention factor, computed by the method's
formula from the frequencies ``f_b`` the model uses (its rotary module's ``inv_freq``: a checkpoint's own
scaling composes with the method), with ``d`` the rotary dimensions, ``θ`` the RoPE base and ``L₀`` the
trained context (``original_length``; default :func:`~tempo_lab.loaded.trained_context`):

- ``linear``, Position Interpolation (Chen et al. 2023): every ``f_b / factor``, i.e. positions × 1/factor;
- ``ntk``, NTK-aware scaling: the base raised to ``θ · factor^(d/(d-2))``, i.e. ``f_b / factor^(2b/(d-2))``:
  the highest band kept, the lowest interpolated by ``factor``;
- ``dynamic``: transformers' dynamic NTK *at one stated sequence length* ``L``: the base
  ``θ · (factor·L/L₀ − factor + 1)^(d/(d-2))`` past ``L₀``, unchanged below;
- ``yarn`` (Peng et al. 2023): per band a linear ramp, over band indices, between interpolation (``f_b /
  factor`` where a band turns fewer than ``beta_slow`` times over ``L₀``) and extrapolation (``f_b`` where it
  turns more than ``beta_fast`` times), and an attention temperature: cos and sin multiplied by
  ``0.1·ln(factor) + 1`` unless ``attention_factor`` is given;
- ``llama3`` (Llama 3.1): bands of wavelength above ``L₀/low_freq_factor`` divided by ``factor``, those below
  ``L₀/high_freq_factor`` kept, those between smoothed;
- ``longrope`` (Ding et al. 2024): ``f_b / ext_b``, with ``ext`` the ``short_factor`` or the ``long_factor``
  list (``long=``), and the attention factor ``sqrt(1 + ln(factor)/ln(L₀))`` (1 for ``factor`` ≤ 1).

**The table-switch pitfall.** transformers' ``dynamic`` and ``longrope`` choose their table from
``max(position_ids) + 1`` on every pass: one far (gapped) or large fractional position switches the table of
*every* token of the pass, and a cached step whose largest position crosses ``L₀`` rotates its queries by
another table than the keys already cached. A :class:`RopeScaling` states its table (``length=`` for
``dynamic``, ``long=`` for ``longrope``) and uses it for every position, so gapped, fractional and cached
layouts see one fixed rotation. ``RopeScaling.rope_parameters()`` is the transformers config that computes the
same table (when the positions pick it), the reference the tests compare against.

How: a forward pre-hook on the base model records each pass's positions, and one (with kwargs) on each chosen
decoder layer replaces its ``position_embeddings=(cos, sin)`` by the scaled table's (in float32, as the
model's rotary module computes them, in the model's own columns). Keys are cached as rotated, so cached steps
equal a full recompute. The hooks are removed on exit, also after an exception. A position edit
(:func:`~tempo_lab.interventions.intervene`) inside the block moves the scaled embeddings by the model's own
band frequencies.

Contents: :class:`RopeScaling`, :data:`METHODS`, :func:`scaled`, :func:`scaled_table`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from tempo_lab.families import rope_parameters
from tempo_lab.interventions.edits import CurrentPass
from tempo_lab.interventions.rotary import Rotary, check_indices
from tempo_lab.loaded import LoadedModel, beyond_context, trained_context
from tempo_lab.plumbing import checks

METHODS = ("linear", "ntk", "dynamic", "yarn", "llama3", "longrope")


@dataclass(frozen=True)
class RopeScaling:
    """One context-extension method and its parameters (see the module docstring); build it with the class
    methods (:meth:`linear`, :meth:`ntk`, :meth:`dynamic`, :meth:`yarn`, :meth:`llama3`, :meth:`longrope`).
    ``original_length`` ``None`` means the model's :func:`trained_context`. Bad values are refused here,
    naming the value; the ones that depend on the model (LongRoPE's list lengths) when it is applied."""

    method: str
    factor: float = 1.0
    original_length: int | None = None
    length: float | None = None
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    short_factor: tuple[float, ...] | None = None
    long_factor: tuple[float, ...] | None = None
    long: bool = False
    attention_factor: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        checks.positive("factor", self.factor)
        if self.original_length is not None:
            checks.positive("original_length", self.original_length)
        if self.method == "dynamic":
            if self.length is None:
                raise ValueError("dynamic NTK needs length=, the sequence length whose table it uses")
            checks.positive("length", self.length)
        if self.method == "yarn" and not self.beta_fast > self.beta_slow > 0:
            raise ValueError(
                f"YaRN needs beta_fast > beta_slow > 0, got beta_fast={self.beta_fast!r}, "
                f"beta_slow={self.beta_slow!r}"
            )
        if self.method == "llama3" and not self.high_freq_factor > self.low_freq_factor > 0:
            raise ValueError(
                f"llama3 needs high_freq_factor > low_freq_factor > 0, got {self.high_freq_factor!r} and "
                f"{self.low_freq_factor!r}"
            )
        if self.method == "longrope":
            for name in ("short_factor", "long_factor"):
                values = getattr(self, name)
                if values is None or not len(values):
                    raise ValueError(f"LongRoPE needs {name}=, one factor per rotary band")
                for i, v in enumerate(values):
                    checks.positive(f"{name}[{i}]", v)
        if self.attention_factor is not None:
            checks.positive("attention_factor", self.attention_factor)

    # --- the methods ---

    @classmethod
    def linear(cls, factor: float) -> RopeScaling:
        """Position Interpolation: every position divided by ``factor``."""
        return cls("linear", factor)

    @classmethod
    def ntk(cls, factor: float) -> RopeScaling:
        """NTK-aware scaling: the RoPE base multiplied by ``factor^(d/(d-2))``."""
        return cls("ntk", factor)

    @classmethod
    def dynamic(cls, factor: float, length: float, original_length: int | None = None) -> RopeScaling:
        """transformers' dynamic NTK with the table of a ``length``-token sequence."""
        return cls("dynamic", factor, original_length, length=length)

    @classmethod
    def yarn(
        cls,
        factor: float,
        original_length: int | None = None,
        beta_fast: float = 32.0,
        beta_slow: float = 1.0,
        attention_factor: float | None = None,
    ) -> RopeScaling:
        """YaRN: the per-band ramp between interpolation and extrapolation, and its attention temperature."""
        return cls("yarn", factor, original_length, beta_fast=beta_fast, beta_slow=beta_slow,
                   attention_factor=attention_factor)  # fmt: skip

    @classmethod
    def llama3(
        cls,
        factor: float,
        original_length: int | None = None,
        low_freq_factor: float = 1.0,
        high_freq_factor: float = 4.0,
    ) -> RopeScaling:
        """Llama 3.1's scaling: low frequencies interpolated, high ones kept, smoothed between."""
        return cls("llama3", factor, original_length, low_freq_factor=low_freq_factor,
                   high_freq_factor=high_freq_factor)  # fmt: skip

    @classmethod
    def longrope(
        cls,
        short_factor: Sequence[float],
        long_factor: Sequence[float],
        original_length: int | None = None,
        long: bool = True,
        factor: float = 1.0,
        attention_factor: float | None = None,
    ) -> RopeScaling:
        """LongRoPE: a factor per band, the long list (``long=True``) or the short one."""
        return cls("longrope", factor, original_length, short_factor=tuple(short_factor),
                   long_factor=tuple(long_factor), long=long, attention_factor=attention_factor)  # fmt: skip

    # --- the table ---

    def table(self, inv_freq: torch.Tensor, base: float, trained: int) -> tuple[torch.Tensor, float]:
        """The scaled frequencies ``(bands,)`` float32 (band 0 the highest) and the attention factor, from the
        frequencies ``inv_freq`` ``(bands,)`` the model uses (its own scaling, if its checkpoint has one,
        included: a method composes with it), its RoPE ``base`` and its trained context ``trained`` (used when
        ``original_length`` is ``None``). On a plain RoPE ``inv_freq`` is ``base^(-2b/d)``, and each formula
        is the method's own (NTK's raised base gives ``f_b / factor^(2b/(d-2))``)."""
        f = inv_freq.float()
        n = f.shape[0]
        d = 2 * n
        length0 = self.original_length or trained
        s = float(self.factor)
        band = torch.arange(n, dtype=torch.float32, device=f.device)
        if self.method == "linear":
            return f / s, 1.0
        if self.method in ("ntk", "dynamic"):  # a raised base: band b slowed by alpha^(2b/(d-2))
            if d <= 2:
                raise ValueError(
                    f"{self.method} scaling raises the base to the power d/(d-2): it needs at least 2 rotary "
                    f"bands, and this model rotates d = {d} dimensions"
                )
            alpha = s if self.method == "ntk" else s * max(self.length, length0) / length0 - (s - 1)
            slowed = alpha ** (-2 * band.double() / (d - 2))
            return (f.double() * slowed).float(), 1.0
        if self.method == "yarn":

            def band_turning(turns: float) -> float:  # the (fractional) band that turns `turns` times in L₀
                return d * math.log(length0 / (turns * 2 * math.pi)) / (2 * math.log(base))

            low = max(math.floor(band_turning(self.beta_fast)), 0)
            high = min(math.ceil(band_turning(self.beta_slow)), d - 1)
            ramp = ((band - low) / ((high - low) or 0.001)).clamp(0, 1)  # 0: extrapolate, 1: interpolate
            temperature = self.attention_factor or (0.1 * math.log(s) + 1.0 if s > 1 else 1.0)
            return f / s * ramp + f * (1 - ramp), temperature
        if self.method == "llama3":
            wavelength = 2 * math.pi / f
            low_ff, high_ff = self.low_freq_factor, self.high_freq_factor
            low_wave, high_wave = length0 / low_ff, length0 / high_ff
            kept = torch.where(wavelength > low_wave, f / s, f)  # long wavelengths interpolated
            smooth = (length0 / wavelength - low_ff) / (high_ff - low_ff)
            between = (wavelength >= high_wave) & (wavelength <= low_wave)
            return torch.where(between, (1 - smooth) * kept / s + smooth * kept, kept), 1.0
        ext = self.long_factor if self.long else self.short_factor
        if len(ext) != n:
            which = "long_factor" if self.long else "short_factor"
            raise ValueError(f"LongRoPE's {which} has {len(ext)} factors; this model has {n} rotary bands")
        temperature = self.attention_factor or (
            math.sqrt(1 + math.log(s) / math.log(length0)) if s > 1 else 1.0
        )
        return f / torch.tensor(ext, dtype=torch.float32, device=f.device), temperature

    def rope_parameters(self, base: float, trained: int | None = None) -> dict:
        """The transformers ``rope_parameters`` entry whose table is this one (for ``dynamic``: when the
        pass's largest position is ``length - 1``; for ``longrope``: when it is past ``original_length`` for
        the long table, below it for the short one). ``ntk`` has no transformers type: ``ValueError``.
        ``dynamic`` in transformers reads ``L₀`` from the config's ``max_position_embeddings``."""
        out: dict = {"rope_type": self.method, "rope_theta": base}
        if self.method == "ntk":
            raise ValueError(
                "transformers has no static NTK rope_type (RopeScaling.dynamic is its dynamic one)"
            )
        out["factor"] = self.factor
        length0 = self.original_length or trained
        if self.method in ("yarn", "llama3", "longrope"):
            if length0 is None:
                raise ValueError("give trained= (the model's trained context) or original_length=")
            out["original_max_position_embeddings"] = length0
        if self.method == "yarn":
            out |= {"beta_fast": self.beta_fast, "beta_slow": self.beta_slow}
        if self.method == "llama3":
            out |= {"low_freq_factor": self.low_freq_factor, "high_freq_factor": self.high_freq_factor}
        if self.method == "longrope":
            out |= {"short_factor": list(self.short_factor), "long_factor": list(self.long_factor)}
        if self.attention_factor is not None:
            out["attention_factor"] = self.attention_factor
        return out


def _own(rotary: Rotary, layer_type: str) -> tuple[torch.Tensor, float, float]:
    """The frequencies ``(bands,)`` the model's rotary module uses now for ``layer_type`` (its checkpoint's
    own scaling included; a dynamic or longrope module updates them on each pass), the attention scaling it
    multiplies cos and sin by, and its RoPE base."""
    module = rotary.module
    inv_freq = getattr(module, f"{layer_type}_inv_freq", None)
    if inv_freq is None:
        inv_freq = module.inv_freq
    attention = getattr(module, f"{layer_type}_attention_scaling", None)
    attention = float(module.attention_scaling if attention is None else attention)
    if inv_freq.numel() > 1 and not bool((inv_freq[1:] < inv_freq[:-1]).all()):
        raise ValueError(
            f"{type(module).__name__}'s frequencies do not fall band by band: tempo_lab's bands (0 the "
            "highest frequency) cannot be matched to them"
        )
    return inv_freq, attention, float(rope_parameters(rotary.model.config, layer_type)["rope_theta"])


def scaled_table(lm: LoadedModel, scaling: RopeScaling, layer: int = 0) -> tuple[torch.Tensor, float]:
    """``scaling``'s frequencies ``(bands,)`` (band 0 the highest) and attention factor at ``layer`` of
    ``lm``, composed with the checkpoint's own scaling (see :func:`scaled`), beside which
    :meth:`~tempo_lab.interventions.rotary.Rotary.bands` gives the model's own."""
    rotary = Rotary(lm, fixed=False)
    (layer,) = _check_layers(rotary, [layer])
    inv_freq, attention, base = _own(rotary, rotary.layer_types[layer])
    frequencies, factor = scaling.table(inv_freq, base, trained_context(lm))
    return frequencies, attention * factor


def _check_layers(rotary: Rotary, layers: Sequence[int] | None) -> list[int]:
    """Every layer for ``None``, else ``layers`` checked."""
    return (
        list(range(rotary.n_layers))
        if layers is None
        else check_indices("layers", layers, rotary.n_layers, "layers")
    )


def _layer_hook(rotary: Rotary, layer: int, scaling: RopeScaling, trained: int, now: CurrentPass):
    """The pre-hook of one decoder layer: its ``position_embeddings`` replaced by the cos and sin of the
    pass's positions at ``scaling``'s frequencies, composed with the ones the model uses in this pass, times
    the model's attention scaling and the method's."""
    layer_type = rotary.layer_types[layer]

    def hook(_module: nn.Module, args: tuple, kwargs: dict):
        cos, sin = kwargs["position_embeddings"]
        inv_freq, own, base = _own(rotary, layer_type)
        frequencies, factor = scaling.table(inv_freq, base, trained)
        columns = frequencies.to(cos.device)[rotary.columns(layer).to(cos.device)]
        attention = own * factor
        angles = now.positions[..., None].float() * columns  # (batch, q, columns)
        embeddings = ((angles.cos() * attention).to(cos.dtype), (angles.sin() * attention).to(sin.dtype))
        return args, {**kwargs, "position_embeddings": embeddings}

    return hook


@contextmanager
def scaled(lm: LoadedModel, scaling: RopeScaling, layers: Sequence[int] | None = None) -> Iterator[Rotary]:
    """Every forward pass of ``lm`` inside the block runs with ``scaling``'s rotary table in ``layers``
    (``None``: every layer; see the module docstring); yields the model's
    :class:`~tempo_lab.interventions.rotary.Rotary`. Positions past the trained context are allowed inside
    (:func:`~tempo_lab.loaded.beyond_context`).

    **On a checkpoint with its own scaling** (a ``rope_parameters`` of type yarn, llama3, linear, longrope or
    dynamic, as Qwen2.5, Llama 3.1, Phi-3 and gpt-oss ship), the method *composes* with it: its formula is
    applied to the frequencies the checkpoint uses (its own scaling included), and its attention factor
    multiplies the checkpoint's. So ``RopeScaling.linear(1.0)`` leaves every checkpoint as it is, and
    ``RopeScaling.linear(2.0)`` halves whatever frequencies it had. On a plain RoPE this is the method
    itself, equal to transformers' ``rope_parameters`` for it.

    Refused before any forward, naming the value: a model without rotary embeddings computed from the
    positions, a layer outside the model, LongRoPE factors of the wrong length."""
    if not isinstance(scaling, RopeScaling):
        raise ValueError(f"scaling must be a RopeScaling (RopeScaling.yarn(...), ...), got {scaling!r}")
    rotary = Rotary(lm, fixed=False)
    chosen = _check_layers(rotary, layers)
    trained = trained_context(lm)
    for layer_type in dict.fromkeys(rotary.layer_types[layer] for layer in chosen):
        inv_freq, _, base = _own(rotary, layer_type)
        scaling.table(inv_freq, base, trained)  # refuses what does not fit the model before anything runs
    now = CurrentPass()
    handles = [lm.model.base_model.register_forward_pre_hook(now.record, with_kwargs=True)]
    try:
        for layer in chosen:
            hook = _layer_hook(rotary, layer, scaling, trained, now)
            handles.append(rotary.layers[layer].register_forward_pre_hook(hook, with_kwargs=True))
        with beyond_context(lm):  # past the trained context is what a scaling is for
            yield rotary
    finally:
        for h in handles:
            h.remove()
