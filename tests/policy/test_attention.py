"""The CPU grouped-query attention gives transformers' sdpa results: logits, gradients and greedy text,
on a tiny random Llama with 4 query heads per 2 key/value heads and left-padded batches."""

from __future__ import annotations

import pytest
import torch

from rl4rec_core.policy.attention import NAME, use_gqa_sdpa

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def gqa_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, initializer_range=0.2)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def _batch():
    ids = torch.randint(3, 50, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding of different widths
    mask[1, :2] = 0
    return ids, mask


def _forward(model, ids, mask):
    model.zero_grad(set_to_none=True)
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    (logits[mask.bool()].logsumexp(-1)).sum().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_gqa_attention_matches_sdpa_in_forward_backward_and_generation(gqa_model):
    model = gqa_model
    model.set_attn_implementation("sdpa")
    ids, mask = _batch()
    ref_logits, ref_grads = _forward(model, ids, mask)
    with torch.no_grad():
        ref_text = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=6, pad_token_id=0)
    use_gqa_sdpa(model)
    assert model.config._attn_implementation == NAME
    logits, grads = _forward(model, ids, mask)
    torch.testing.assert_close(logits[mask.bool()], ref_logits[mask.bool()], atol=1e-5, rtol=1e-5)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    with torch.no_grad():
        text = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=6, pad_token_id=0)
    assert torch.equal(text, ref_text)
    model.set_attn_implementation("sdpa")


def test_models_without_sdpa_are_left_alone(gqa_model):
    gqa_model.set_attn_implementation("eager")
    use_gqa_sdpa(gqa_model)
    assert gqa_model.config._attn_implementation == "eager"
    gqa_model.set_attn_implementation("sdpa")
