"""One-shot GPU benchmark: tempo_lab's exactness and speed on an accelerator, without network or weights.

Run on a machine with a GPU: ``python benchmarks/gpu.py --device cuda [--out benchmarks/gpu.json]`` (about 8
minutes on one H200 is the budget); on any CPU: ``python benchmarks/gpu.py --device cpu --smoke`` (tiny
shapes, a few prompts: what the unit tests run, so the script cannot rot). Every model is randomly
initialised with a real model's shapes; the tokenizer is the bundled SmolLM2's when its converted folder is
there (``--tokenizer`` names another folder), else tempo_lab's byte tokenizer, and the JSON says which.

Parts, each written to one JSON with the device named (``device``) and each part's seconds:

1. **matrix**: every family of :data:`tempo_lab.tiny.MATRIX` on the device, in float32: the decoding core's
   logits at contiguous, gapped and (rotary families) fractional positions against the model's own forward
   (its default cache and masks): the largest difference per family.
2. **peak**: the best ``torch.nn.functional.linear`` rate on the bundled model's and Llama-3-8B's shapes, per
   dtype (GFLOP/s; the fastest of several runs per shape).
3. **study**: the bundled SmolLM2-135M shape over the 302 bundled prompts (``--smoke``: 4, tiny shape), in
   float32 and bfloat16, eager and sdpa: seconds and prompts per second.
4. **llama3_8b**: a Llama-3-8B-shaped model in bfloat16 (``--smoke``: 2 layers, hidden 64): the prefill's
   FLOP rate against the bfloat16 peak; a layer x head patching sweep on a sample of sites against
   :func:`~tempo_lab.interventions.patch_naively` (largest difference, both times); a position gradient
   against one forward (time ratio); the study over 64 prompts (``--smoke``: 4); peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from tempo_lab import positions, timing  # noqa: E402
from tempo_lab.forward import DecodingCore
from tempo_lab.interventions import Site, logit_diff, patch, patch_naively, position_gradients  # noqa: E402
from tempo_lab.layout import Layout
from tempo_lab.loaded import LoadedModel  # noqa: E402
from tempo_lab.studies import run_study  # noqa: E402
from tempo_lab.tiny import MATRIX, byte_tokenizer, tiny_random  # noqa: E402

PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who mended his nets"
SMOLLM2 = {
    "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
    "num_key_value_heads": 3, "head_dim": 64, "max_position_embeddings": 8192, "tie_word_embeddings": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
}  # fmt: skip
LLAMA3_8B = {
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 8192, "vocab_size": 128256,
    "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
}  # fmt: skip
TINY_SHAPE = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 512,
}  # fmt: skip


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], object], device: torch.device, repeats: int = 3, best: bool = False) -> float:
    """The median (``best``: the fastest) of ``repeats`` synchronised calls of ``fn`` after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times) if best else statistics.median(times)


def random_model(shape: dict, tokenizer, dtype: torch.dtype, device: torch.device, attn: str, name: str):
    """A Llama of ``shape`` with seeded random weights, built on ``device`` in ``dtype``."""
    fields = {"vocab_size": len(tokenizer), **shape}
    config = AutoConfig.for_model("llama", eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.eos_token_id, **fields)  # fmt: skip
    config._attn_implementation = attn
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return LoadedModel(model=model.eval(), tokenizer=tokenizer, name=name)


def matrix(device: torch.device) -> dict:
    """Each family's largest |logit difference| between the decoding core and the model's own forward."""
    out = {}
    for family, overrides in MATRIX.items():
        lm = tiny_random(family, device=device, **overrides)
        ids = lm.encode(PROMPT[:24])
        n = ids.shape[1]
        layouts = {"contiguous": torch.arange(n, dtype=torch.float32),
                   "gapped": torch.cat([torch.arange(n - 4.0), torch.arange(n - 4.0, n) + 7])}  # fmt: skip
        if not lm.family.integer_positions:
            layouts["fractional"] = torch.arange(n, dtype=torch.float32) + 0.5 * (torch.arange(n) >= n - 3)
        core, worst = DecodingCore(lm), 0.0
        causal = torch.ones(n, n, dtype=torch.bool, device=device).tril()[None, None]
        for pos in layouts.values():
            pos = pos[None].to(device)
            with torch.no_grad():
                model_pos = positions.as_model_positions(pos, lm.family.position_reason())
                own = lm.model(ids, position_ids=model_pos).logits
            ours = core.forward(ids, Layout(pos, causal))
            worst = max(worst, float((ours.float() - own.float()).abs().max()))
        out[family] = worst
    return out


def peak(shapes: dict[str, dict], dtype: torch.dtype, device: torch.device, repeats: int) -> dict:
    """The best linear-layer rate (GFLOP/s) on 512 tokens through each shape's MLP, head and projection."""
    rates = {}
    for label, s in shapes.items():
        h, i, v = s["hidden_size"], s["intermediate_size"], s["vocab_size"]
        for part, (m, k, n) in {"mlp": (512, h, i), "head": (512, h, v), "proj": (512, h, h)}.items():
            x = torch.randn(m, k, dtype=dtype, device=device)
            w = torch.randn(n, k, dtype=dtype, device=device)
            t = seconds(lambda x=x, w=w: torch.nn.functional.linear(x, w), device, repeats, best=True)
            rates[f"{label} {part}"] = 2 * m * k * n / t / 1e9
    return {"shapes": rates, "peak": max(rates.values())}


def study(lm: LoadedModel, n: int, batch_size: int) -> dict:
    """The default study over the first ``n`` bundled prompts, into a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        done = run_study(lm, None, results=folder, n=n, batch_size=batch_size, progress=False,
                         problems="skip")  # fmt: skip
        spent = time.perf_counter() - start
        rows = {p: len(done.table(p)) for p in done.phenomena}
    return {"prompts": n, "seconds": spent, "prompts_per_second": n / spent, "rows": rows}


def peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"gpu_bytes": torch.cuda.max_memory_allocated(device)}
    return {"process_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def llama3_8b(tokenizer, device: torch.device, smoke: bool, rate_peak: float) -> dict:
    shape = {**LLAMA3_8B, **TINY_SHAPE} if smoke else LLAMA3_8B
    lm = random_model(shape, tokenizer, torch.bfloat16, device, "sdpa", "llama3-8b shape (random)")
    core = DecodingCore(lm)
    ids = lm.encode(PROMPT)
    n = ids.shape[1]
    batch = ids.repeat(8, 1)
    pos = torch.arange(n, dtype=torch.float32, device=device).repeat(8, 1)
    causal = torch.ones(n, n, dtype=torch.bool, device=device).tril()[None, None]

    def prefill():
        core.forward(batch, Layout(pos, causal))

    with FlopCounterMode(display=False) as counter:
        prefill()
    flops = counter.get_total_flops()
    t_prefill = seconds(prefill, device)
    out: dict = {"shape": shape, "prompt_tokens": n,
                 "prefill": {"rows": 8, "seconds": t_prefill, "gflop": flops / 1e9,
                             "fraction_of_peak": flops / t_prefill / 1e9 / rate_peak}}  # fmt: skip

    clean, corrupt = Layout.contiguous(n, "gap 0"), Layout.gapped(n, n - 1, 20.0, "gap 20")
    metric = logit_diff(lm, 1, 2)
    layers_ = sorted({0, shape["num_hidden_layers"] // 2, shape["num_hidden_layers"] - 1})
    heads = sorted({0, shape["num_attention_heads"] // 2, shape["num_attention_heads"] - 1})
    sites = [Site("head", layer, n - 1, head) for layer in layers_ for head in heads]
    start = time.perf_counter()
    ours = patch(lm, ids, clean, corrupt, metric, kinds=("head",), layers=layers_, slots=[n - 1], heads=heads)
    synchronize(device)
    t_patch = time.perf_counter() - start
    start = time.perf_counter()
    naive = patch_naively(lm, ids, clean, corrupt, metric, sites)
    synchronize(device)
    t_naive = time.perf_counter() - start
    got = ours.frame.set_index(["layer", "head"]).metric
    difference = max(abs(float(got.loc[(s.layer, s.head)]) - v) for s, v in zip(sites, naive, strict=True))
    out["patching"] = {"sites": len(sites), "patch_seconds": t_patch, "naive_seconds": t_naive,
                       "max_difference": difference}  # fmt: skip

    single = Layout.contiguous(n, "gap 0")
    one_causal = causal[..., :n, :n]
    t_forward = seconds(lambda: core.forward(ids, Layout(single.positions.to(device), one_causal)), device)
    t_gradient = seconds(lambda: position_gradients(lm, ids, single, metric), device)
    out["gradient"] = {"forward_seconds": t_forward, "gradient_seconds": t_gradient,
                       "ratio": t_gradient / t_forward}  # fmt: skip
    out["study"] = study(lm, 4 if smoke else 64, 8 if smoke else 16)
    out["memory"] = peak_memory(device)
    return out


def tokenizer_of(folder: str | None):
    """The tokenizer in ``folder``; without one, the bundled SmolLM2's when converted, else the byte one."""
    if folder is None:
        from tempo_lab.bundled import cache_dir

        found = sorted((cache_dir() / "gguf").glob("SmolLM2-135M-Instruct.*/tokenizer.json"))
        if not found:
            return byte_tokenizer(), "tempo_lab byte tokenizer (no converted bundled model here)"
        folder = str(found[0].parent)
    return AutoTokenizer.from_pretrained(folder), folder


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes and a few prompts (any CPU)")
    parser.add_argument("--tokenizer", help="a folder with the tokenizer to use (default: see the docstring)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("gpu.json"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    began = time.perf_counter()
    tokenizer, tokenizer_name = tokenizer_of(args.tokenizer)
    named = torch.cuda.get_device_name(device) if device.type == "cuda" else timing.machine()["cpu"]
    out: dict = {"device": f"{device} ({named})", "date": date.today().isoformat(), "smoke": args.smoke,
                 "machine": timing.machine(), "tokenizer": tokenizer_name,
                 "torch": torch.__version__}  # fmt: skip

    start = time.perf_counter()
    out["matrix"] = {"max_difference": matrix(device), "seconds": time.perf_counter() - start}

    bundled = {**SMOLLM2, **TINY_SHAPE} if args.smoke else SMOLLM2
    shapes = {"smollm2": {**bundled, "vocab_size": len(tokenizer)},
              "llama3-8b": {**LLAMA3_8B, **TINY_SHAPE} if args.smoke else LLAMA3_8B}  # fmt: skip
    repeats = 3 if args.smoke else 20
    out["peak"] = {name: peak(shapes, dtype, device, repeats)
                   for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))}  # fmt: skip

    out["study"] = {}
    for dtype_name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        for attn in ("eager", "sdpa"):
            lm = random_model(bundled, tokenizer, dtype, device, attn, "smollm2 shape (random)")
            out["study"][f"{dtype_name} {attn}"] = study(lm, 4 if args.smoke else 302, 32)

    out["llama3_8b"] = llama3_8b(tokenizer, device, args.smoke, out["peak"]["bfloat16"]["peak"])
    out["seconds"] = time.perf_counter() - began
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("device", "seconds")}), "->", args.out)
    return out


if __name__ == "__main__":
    main()
