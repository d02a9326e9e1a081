"""The series' small parameters: what papermill runs every notebook with, and what the browser suite's live
cells rebuild each notebook's first view from.

One table, so that both suites exercise the same parameters: few prompts, short runs, other prompts, tokens,
gaps and thresholds than the defaults. ``PARAMS[nn]`` is injected into notebook ``nn`` beside ``model_name``;
``EXPECTED[nn]`` holds key numbers the injected values must show up as (:mod:`test_papermill`).
"""

from __future__ import annotations

from typing import Any

PROMPT = "Hi there"

PARAMS: dict[str, dict[str, Any]] = {
    "01": {"prompt": PROMPT, "token": "!", "gaps": [0, 3, 7]},
    "02": {"prompt": "abcd", "start": -1.0, "stop": 1.0, "step": 0.5, "top_k": 3},
    "03": {
        "prompt": PROMPT,
        "token": "!",
        "gaps": [0, 4, 9],
        "max_gap": 12,
        "gap_step": 3,
        "timing_repeats": 1,
    },
    "04": {
        "prompt": "ab",
        "threshold": 0.05,
        "thresholds": [0.02, 0.05],
        "max_steps": 5,
        "timing_repeats": 1,
    },
    "05": {"prompt": PROMPT, "gaps": [0, 6], "threshold": 0.02, "path_length": 4, "timing_repeats": 1},
    # 06, 08 and 09 also get a temporary results folder, and 06 a second model (test_papermill's ``runs``)
    "06": {"prompt": "Once upon a time", "n": 18, "batch_size": 6, "conditions": {"retro_gaps": [0, 4, 9]}},
    "07": {
        "prompt": "ab",
        "threshold": 0.05,
        "max_steps": 6,
        "prune_thresholds": [0.2, 0.4],
        "prune_threshold": 0.4,
    },
    "08": {
        "prompt": "Th",
        "retrain": True,
        "steps": 3,
        "seeds": [0, 1],
        "dim": 8,
        "layers": 1,
        "recall_steps": 2,
        "probe_prompts": 3,
        "shifts": [0, 1, 4],
    },
    "09": {
        "prompt": PROMPT,
        "token": "!",
        "gaps": [7, 20],
        "half_prompt": "abcd",
        "set_prompt": "ab",
        "threshold": 0.05,
        "set_steps": 2,
        "head_prompt": "Once upon a time there was",
        "bands": 4,
        "search_token": "e",
        "search_max_gap": 30,
        "half_search_token": "e",
        "n": 6,
        "batch_size": 3,
    },
    "10": {
        "prompt": "Th",
        "retrain": True,
        "architectures": ["rope", "tpi"],
        "seeds": [0, 1],
        "steps": 3,
        "dim": 16,
        "layers": 2,
        "seq_len": 32,
        "factors": [1, 2, 4],
        "window": 8,
        "layer_factor": 2,
        "max_bytes": 1200,
        "verdict_factor": 4,
        "band_factor": 4,
        "model_band_factor": 2,
        "live_source": 1024,
        "live_samples": 1,
    },
    "11": {
        "prompt": "Hi",
        "models": ["tiny-random"],
        "rerun": True,
        "n": 4,
        "per_part": 2,
        "ablate": 2,
        "ratio": 3.0,
        "partial": [1, 2],
        "sinks": 2,
        "window": 10,
        "length": 60,
        "segment": 30,
        "reference_every": 16,
        "bucket": 16,
        "live_tokens": 24,
    },
}

EXPECTED: dict[str, dict[str, Any]] = {
    "01": {"prompt": PROMPT, "token": "!", "gaps": [0, 3, 7]},
    "02": {"prompt": "abcd", "positions": [2.0, 4.0, 5]},
    "03": {"prompt": PROMPT, "token": "!", "gaps": [0, 4, 9]},
    "04": {"prompt": "ab", "threshold": 0.05},
    "05": {"prompt": PROMPT, "gaps": [0, 6]},
    "06": {"prompt": "Once upon a time", "prompts": 18},
    "07": {"prompt": "ab", "threshold": 0.05},
    "08": {"prompt": "Th"},
    "09": {"prompt": PROMPT, "token": "!", "gaps": [7, 20], "prompts": 6},
    "10": {"prompt": "Th", "trained": 32, "factors": [1.0, 2.0, 4.0]},
    "11": {"prompt": "Hi", "models": ["tiny-random"], "prompts": 4, "size": 12, "steps": 59},
}
