"""Constrained decoding (fusion.constrained): a tiny real LM only ever writes one of its prompt's candidate titles,
keyed sampling still repeats, and the update scores the same renormalised distribution."""

from __future__ import annotations

import pytest
import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.policy.constrained import allowed_after, build_trie, masked_logprobs, pad_allowed
from rl4rec_core.policy.rec_policy import RecPolicy
from rl4rec_core.policy.rollout import completion_logprobs, pack
from rl4rec_core.policy.shared_prefix import grouped_completion_logprobs, pack_groups

pytestmark = pytest.mark.usefixtures("one_thread")

HISTORIES = [["Toy Story (1995)"], ["Heat (1995)", "Casino (1995)"]]
# "toy story" is a prefix of "toy story (1995)": the trie must offer both EOS and "(" after "story"
CANDIDATES = [["Toy Story", "Toy Story (1995)", "Jumanji"], ["Casino", "Golden Eye", "Heat (1995)"]]


def make_policy(path, **fields) -> RecPolicy:
    defaults = dict(policy_model=path, max_new_tokens=8, learning_rate=0.05, lora_r=8, micro_batch_size=4,
                    group_size=6, kl_coef=0.0, prompt_template="candidates")
    return RecPolicy(PolicyConfig.from_fields(**{**defaults, **fields}))


def spelled(policy, titles):
    """How the tokenizer writes each title back (the tiny one lower-cases and spaces punctuation)."""
    tok = policy.tokenizer
    return {tok.decode(tok(t, add_special_tokens=False)["input_ids"]) for t in titles}


def test_the_trie_allows_the_titles_tokens_then_eos():
    trie = build_trie([[5, 6], [5, 6, 7], [9]], eos_id=2)
    assert sorted(allowed_after(trie, [])) == [5, 9] and sorted(allowed_after(trie, [5, 6])) == [2, 7]
    assert allowed_after(trie, [5, 6, 2]) is None and allowed_after(trie, [4]) is None  # finished / off the trie


def test_masked_logprobs_renormalise_over_the_allowed_tokens():
    logits = torch.tensor([[[1.0, 2.0, 3.0, 0.5], [0.0, 0.0, 0.0, 0.0]]])  # [1, 2, 4]
    allowed = pad_allowed([[[1, 2], []]], t_len=2)  # position 0 among {1, 2}; position 1 unconstrained
    got = masked_logprobs(logits, torch.tensor([[2, 3]]), allowed)
    want0 = 3.0 - torch.logsumexp(torch.tensor([2.0, 3.0]), 0)
    torch.testing.assert_close(got, torch.stack([want0, torch.log(torch.tensor(0.25))]).unsqueeze(0))


@pytest.mark.parametrize("share_prompt", [True, False])
def test_samples_are_only_candidate_titles_and_keyed_sampling_repeats(tiny_lm, share_prompt):
    policy = make_policy(tiny_lm, share_prompt=share_prompt)
    prompts = policy.build_prompts(HISTORIES, candidates=CANDIDATES)
    for kwargs in ({}, {"seeds": [11, 12]}, {"greedy": True}):
        texts = policy.generate(prompts, num_samples=6, candidates=CANDIDATES, **kwargs)
        assert len(texts) == 12
        assert all(t in spelled(policy, CANDIDATES[i // 6]) for i, t in enumerate(texts)), texts
    keyed = policy.generate(prompts, num_samples=6, seeds=[11, 12], candidates=CANDIDATES)
    assert policy.generate(prompts, num_samples=6, seeds=[11, 12], candidates=CANDIDATES) == keyed
    # the key is the prompt's: prompt 1 alone samples what it sampled next to prompt 0
    assert policy.generate(prompts[1:], num_samples=6, seeds=[12], candidates=CANDIDATES[1:]) == keyed[6:]


def test_the_update_scores_the_masked_distribution(tiny_lm):
    policy = make_policy(tiny_lm)
    prompts = policy.build_prompts(HISTORIES, candidates=CANDIDATES)
    policy.generate(prompts, num_samples=6, candidates=CANDIDATES)
    ro = policy.last_rollout
    batch = pack(ro, list(range(len(ro))), policy.tokenizer.pad_token_id)
    with torch.no_grad():
        logp = completion_logprobs(policy.model, batch, 1.0, True)
        grouped = grouped_completion_logprobs(policy.model, pack_groups(ro, [0, 1], policy.tokenizer.pad_token_id))
        # by hand: the full logits of each sequence, everything but the allowed ids at -inf, log-softmax
        out = policy.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                           position_ids=batch.position_ids).logits
    t_len = batch.completion_mask.shape[1]
    full = out[:, -(t_len + 1):-1].float()
    for i, comp in enumerate(ro.completion_ids):
        for t, tok in enumerate(comp):
            allowed = ro.allowed[i][t]
            assert allowed and tok in allowed
            want = full[i, t, tok] - torch.logsumexp(full[i, t, allowed], 0)
            torch.testing.assert_close(logp[i, t], want, atol=1e-5, rtol=1e-5)
    mask = batch.completion_mask.bool()
    torch.testing.assert_close(grouped[mask], logp[mask], atol=1e-5, rtol=1e-5)
    stats = policy.update(prompts, ro.texts, torch.arange(12.0))
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())


def test_constrained_decoding_refuses_what_it_cannot_keep(tiny_lm):
    policy = make_policy(tiny_lm, top_k=5)
    prompts = policy.build_prompts(HISTORIES, candidates=CANDIDATES)
    with pytest.raises(ConfigError, match="--top_k"):
        policy.generate(prompts, candidates=CANDIDATES)
    with pytest.raises(ConfigError, match="--rollout_engine hf"):  # vLLM samples on: refused, in one line
        make_policy(tiny_lm, rollout_engine="vllm").generate(prompts, candidates=CANDIDATES)
    policy = make_policy(tiny_lm)
    with pytest.raises(ConfigError, match="candidate list per prompt"):
        policy.generate(prompts, candidates=CANDIDATES[:1])
