"""Loading causal language models: the bundled SmolLM2 and Gemma 3 270M, any GGUF file, tiny random models,
any HF id or local folder, or a model you already loaded.

Contents: :func:`load_model` (the entry point), :func:`check_load_arguments`, :func:`check_device`,
:func:`require_causal`, :func:`require_matching_tokenizer`, :func:`refuse_flash`. What it returns,
:class:`LoadedModel`, is :mod:`tempo_lab.loaded` (re-exported here). The registry models are
:mod:`tempo_lab.bundled`, GGUF conversion and its cache :mod:`tempo_lab.gguf`; tiny random models of any
family are :mod:`tempo_lab.tiny`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

from tempo_lab.bundled import MODELS, model_dir
from tempo_lab.families import check_attention
from tempo_lab.gguf import converted_dir
from tempo_lab.loaded import LoadedModel, default_device, evaluating
from tempo_lab.tiny import tiny_random

__all__ = ["LoadedModel", "evaluating", "load_model"]


def load_model(
    model: str | PreTrainedModel | None = None,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    attn_implementation: str = "eager",
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    device_map: str | dict | None = None,
) -> LoadedModel:
    """A causal LM with its tokenizer, ready for tempo_lab.

    Args:
        model: ``None`` for the bundled SmolLM2-135M-Instruct (offline); ``"gemma3-270m"`` for the bundled
            Gemma 3 270M (offline; any key of :data:`tempo_lab.bundled.MODELS`); a path to a ``.gguf`` file
            (converted once into the cache, :func:`tempo_lab.gguf.converted_dir`); ``"tiny-random"`` for a
            seeded random 2-layer Llama; a Hugging Face model id or local folder; or a ``PreTrainedModel`` you
            already loaded, which is used *as it is*: not reloaded, copied, cast or moved (its attention
            implementation, hooks and train/eval mode are left as found; tempo_lab runs it in eval mode and
            puts a training model back).
        tokenizer: the tokenizer of a model passed as an object (looked up in its ``name_or_path`` folder
            when omitted, never on the hub); unused otherwise.
        attn_implementation: ``"eager"`` (default: the only one that returns attention weights) or ``"sdpa"``.
            FlashAttention is refused: it takes no 4D mask.
        dtype: weights dtype, e.g. ``torch.bfloat16`` or ``"bfloat16"`` (masks are built in it; probabilities
            are computed in float32, or float64 for a float64 model); ``None``: float32, and float64 for the
            tiny random model (:func:`~tempo_lab.tiny.tiny_random`).
        device: where the model lives (ignored with ``device_map``); default
            :func:`~tempo_lab.loaded.default_device` (``$TEMPO_LAB_DEVICE``, else the CPU).
        device_map: an accelerate device map (``"auto"``, a dict) for a model spread over devices; inputs go
            to the device of its input embeddings.

    Every argument is checked before anything loads (:func:`check_load_arguments`). Raises
    ``FileNotFoundError`` for a local path that does not exist, and ``ValueError`` for a bad argument, a GGUF
    file that is truncated, corrupt or of an architecture transformers does not convert, or a model that is
    not a causal LM, has no tokenizer, or uses FlashAttention.
    """
    dtype = check_load_arguments(model, tokenizer, attn_implementation, dtype, device, device_map)
    if isinstance(model, PreTrainedModel):
        if (attn_implementation, dtype, device_map) != ("eager", None, None) or device not in (
            None, "cpu"
        ):  # fmt: skip
            raise ValueError(
                "attn_implementation, dtype, device and device_map apply when tempo_lab loads the model; a "
                "model passed as an object is used as it is (load it with those settings yourself)"
            )
        require_causal(model)
        refuse_flash(model.config._attn_implementation)
        name = getattr(model, "name_or_path", "") or type(model).__name__
        if tokenizer is None:  # only the model's own local folder is searched, never the hub
            folder = Path(name).expanduser()
            if not model.name_or_path or not folder.is_dir():
                raise ValueError(
                    f"{type(model).__name__} ({name!r}) came without a tokenizer and has no local folder to "
                    "find one in; pass it: load_model(model, tokenizer=...)"
                )
            tokenizer = _tokenizer_for(folder)
        require_matching_tokenizer(model, tokenizer, name)
        return LoadedModel(model=model, tokenizer=tokenizer, name=name)
    device = device if device is not None else default_device()
    if model == "tiny-random":
        dtype = dtype or torch.float64
        return tiny_random(attn_implementation=attn_implementation, device=device, dtype=dtype)
    dtype = dtype or torch.float32
    if model is None or model in MODELS:
        key = model or "smollm2-135m"
        source, name = model_dir(key), MODELS[key].name
    elif model.endswith(".gguf"):
        source, name = converted_dir(model), Path(model).name
    else:
        source, name = _source(model), model
    options = {"dtype": dtype, "attn_implementation": attn_implementation, "device_map": device_map}
    try:
        loaded = AutoModelForCausalLM.from_pretrained(source, **options)
    except (OSError, ValueError) as exc:
        raise ValueError(f"could not load {name!r} as a causal language model: {exc}") from exc
    require_causal(loaded)
    tokenizer = _tokenizer_for(source)
    require_matching_tokenizer(loaded, tokenizer, str(name))
    if device_map is None:
        loaded.to(device)
    loaded.eval()
    return LoadedModel(model=loaded, tokenizer=tokenizer, name=str(name))


DTYPES = {
    "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64
}
ATTENTION = ("eager", "sdpa")


def check_load_arguments(
    model: Any, tokenizer: Any, attn_implementation: Any, dtype: Any, device: Any, device_map: Any
) -> torch.dtype | None:
    """Refuse bad :func:`load_model` arguments before anything loads, naming the value; returns the dtype.

    ``model``: ``None``, a non-empty string or a ``PreTrainedModel``; ``tokenizer``: a tokenizer object, and
    only beside a model passed as an object; ``dtype``: float32, bfloat16, float16 or float64 (a name or a
    ``torch.dtype``); ``attn_implementation``: eager or sdpa (FlashAttention is refused with its reason);
    ``device`` / ``device_map``: devices this machine has. Returns ``None`` for a dtype left to the model."""
    if model is not None and not isinstance(model, (str, PreTrainedModel)):
        raise ValueError(
            f"model must be None (the bundled model), a model name or path, or a loaded PreTrainedModel; got "
            f"{type(model).__name__} {model!r}"
        )
    if isinstance(model, str) and not model.strip():
        raise ValueError("model is an empty string: give a model name or path, or None for the bundled model")
    if tokenizer is not None:
        if not isinstance(tokenizer, PreTrainedTokenizerBase):
            raise ValueError(f"tokenizer must be a transformers tokenizer object, got {tokenizer!r}")
        if not isinstance(model, PreTrainedModel):
            raise ValueError(
                "tokenizer= is only for a model passed as an object; a model loaded by name or path brings "
                f"its own tokenizer (got model={model!r})"
            )
    if isinstance(attn_implementation, str) and "flash" in attn_implementation:
        refuse_flash(attn_implementation)
    if attn_implementation not in ATTENTION:
        raise ValueError(f"attn_implementation must be one of {ATTENTION}, got {attn_implementation!r}")
    named = None if dtype is None else dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
    if dtype is not None and (named not in DTYPES or not isinstance(dtype, (str, torch.dtype))):
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (a name or torch dtype), got {dtype!r}")
    if device is not None:
        check_device(device, "device")
    if isinstance(device_map, str) and device_map not in ("auto", "balanced", "balanced_low_0", "sequential"):
        check_device(device_map, "device_map")
    elif isinstance(device_map, dict):
        for where in device_map.values():
            check_device(where, "device_map")
    elif device_map is not None and not isinstance(device_map, str):
        raise ValueError(f"device_map must be None, a string or a dict, got {device_map!r}")
    return None if named is None else DTYPES[named]


def check_device(where: Any, name: str) -> None:
    """Refuse a device this machine does not have (``cuda`` without a GPU, ``cuda:3`` with two, ...)."""
    if isinstance(where, int):
        where = f"cuda:{where}"
    try:
        device = torch.device(where)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{name}={where!r} is not a device ({exc})") from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0 or (device.index or 0) >= count:
            raise ValueError(f"{name}={where!r} asks for a GPU, but this machine has {count} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={where!r} asks for Apple's MPS, which this machine does not have")
    elif device.type not in ("cpu", "cuda", "mps", "meta") and where != "disk":
        raise ValueError(f"{name}={where!r} is a device tempo_lab does not run on")


def require_causal(model: PreTrainedModel) -> None:
    """Refuse a model that is not a decoder-only causal LM with a language-model head."""
    config, kind = model.config, type(model).__name__
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"{kind} is an encoder-decoder model; tempo_lab studies decoder-only causal LMs")
    if model.get_output_embeddings() is None:
        raise ValueError(
            f"{kind} has no language-model head (get_output_embeddings() is None); load it with "
            "AutoModelForCausalLM"
        )
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False):
        raise ValueError(
            f"{kind} attends in both directions (config.is_decoder is False): it is not a causal language "
            "model"
        )


def require_matching_tokenizer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
    """Refuse a tokenizer that cannot be the model's: more tokens than the model's vocabulary (ids past its
    embedding), or fewer than half of it (transformers builds an empty tokenizer for a folder without
    tokenizer files)."""
    vocab = model.get_input_embeddings().weight.shape[0]
    if not vocab // 2 <= len(tokenizer) <= vocab:
        raise ValueError(
            f"the tokenizer for {name!r} has {len(tokenizer)} tokens but the model's vocabulary has {vocab}: "
            "it is not this model's tokenizer (a folder without tokenizer files gives an empty one); pass "
            "the right one: load_model(model, tokenizer=...)"
        )


def refuse_flash(attn_implementation: str | None) -> None:
    """Refuse FlashAttention (see :meth:`tempo_lab.families.Family.check_attention`)."""
    check_attention(attn_implementation or "eager")


def _source(model: str) -> str:
    """A local folder as an absolute path, or a hub id as it is; a path that is not there is an error."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    looks_local = model.startswith(("/", ".", "~")) or model.count("/") > 1 or path.exists()
    if looks_local:
        raise FileNotFoundError(
            f"no model folder at {model!r} (resolved to {path.resolve()}); give an existing folder saved "
            "with save_pretrained, or a Hugging Face model id"
        )
    return model


def _tokenizer_for(source: str | Path) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(
            f"found no tokenizer for {str(source)!r}; pass one: load_model(model, tokenizer=...) ({exc})"
        ) from exc
