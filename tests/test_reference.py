"""tempo_lab.reference: the naive baselines compute what the generators compute."""

from __future__ import annotations

from tempo_lab import reference
from tempo_lab.generators import CompressedThoughtGenerator, RetroactivePositionGenerator
from tests.helpers import assert_same

PROMPT = "The cat sat"


def test_naive_baselines_equal_the_generators(tiny):
    res = RetroactivePositionGenerator(tiny).explore(PROMPT, gaps=[0, 3, 9], token="!")
    naive = reference.retroactive_naive(tiny, PROMPT, res.token_id, res.gaps)
    assert_same(naive, res.logits)

    comp = CompressedThoughtGenerator(tiny).generate(
        PROMPT, gap=5, threshold=0.01, max_candidates=3, path_length=4, progress=False
    )
    seq = reference.compressed_naive(tiny, PROMPT, [c.token_id for c in comp.candidates], 5, 4)
    assert seq == [p.token_ids for p in comp.paths]
