"""The RoPE char-LM as a transformers model: its weights in a GPT-NeoX, so every tempo_lab tool runs on it.

Notebook 08's RoPE baseline (:class:`~tempo_lab.tpi.model.CharLM` with ``architecture="rope"``) is a pre-norm
transformer with LayerNorms, a 4x GELU MLP, full rotary attention (``rotate_half`` layout, base 10000) and
tied byte embeddings. GPT-NeoX is the same computation: ``use_parallel_residual=False`` (attention, then the
MLP on its residual), ``partial_rotary_factor=1``, no attention biases, the MLP's biases, the same LayerNorm
epsilon and scale ``1/sqrt(head_dim)``. :func:`as_transformers` copies the weights across (the fused
query/key/value rows reordered from CharLM's ``(q|k|v) x heads`` to NeoX's ``heads x (q|k|v)``), so rotary
scalings (:mod:`tempo_lab.extension.scaling`), Self-Extend, captures and interventions, which act on
transformers models through their public hooks and attention interface, apply to the char-LM unchanged.

Token ids are UTF-8 byte values (:func:`char_tokenizer`, id ``b`` = byte ``b``, as the char-LM reads them)
plus ``<eos>`` (id 256, never seen in training: its embedding row is zero, so its logit is 0). Compare and
score over the first 256 logits (:data:`~tempo_lab.tpi.model.VOCAB`).

Contents: :func:`as_transformers`, :func:`char_tokenizer`, :data:`EOS`.
"""

from __future__ import annotations

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

from tempo_lab.loaded import LoadedModel
from tempo_lab.tpi.layers import RoPEAttention
from tempo_lab.tpi.model import VOCAB, CharLM

EOS = VOCAB  # the one id past the bytes


def char_tokenizer() -> PreTrainedTokenizerFast:
    """A tokenizer whose ids are the text's UTF-8 bytes (``"é"`` -> ``[195, 169]``), plus ``<eos>`` = 256: no
    files, no training (a byte-fallback BPE with no merges)."""
    from tokenizers import Tokenizer, decoders, models

    vocab = {f"<0x{b:02X}>": b for b in range(VOCAB)} | {"<eos>": EOS}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=True))
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def as_transformers(model: CharLM, context: int = 128, name: str | None = None) -> LoadedModel:
    """``model`` (a RoPE :class:`CharLM`) as a GPT-NeoX :class:`LoadedModel` in eval mode, float32, on the
    CPU, computing the same logits (over the first 256 ids) for the same byte ids.

    ``context`` becomes ``max_position_embeddings``: the length the char-LM was trained on (notebook 08's
    runs: 128 bytes), which is what :func:`tempo_lab.extension.scaling.trained_context` reads. Raises
    ``ValueError`` for a position-free (TPI) model, which has no rotary embedding to convert.
    """
    cfg = model.config
    if cfg.is_tpi:
        raise ValueError(
            f"{cfg.architecture!r} has no positions to convert: only the RoPE baseline ('rope') is a "
            "transformer with rotary embeddings"
        )
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context!r}")
    heads = cfg.heads
    config = GPTNeoXConfig(
        vocab_size=VOCAB + 1,
        hidden_size=cfg.dim,
        num_hidden_layers=cfg.layers,
        num_attention_heads=heads,
        intermediate_size=4 * cfg.dim,
        hidden_act="gelu",
        max_position_embeddings=context,
        layer_norm_eps=model.norm.eps,
        use_parallel_residual=False,
        attention_bias=False,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0},
        bos_token_id=EOS,
        eos_token_id=EOS,
        pad_token_id=EOS,
    )
    config._attn_implementation = "eager"
    with torch.device("cpu"):
        neox = GPTNeoXForCausalLM(config).eval()
    head = cfg.dim // heads
    with torch.no_grad():
        body = neox.gpt_neox
        body.embed_in.weight.zero_()
        body.embed_in.weight[:VOCAB] = model.embed.weight
        for block, layer in zip(model.blocks, body.layers, strict=True):
            mix = block.mix
            assert isinstance(mix, RoPEAttention)
            # CharLM's qkv rows: (q|k|v, head, head_dim); NeoX's: (head, q|k|v, head_dim)
            qkv = mix.qkv.weight.view(3, heads, head, cfg.dim).transpose(0, 1).reshape(3 * cfg.dim, cfg.dim)
            layer.attention.query_key_value.weight.copy_(qkv)
            layer.attention.dense.weight.copy_(mix.out.weight)
            for ours, theirs in (
                (block.norm1, layer.input_layernorm),
                (block.norm2, layer.post_attention_layernorm),
            ):
                theirs.load_state_dict(ours.state_dict())
            up, _, down, _ = block.mlp
            layer.mlp.dense_h_to_4h.load_state_dict(up.state_dict())
            layer.mlp.dense_4h_to_h.load_state_dict(down.state_dict())
        body.final_layer_norm.load_state_dict(model.norm.state_dict())
    neox.tie_weights()
    return LoadedModel(model=neox, tokenizer=char_tokenizer(), name=name or f"char-lm ({cfg.architecture})")
