"""Training and scoring the TPI study's byte-level models on a fixed, seeded budget.

Contents:
- ``TrainSettings``: steps, batch, sequence length, learning rate, evaluation interval (checked).
- ``bits_per_byte(model, data, seq_len)``: mean cross-entropy in bits over a split, in non-overlapping
  windows.
- ``train(config, corpus, settings, seed)``: AdamW with cosine decay; returns a ``TrainRun`` with the curves,
  the final train/val/test BPC (plus val at 4x the training length) and the mean gradient norm of every
  phase projection (the seed's "query
  gradient ~2x key" and "offset gradient ~100x omega" claims).
- ``save`` / ``load``: one checkpoint file per model (config + float32 weights).

Everything is deterministic under the seed: initialisation, dropout and batch sampling draw from it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tempo_lab.corpus import Corpus
from tempo_lab.tpi.model import CharLM, ModelConfig

PHASE_PROJECTIONS = ("omega", "omega_query", "offset", "adjust")


@dataclass(frozen=True)
class TrainSettings:
    """A fixed training budget."""

    steps: int = 1000
    batch: int = 16
    seq_len: int = 128
    lr: float = 3e-3
    eval_every: int = 100
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "seq_len", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")


@dataclass
class TrainRun:
    """One trained model's record: curves, final BPC per split, phase-gradient norms, seconds."""

    architecture: str
    seed: int
    parameters: int
    curve: list[dict] = field(default_factory=list)  # {"step", "train_bpc", "val_bpc"}
    bpc: dict[str, float] = field(default_factory=dict)  # split -> bits per byte
    grad_norms: dict[str, float] = field(default_factory=dict)  # phase projection -> mean gradient norm
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def batches(data: torch.Tensor, batch: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """Random training windows: (batch, seq_len + 1) slices of ``data`` (inputs plus the next byte)."""
    if len(data) <= seq_len + 1:
        raise ValueError(f"split of {len(data)} bytes is too short for sequences of {seq_len}")
    starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=generator)
    return torch.stack([data[s : s + seq_len + 1] for s in starts.tolist()])


@torch.no_grad()
def bits_per_byte(model: CharLM, data: torch.Tensor, seq_len: int, batch: int = 32) -> float:
    """Mean next-byte cross-entropy in bits over ``data`` (1-D), in non-overlapping windows of ``seq_len``."""
    was = model.training
    model.eval()
    usable = (len(data) - 1) // seq_len * seq_len
    inputs = data[:usable].view(-1, seq_len)
    targets = data[1 : usable + 1].view(-1, seq_len)
    total, count = 0.0, 0
    for i in range(0, len(inputs), batch):
        logits = model(inputs[i : i + batch])
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), targets[i : i + batch].flatten(), reduction="sum"
        )
        total += loss.item()
        count += targets[i : i + batch].numel()
    model.train(was)
    return total / count / math.log(2)


def final_bpc(model: CharLM, corpus: Corpus, seq_len: int) -> dict[str, float]:
    """BPC on ``train`` (its first ``len(val)`` bytes), ``val``, ``test``, and ``val_long``: val in windows of
    ``4 * seq_len``, four times the training length."""
    return {
        "train": bits_per_byte(model, corpus.train[: len(corpus.val)], seq_len),
        "val": bits_per_byte(model, corpus.val, seq_len),
        "test": bits_per_byte(model, corpus.test, seq_len),
        "val_long": bits_per_byte(model, corpus.val, 4 * seq_len),
    }


def phase_grad_norms(model: CharLM) -> dict[str, float]:
    """Mean over layers of each phase projection's gradient norm (after ``backward``)."""
    norms: dict[str, list[float]] = {}
    for block in model.blocks:
        for name in PHASE_PROJECTIONS:
            lin = getattr(block.mix, name, None)
            if lin is not None and lin.weight.grad is not None:
                norms.setdefault(name, []).append(lin.weight.grad.norm().item())
    return {k: sum(v) / len(v) for k, v in norms.items()}


def train(
    config: ModelConfig,
    corpus: Corpus,
    settings: TrainSettings = TrainSettings(),
    seed: int = 0,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[CharLM, TrainRun]:
    """Train a fresh ``CharLM(config)`` on ``corpus.train`` for ``settings.steps`` steps under ``seed``."""
    torch.manual_seed(seed)
    model = CharLM(config)
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / settings.steps))
    )
    run = TrainRun(config.architecture, seed, model.parameter_count())
    grad_sums: dict[str, float] = {}
    start = time.perf_counter()
    recent: list[float] = []
    bar = tqdm(range(1, settings.steps + 1), desc=f"{config.architecture} seed {seed}", disable=not progress)
    model.train()
    for step in bar:
        window = batches(corpus.train, settings.batch, settings.seq_len, generator)
        logits = model(window[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), window[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for name, value in phase_grad_norms(model).items():
            grad_sums[name] = grad_sums.get(name, 0.0) + value
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        recent.append(loss.item() / math.log(2))
        if on_step is not None:
            on_step(step, recent[-1])
        if step % settings.eval_every == 0 or step == settings.steps:
            val = bits_per_byte(model, corpus.val, settings.seq_len)
            run.curve.append({"step": step, "train_bpc": sum(recent) / len(recent), "val_bpc": val})
            recent = []
            bar.set_postfix(val_bpc=f"{val:.3f}")
    model.eval()
    run.bpc = final_bpc(model, corpus, settings.seq_len)
    run.grad_norms = {k: v / settings.steps for k, v in grad_sums.items()}
    run.seconds = time.perf_counter() - start
    return model, run


def save(model: CharLM, path: str | Path) -> Path:
    """Write the model's config and float32 weights to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": model.config.as_dict(), "state": model.state_dict()}, path)
    return path


def load(path: str | Path) -> CharLM:
    """A ``CharLM`` from a ``save``d checkpoint, in eval mode."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no TPI checkpoint at {path}; train one with tempo_lab.tpi.runs.train_language_models"
        )
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = CharLM(ModelConfig(**blob["config"]))
    model.load_state_dict(blob["state"])
    return model.eval()
