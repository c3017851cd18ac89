"""Grouped-query attention on the CPU without copying the keys and values per query head.

transformers' ``sdpa`` attention repeats a GQA model's key/value heads to the query heads' count
(``repeat_kv``) whenever an attention mask is given, which is always the case for our left-padded
batches. SmolLM2-135M has 9 query heads per 3 key/value heads, so every layer of every decode step
copied its whole cache three times: a third of the sampling time on a 2-core CPU. PyTorch's own
SDPA takes ``enable_gqa=True`` and on the CPU does the same arithmetic without the copies (the
results are identical; ``tests/policy/test_attention.py``).

On CUDA transformers' choice stands: there, masked GQA would fall back to the slow math kernel.
"""

from __future__ import annotations

import torch

NAME = "rl4rec_sdpa"
_registered = False


def gqa_sdpa_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' attention-function signature; ``[B, H, q, d]`` in, ``([B, q, H, d], None)`` out."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    special = kwargs.get("position_bias") is not None or kwargs.get("cache") is not None or kwargs.get("output_attentions")
    if special or query.device.type != "cpu":
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling,
        is_causal=bool(query.shape[2] > 1 and attention_mask is None and causal),
        enable_gqa=query.shape[1] != key.shape[1],
    )
    return out.transpose(1, 2).contiguous(), None


def use_gqa_sdpa(model) -> None:
    """Switch ``model`` from transformers' ``sdpa`` to :func:`gqa_sdpa_forward` (other kinds are left alone)."""
    global _registered
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(NAME, gqa_sdpa_forward)
        AttentionMaskInterface.register(NAME, sdpa_mask)  # the same masks sdpa gets
        _registered = True
    model.set_attn_implementation(NAME)
