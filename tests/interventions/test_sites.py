"""The site table and named-module sites (:mod:`tempo_lab.interventions.sites`): every family of the matrix
has an entry whose parts are the model's own modules (its attention modules as transformers lists them for
its attention outputs), a family or a part missing is named; a patch of any named submodule's output or
input equals the same patch written by hand as a forward hook on the bare model, and a named decoder layer
or MLP equals the built-in ``resid`` / ``mlp`` site; :func:`record` removes its hooks, also after an error."""

from __future__ import annotations

import pytest
import torch

from tempo_lab.capture import attention_modules
from tempo_lab.families import ARCHITECTURES
from tempo_lab.interventions import SiteModules, log_prob, patch, record
from tempo_lab.interventions.sites import layer_of
from tempo_lab.layout import Layout
from tempo_lab.loaded import widened
from tempo_lab.tiny import MATRIX, tiny_random

N = 8


@pytest.mark.parametrize("family", sorted(MATRIX))
def test_every_family_of_the_matrix_has_a_site_table_entry_that_fits_it(family):
    lm = tiny_random(family, **MATRIX[family])
    assert lm.model.config.model_type in ARCHITECTURES
    where = SiteModules.of(lm)
    n_layers = lm.model.config.num_hidden_layers
    assert len(where.layers) == len(where.mlps) == len(where.norms) == n_layers
    assert where.attentions == attention_modules(lm.model)  # transformers' own list, found another way
    for layer, attention, projection, mlp, norms in zip(
        where.layers, where.attentions, where.projections, where.mlps, where.norms, strict=True
    ):
        inside = list(layer.modules())
        assert attention in inside and mlp in inside and projection in list(attention.modules())
        # a norm: its own scale (or, OLMo's, none: a LayerNorm without learnable weight)
        assert norms and all(
            any(p.dim() == 1 for p in n.parameters()) or "Norm" in type(n).__name__ for n in norms.values()
        )
    assert where.n_heads * where.head_dim == (
        where.projections[0].in_features
        if hasattr(where.projections[0], "in_features")
        else where.projections[0].weight.shape[0]
    )


def test_a_family_without_an_entry_or_a_layer_without_a_part_is_named():
    lm = tiny_random("llama")
    lm.model.config.model_type = "mystery"
    with pytest.raises(ValueError, match="does not know the family 'mystery'"):
        SiteModules.of(lm)
    lm = tiny_random("llama")
    del lm.model.model.layers[1].mlp
    with pytest.raises(ValueError, match="layer 1 of llama has no 'mlp'"):
        SiteModules.of(lm)


def _pair(lm) -> tuple[torch.Tensor, Layout, Layout]:
    ids = torch.randint(0, 200, (1, N), generator=torch.Generator().manual_seed(5))
    return ids, Layout.contiguous(N), Layout.gapped(N, before=N - 3, gap=30.0)


def _by_hand(lm, ids, clean, corrupt, name: str, slot: int, metric) -> float:
    """Denoising one slot of a named module's output (or input) with plain forward hooks on the bare model:
    keep it in the clean layout's forward, write it into the corrupt one's."""
    path, reads_input = name.removesuffix(":input"), name.endswith(":input")
    module = lm.model.get_submodule(path)
    kept = {}

    def keep(_m, args, out=None):
        kept["x"] = (args[0] if reads_input else (out[0] if isinstance(out, tuple) else out)).clone()

    def write_in(_m, args):
        x = args[0].clone()
        x[:, slot] = kept["x"][:, slot]
        return (x, *args[1:])

    def write_out(_m, _a, out):
        x = (out[0] if isinstance(out, tuple) else out).clone()
        x[:, slot] = kept["x"][:, slot]
        return (x, *out[1:]) if isinstance(out, tuple) else x

    handle = module.register_forward_pre_hook(keep) if reads_input else module.register_forward_hook(keep)
    with torch.no_grad():
        lm.model(**clean.model_inputs(lm, ids))
    handle.remove()
    handle = (module.register_forward_pre_hook if reads_input else module.register_forward_hook)(
        write_in if reads_input else write_out
    )
    with torch.no_grad():
        logits = lm.model(**corrupt.model_inputs(lm, ids)).logits
    handle.remove()
    return float(metric(widened(logits[:, -1])))


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_a_named_module_patch_equals_a_forward_hook_written_by_hand(family):
    lm = tiny_random(family, initializer_range=0.2, **MATRIX[family])
    ids, clean, corrupt = _pair(lm)
    metric = log_prob(lm, 7)
    names = ["model.layers.1.mlp.down_proj", "model.layers.0.self_attn.o_proj:input", "model.norm"]
    result = patch(lm, ids, clean, corrupt, metric, kinds=names)
    assert sorted(set(result.frame.kind)) == sorted(names)
    assert result.frame.groupby("kind").layer.first().to_dict() == {names[0]: 1, names[1]: 0, names[2]: -1}
    for site in result.frame.itertuples():
        want = _by_hand(lm, ids, clean, corrupt, site.kind, site.slot, metric)
        assert site.metric == pytest.approx(want, abs=1e-6), site
    moved = result.frame[result.frame.slot >= N - 3]
    assert moved.effect.abs().max() > 1e-3  # the moved slots carry the difference
    assert (result.frame[result.frame.slot < N - 3].effect == 0).all()  # before the move: nothing differs


def test_a_named_decoder_layer_or_mlp_is_the_built_in_resid_or_mlp_site():
    lm = tiny_random("qwen2", initializer_range=0.2)
    ids, clean, corrupt = _pair(lm)
    metric = log_prob(lm, 7)
    built_in = patch(lm, ids, clean, corrupt, metric, kinds=("resid", "mlp"))
    for kind, named in (("resid", "model.layers.{}"), ("mlp", "model.layers.{}.mlp")):
        for layer in range(lm.model.config.num_hidden_layers):
            mine = patch(lm, ids, clean, corrupt, metric, kinds=[named.format(layer)]).frame
            theirs = built_in.frame[(built_in.frame.kind == kind) & (built_in.frame.layer == layer)]
            assert mine.metric.tolist() == pytest.approx(theirs.metric.tolist(), abs=1e-6)  # other batches
            assert layer_of(named.format(layer)) == layer


def test_record_is_a_context_manager_that_removes_its_hooks_also_after_an_error(tiny):
    where = SiteModules.of(tiny)
    ids = tiny.encode("Once upon a time")

    def hooks() -> int:
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in tiny.model.modules())

    with record(where, ["resid", "head", "model.layers.0.mlp.up_proj:input"]) as store:
        assert hooks() > 0
        tiny.model(ids)
    assert hooks() == 0
    assert store["head"][1].shape == (1, ids.shape[1], where.n_heads, where.head_dim)
    assert isinstance(store["model.layers.0.mlp.up_proj:input"][0], torch.Tensor)
    with pytest.raises(RuntimeError, match="boom"), record(where, ["mlp"]):
        raise RuntimeError("boom")
    assert hooks() == 0


def test_a_kind_that_is_neither_built_in_nor_a_submodule_is_named(tiny):
    ids, clean, corrupt = _pair(tiny)
    with pytest.raises(ValueError, match=r"kinds\[1\] = 'model.layers.7.mlp' is neither one of resid"):
        patch(tiny, ids, clean, corrupt, log_prob(tiny, 7), kinds=["mlp", "model.layers.7.mlp"])
    with pytest.raises(ValueError, match=r"e.g. 'model.layers.0.mlp'"):
        patch(tiny, ids, clean, corrupt, log_prob(tiny, 7), kinds=["attn"])
