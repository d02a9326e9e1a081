"""Patching across layouts against the one-site-at-a-time loop, and the two ends it must reproduce: the clean
run (the final layer's residual at the read-out) and the corrupt run (nothing that differs patched)."""

from __future__ import annotations

import pytest
import torch

from tempo_lab import masks
from tempo_lab import positions as pos
from tempo_lab.forward import DecodingCore
from tempo_lab.interventions import Metric, Site, logit_diff, patch, patch_naively, prompt_mass, tv_to
from tempo_lab.interventions.display import heatmap
from tempo_lab.layout import Layout
from tests.helpers import assert_same, check_figure
from tests.test_families import PROMPT, build

FAMILIES = ("llama", "qwen2", "gemma2", "gpt_neox", "gpt2")


def _sites(frame) -> list[Site]:
    """The sites of a patching frame's rows."""
    return [
        Site(r.kind, int(r.layer), int(r.slot), None if r.kind != "head" else int(r.head))
        for r in frame.itertuples()
    ]


def _move(n: int, gap: float) -> tuple[Layout, Layout]:
    """A retroactive move: the last three slots placed ``gap`` later."""
    return Layout.contiguous(n, "gap 0"), Layout.gapped(n, n - 3, gap, f"gap {gap:g}")


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_every_site_equals_the_one_site_at_a_time_loop(name, direction):
    lm = build(name, initializer_range=0.2)
    ids = lm.encode(PROMPT)
    n = ids.shape[1]
    clean, corrupt = _move(n, 6.0 if name == "gpt2" else 6.5)
    metric = logit_diff(lm, "a", "e")
    result = patch(
        lm, ids, clean, corrupt, metric, kinds=("resid", "head", "mlp"), direction=direction, batch_size=11
    )
    naive = patch_naively(lm, ids, clean, corrupt, metric, _sites(result.frame), direction=direction)
    scale = max(1.0, abs(result.base), abs(result.source))
    assert abs(result.base - result.source) > 1e-2 * scale  # the move matters
    assert_same(torch.tensor(result.frame.metric.tolist()), torch.tensor(naive))
    assert result.first_difference == n - 3
    ran = result.frame[result.frame.ran]
    # resid + mlp per layer and 4 heads, at the 3 moved slots; GPT-NeoX's parallel MLP of layer 0 reads the
    # layer's input (not the attention output), the same in both runs: not run
    assert (ran.slot >= n - 3).all() and len(ran) == 3 * (2 * 2 + 2 * 4) - (3 if name == "gpt_neox" else 0)
    assert result.runs == -(-len(ran) // 11)


def test_a_mask_pair_patches_the_prompt_mass_the_same_way_as_the_loop(tiny):
    """Isolated against visible TEMPO sets: the same positions, two masks; a metric of captured attention."""
    ids = tiny.encode(PROMPT)
    n = ids.shape[1]
    labels = masks.set_labels([3, 2], n - 5)
    positions = torch.cat([pos.contiguous(n - 5), pos.shared(n - 5, [3, 2])], 1)
    visible = Layout(positions, masks.parallel_mask(labels, "visible"), "visible")
    isolated = Layout(positions, masks.parallel_mask(labels, "isolated"), "isolated")
    metric = prompt_mass(n - 5)
    result = patch(tiny, ids, visible, isolated, metric, kinds=("resid", "head"))
    assert result.first_difference == n - 4  # the second member of the first set is the first to see less
    naive = patch_naively(tiny, ids, visible, isolated, metric, _sites(result.frame))
    assert_same(torch.tensor(result.frame.metric.tolist()), torch.tensor(naive))


def test_the_final_residual_at_the_read_out_gives_the_clean_run_and_nothing_patched_the_corrupt_one(tiny):
    ids = tiny.encode(PROMPT)
    n = ids.shape[1]
    clean, corrupt = _move(n, 9.5)
    core = DecodingCore(tiny)
    clean_probs = torch.softmax(core.full(ids, clean)[0, -1], -1)
    corrupt_tv = float(
        0.5 * (torch.softmax(core.full(ids, corrupt)[0, -1], -1) - clean_probs).abs().sum()
    )
    metric = tv_to(clean_probs)
    last = tiny.model.config.num_hidden_layers - 1
    result = patch(tiny, ids, clean, corrupt, metric, layers=[last], slots=[n - 1])
    assert result.frame.metric.iloc[0] == pytest.approx(0.0, abs=1e-6)  # the clean distribution, restored
    assert result.frame.fraction.iloc[0] == pytest.approx(1.0, abs=1e-5)
    untouched = patch(tiny, ids, clean, corrupt, metric, kinds=("resid", "head", "mlp"), slots=range(n - 3))
    assert not untouched.frame.ran.any()  # every slot before the move is the same in both runs
    assert (untouched.frame.metric == untouched.base).all() and (untouched.frame.effect == 0).all()
    assert untouched.base == pytest.approx(corrupt_tv, abs=1e-6)  # the unpatched run is the corrupt one


def test_the_heatmaps_label_layers_slots_and_heads(tiny):
    ids = tiny.encode(PROMPT)
    clean, corrupt = _move(ids.shape[1], 4.0)
    result = patch(tiny, ids, clean, corrupt, logit_diff(tiny, "a", "e"), kinds=("resid", "head"))
    for kind in ("resid", "head"):
        fig = heatmap(result, kind)
        check_figure(fig)
    labels = [t.get_text() for t in heatmap(result, "resid").axes[0].get_xticklabels()]
    assert labels[0] == "'O' 0" and labels[-1] == "'e' 15"  # token and slot
    assert result.table("head").shape == (2, 4)


def test_bad_layout_pairs_and_metrics_are_named(tiny):
    ids = tiny.encode(PROMPT)
    n = ids.shape[1]
    clean, corrupt = _move(n, 4.0)
    metric = logit_diff(tiny, "a", "e")
    with pytest.raises(ValueError, match=r"differ at slot 0 \('O' against 'W'\)"):
        patch(tiny, (PROMPT, "W" + PROMPT[1:]), clean, corrupt, metric)
    with pytest.raises(ValueError, match="differ in length"):
        patch(tiny, (PROMPT, PROMPT + "!"), clean, corrupt, metric)
    with pytest.raises(ValueError, match=f"has {n - 1} slots for {n} tokens"):
        patch(tiny, ids, Layout.contiguous(n - 1, "short"), corrupt, metric)
    flat = Metric("whole distribution", lambda logits, _: torch.softmax(logits, -1))
    with pytest.raises(ValueError, match=r"'whole distribution' returned shape \(1, 257\) for 1 run"):
        patch(tiny, ids, clean, corrupt, flat)
    with pytest.raises(ValueError, match=r"layers\[0\]"):
        patch(tiny, ids, clean, corrupt, metric, layers=[2])
    with pytest.raises(ValueError, match="kinds"):
        patch(tiny, ids, clean, corrupt, metric, kinds=("attn",))
