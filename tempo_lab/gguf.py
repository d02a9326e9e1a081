"""GGUF files as tempo_lab models: any file transformers' GGUF loader reads, converted once into the cache.

A GGUF file is de-quantised (every tensor and the tokenizer) into a plain float32 checkpoint folder the first
time it is loaded, and later loads read that folder. The folder is keyed by the file's SHA-256, so a changed
file is converted again and a renamed or copied one is not; hashes are remembered per path, size and
modification time, so a cached load does not read the file again. Conversion writes into a temporary sibling
folder and renames it into place: an interrupted conversion leaves nothing half-written. Processes that
load the same file at once (two notebooks, two test workers) take turns on a lock file beside the folder, so
the file is converted once and no process reads a folder another is replacing.

Contents: :func:`converted_dir` (what :func:`tempo_lab.load_model` uses for ``*.gguf`` paths and the bundled
models), :func:`check_gguf` (the file's architecture and integrity, before any conversion),
:func:`supported_architectures`, :func:`file_sha256`, :func:`convert` and :func:`cache_dir`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

try:
    import fcntl  # POSIX file locks: processes that convert the same file take turns
except ImportError:  # Windows has none: there, two processes loading a new file at once both convert it
    fcntl = None

_NOT_ARCHITECTURES = ("general", "tokenizer")
_BLOCK = 1 << 22  # bytes read per hashing step


def cache_dir() -> Path:
    """Where converted models are kept: ``$TEMPO_LAB_CACHE`` or ``~/.cache/tempo_lab``."""
    root = os.environ.get("TEMPO_LAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tempo_lab"
    )
    return Path(root)


def supported_architectures() -> list[str]:
    """The ``general.architecture`` values transformers' GGUF loader converts (sorted)."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in _NOT_ARCHITECTURES)


def check_gguf(path: Path) -> str:
    """The file's ``general.architecture``, after checking that it is a whole GGUF file of a supported one.

    Raises ``ValueError`` naming the file for a file that is not GGUF, is truncated or corrupt (its header or
    tensor table cannot be read, or its tensors run past its end), or holds an architecture the loader does
    not convert (the message lists the supported ones)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
        field = reader.fields["general.architecture"]
        architecture = bytes(field.parts[field.data[0]]).decode()
    except Exception as exc:  # the reader raises ValueError, KeyError, IndexError... for damaged files
        raise ValueError(
            f"{path} is not a readable GGUF file (truncated or corrupt: {type(exc).__name__}: {exc})"
        ) from None
    supported = supported_architectures()
    if architecture not in supported:
        raise ValueError(
            f"{path} holds a {architecture!r} model, which transformers' GGUF loader does not convert; "
            f"supported architectures: {', '.join(supported)}"
        )
    return architecture


def file_sha256(path: Path, progress: bool = True) -> str:
    """The SHA-256 of ``path``, remembered in the cache per resolved path, size and modification time."""
    path = path.resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_file = cache_dir() / "gguf" / "hashes.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if key in memo:
        return memo[key]
    digest = hashlib.sha256()
    with (
        path.open("rb") as f,
        tqdm(
            total=stat.st_size, unit="B", unit_scale=True, desc=f"hashing {path.name}", disable=not progress
        ) as bar,
    ):
        while block := f.read(_BLOCK):
            digest.update(block)
            bar.update(len(block))
    memo[key] = digest.hexdigest()
    _write_atomically(memo_file, json.dumps(memo, indent=1))
    return memo[key]


def converted_dir(path: str | Path, name: str | None = None, progress: bool = True) -> Path:
    """The converted checkpoint folder of the GGUF file at ``path``, converting it on first use.

    The folder is ``$TEMPO_LAB_CACHE/gguf/<name>.<first 16 hex digits of the SHA-256>``, ``name`` defaulting
    to the file's stem. Raises ``FileNotFoundError`` for a missing file and ``ValueError``
    (:func:`check_gguf`) for an unsupported, truncated or corrupt one; nothing is written then."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {str(path)!r}")
    sha = file_sha256(path, progress)
    target = cache_dir() / "gguf" / f"{name or path.stem}.{sha[:16]}"
    if (target / "config.json").is_file():
        return target
    check_gguf(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        if fcntl is not None:  # another process converting the same file: wait for it, then reuse its folder
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            convert(path, target, progress)
    return target


def convert(gguf: Path, target: Path, progress: bool = True) -> None:
    """De-quantise ``gguf`` and write a plain float32 checkpoint plus tokenizer to ``target``, atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = ("tokenizer", "de-quantise", "write")
    with tqdm(total=len(steps), desc=f"converting {gguf.name}", disable=not progress) as bar:
        bar.set_postfix_str(steps[0])
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        bar.update()
        bar.set_postfix_str(steps[1])
        quantised = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        # A GGUF-loaded model refuses save_pretrained; rebuild it from a config without quantisation info.
        config_dict = quantised.config.to_dict()
        config_dict.pop("quantization_config", None)
        config = type(quantised.config).from_dict(config_dict)
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quantised.state_dict(), strict=True)
        bar.update()
        bar.set_postfix_str(steps[2])
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        try:
            plain.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "tempo_lab_source.json").write_text(
                json.dumps({"gguf": str(gguf.resolve()), "sha256_prefix": target.suffix[1:]}, indent=1)
            )
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        bar.update()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
