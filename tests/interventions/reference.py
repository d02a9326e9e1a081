"""Independent forward passes the intervention tests compare against: no hooks, no tempo_lab internals.

- :func:`layer_by_layer`: the model's own modules called one decoder layer at a time, each with its own
  ``position_embeddings`` from the model's rotary module at that layer's positions, and hand-built masks.
- :func:`hand_rotated_llama`: a Llama-architecture forward whose attention is written out by hand (RoPE
  rotation, grouped keys, softmax), with a position per layer, head, slot and rotary band, and optionally a
  second layout merged per (query, key) pair (Self-Extend).
"""

from __future__ import annotations

import torch

from tempo_lab.loaded import LoadedModel, widened


def hand_masks(lm: LoadedModel, n: int, allowed: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Per layer the additive mask ``(1, 1, n, n)``: ``allowed`` (causal by default), and on a sliding layer
    also no key ``window`` or more slots before the query."""
    config = lm.model.config
    allowed = torch.ones(n, n).tril().bool() if allowed is None else allowed
    types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
    window = getattr(config, "sliding_window", None)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    out = []
    for layer_type in types:
        keep = allowed & (i - j < window) if layer_type == "sliding_attention" and window else allowed
        mask = torch.zeros(n, n, dtype=lm.dtype).masked_fill(~keep, torch.finfo(lm.dtype).min)
        out.append(mask[None, None])
    return out


def layer_by_layer(
    lm: LoadedModel, ids: torch.Tensor, per_layer: torch.Tensor, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """Logits ``(n, vocab)`` of ``ids`` ``(1, n)`` where layer ``l`` sees positions ``per_layer[l]``
    ``(n,)``."""
    model, base = lm.model, lm.model.base_model
    config = model.config
    n = ids.shape[1]
    masks = hand_masks(lm, n, allowed)
    types = getattr(config, "layer_types", None)
    with torch.no_grad():
        h = base.get_input_embeddings()(ids)  # Gemma's embedding module scales by sqrt(hidden) itself
        for layer_index, layer in enumerate(base.layers):
            p = widened(per_layer[layer_index][None])
            if types is not None and config.model_type == "gemma3_text":
                cos, sin = base.rotary_emb(h, p, types[layer_index])
            else:
                cos, sin = base.rotary_emb(h, p)
            out = layer(h, attention_mask=masks[layer_index], position_ids=p, position_embeddings=(cos, sin))
            h = out[0] if isinstance(out, tuple) else out
        norm = getattr(base, "norm", None) or base.final_layer_norm
        logits = model.get_output_embeddings()(norm(h))
        cap = getattr(config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
    return widened(logits[0])


def hand_rotated(
    lm: LoadedModel,
    ids: torch.Tensor,
    q_pos: torch.Tensor,
    k_pos: torch.Tensor,
    grouped: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits ``(n, vocab)`` of a Llama- or Gemma-2-architecture model with attention written out by hand
    (Gemma 2: the query scale ``query_pre_attn_scalar ** -0.5``, the scores' and the logits' tanh
    soft-capping, the sliding window of its sliding layers and the norms around attention and MLP). ``q_pos``
    / ``k_pos``: ``(layers, heads, n, bands)``, the position each head's query / key at each slot takes in
    each rotary band (band ``j`` rotates by ``inv_freq[j]``: columns ``j`` and ``j + head_dim / 2``).
    ``grouped``: Self-Extend's second layout ``(q_pos, k_pos, near)``, positions of the same shapes and
    ``near`` ``(n, n)`` or per layer ``(layers, n, n)`` bool: each (query, key) pair's score comes from the
    first layout where ``near``, else from the second, merged before the softmax."""
    model, base, config = lm.model, lm.model.base_model, lm.model.config
    n_heads, n_kv = config.num_attention_heads, config.num_key_value_heads
    hd = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    inv_freq = base.rotary_emb.inv_freq.double()  # (hd / 2,), the model's frequencies
    n = ids.shape[1]
    slot = torch.arange(n)
    causal = slot[None, :] <= slot[:, None]

    def rope(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:  # t (heads, n, hd), p (heads, n, hd / 2)
        angle = p.double() * inv_freq
        cos, sin = torch.cat([angle.cos(), angle.cos()], -1), torch.cat([angle.sin(), angle.sin()], -1)
        half = torch.cat([-t[..., hd // 2 :], t[..., : hd // 2]], -1)
        return (t.double() * cos + half.double() * sin).to(t.dtype)

    with torch.no_grad():
        h = base.embed_tokens(ids)[0]  # (n, hidden); Gemma's embedding module applies its sqrt(hidden) scale
        for layer_index, layer in enumerate(base.layers):
            att, x = layer.self_attn, layer.input_layernorm(h)
            q = att.q_proj(x).view(n, n_heads, hd).transpose(0, 1)
            k = att.k_proj(x).view(n, n_kv, hd).transpose(0, 1).repeat_interleave(n_heads // n_kv, 0)
            v = att.v_proj(x).view(n, n_kv, hd).transpose(0, 1).repeat_interleave(n_heads // n_kv, 0)

            def scores_at(
                qp: torch.Tensor, kp: torch.Tensor, q=q, k=k, i=layer_index, scale=att.scaling
            ) -> torch.Tensor:
                return (rope(q, qp[i]) @ rope(k, kp[i]).transpose(1, 2)) * scale  # (heads, n, n)

            scores = scores_at(q_pos, k_pos)
            if grouped is not None:
                near = grouped[2][layer_index] if grouped[2].dim() == 3 else grouped[2]
                scores = torch.where(near, scores, scores_at(grouped[0], grouped[1]))
            cap = getattr(att, "attn_logit_softcapping", None)
            if cap:
                scores = torch.tanh(scores / cap) * cap
            seen = causal
            if getattr(att, "sliding_window", None):
                seen = causal & (slot[:, None] - slot[None, :] < att.sliding_window)
            weights = torch.softmax(widened(scores.masked_fill(~seen, float("-inf"))), -1).to(q.dtype)
            out = att.o_proj((weights @ v).transpose(0, 1).reshape(n, -1))
            if hasattr(layer, "pre_feedforward_layernorm"):  # Gemma 2: norms after attention and the MLP too
                h = h + layer.post_attention_layernorm(out)
                h = h + layer.post_feedforward_layernorm(layer.mlp(layer.pre_feedforward_layernorm(h)))
            else:
                h = h + out
                h = h + layer.mlp(layer.post_attention_layernorm(h))
        logits = widened(model.lm_head(base.norm(h)))
        cap = getattr(config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits
