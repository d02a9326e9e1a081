"""The README's "Using tempo_lab with nnsight / TransformerLens" examples, executed as written on the bundled
SmolLM2-135M: the nnsight edit, the TransformerLens hook and ``patch`` give one number, and the bridge's
attention pattern under the moved layout is tempo_lab's own capture of the same batch."""

from __future__ import annotations

import linecache
import re
from pathlib import Path

import pytest

from tempo_lab.capture import capture_attention
from tests.helpers import assert_same, real_atol
from tests.interop.cases import forward, needs

needs("nnsight", "nnsight")
needs("transformer_lens", "transformer-lens")

pytestmark = pytest.mark.bundled

SECTION = "## Using tempo_lab with nnsight / TransformerLens"


def examples() -> list[str]:
    text = Path(__file__).parents[2].joinpath("README.md").read_text()
    assert SECTION in text, f"the README has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_examples_run_and_agree():
    blocks = examples()
    assert len(blocks) == 2
    space: dict = {}
    for i, block in enumerate(blocks):
        name = f"<README.md example {i}>"  # nnsight reads a trace's source: linecache holds it
        linecache.cache[name] = (len(block), None, block.splitlines(True), name)
        exec(compile(block, name, "exec"), space)
    by_patch = float(space["by_patch"].frame.metric.iloc[0])
    tol = real_atol(space["lm"], by_patch)  # the bundled model, in float32
    assert space["by_nnsight"] == pytest.approx(by_patch, abs=tol)
    assert space["by_transformer_lens"] == pytest.approx(by_patch, abs=tol)
    assert abs(float(space["by_patch"].frame.effect.iloc[0])) > 1e-3  # the head matters: not the moved run's
    lm, ids, clean, corrupt = (space[k] for k in ("lm", "ids", "clean", "corrupt"))
    with capture_attention(lm.model, layers=[9]) as record:
        forward(lm, ids, clean, corrupt)
    assert_same(space["pattern"], record.passes[0][0])
