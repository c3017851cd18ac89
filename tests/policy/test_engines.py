"""The hf rollout engine: LoRA folded into the weights while sampling gives the unmerged policy's
samples and leaves the base weights bit-for-bit as they were; engines are chosen by name."""

from __future__ import annotations

import pytest
import torch

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.engines import merged_lora
from rl4rec_core.policy.rollout import cut_completion
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.policy.rec_policy import RecPolicy

pytestmark = pytest.mark.usefixtures("one_thread")
HISTORIES = [["Toy Story (1995)"], ["Heat (1995)", "Casino (1995)"]]


def _policy(path, merge: bool) -> RecPolicy:
    policy = RecPolicy(PolicyConfig.from_fields(policy_model=path, max_new_tokens=6, learning_rate=0.05, lora_r=8,
        seed=0, group_size=3, merge_for_sampling=merge, kl_coef=0.0))
    with torch.no_grad():  # LoRA starts as a no-op (B = 0); make the adapters matter
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    return policy


def test_merged_sampling_equals_unmerged_and_restores_the_base_exactly(tiny_lm):
    merged, plain = _policy(tiny_lm, True), _policy(tiny_lm, False)
    prompts = merged.build_prompts(HISTORIES)
    base_before = {n: p.clone() for n, p in merged.model.named_parameters() if "lora" not in n}
    for greedy in (True, False):
        torch.manual_seed(3)
        a = merged.rollout(prompts, num_samples=3, greedy=greedy).completion_ids
        torch.manual_seed(3)
        b = plain.rollout(prompts, num_samples=3, greedy=greedy).completion_ids
        assert a == b
    with merged.model.disable_adapter():  # the adapters really change the samples
        off = merged.rollout(prompts, num_samples=3, greedy=True).completion_ids
    assert off != a
    for n, p in merged.model.named_parameters():
        if "lora" not in n:
            assert torch.equal(p, base_before[n]), n


def test_merged_lora_restores_weights_when_sampling_fails(tiny_lm):
    policy = _policy(tiny_lm, True)
    before = {n: p.clone() for n, p in policy.model.named_parameters()}
    with pytest.raises(RuntimeError, match="boom"):
        with merged_lora(policy.model):
            changed = [n for n, p in policy.model.named_parameters() if not torch.equal(p, before[n])]
            assert changed and all("base_layer" in n for n in changed)  # the adapters are in the weights
            raise RuntimeError("boom")
    for n, p in policy.model.named_parameters():
        assert torch.equal(p, before[n]), n
    assert not any(getattr(m, "merged", False) for m in policy.model.modules())


def test_cut_completion_keeps_the_first_end_token():
    assert cut_completion([5, 6, 2, 7, 2], {2}) == [5, 6, 2]
    assert cut_completion([5, 6], {2}) == [5, 6]


def test_unknown_engine_is_refused_with_the_choices(tiny_lm):
    with pytest.raises(ConfigError, match="unknown rollout_engine .nope.; choose one of hf, vllm"):
        RecPolicy(PolicyConfig.from_fields(policy_model=tiny_lm, rollout_engine="nope", kl_coef=0.0))


def test_cpu_bf16_autocast_only_where_the_cpu_has_it(tiny_lm, monkeypatch, caplog):
    import rl4rec_core.policy.rec_policy as rec_policy

    monkeypatch.setattr(rec_policy, "cpu_has_fast_bf16", lambda: False)
    with caplog.at_level("WARNING"):
        policy = RecPolicy(PolicyConfig.from_fields(policy_model=tiny_lm, max_new_tokens=4, lora_r=8, cpu_bf16=True,
            group_size=2, kl_coef=0.0))
    assert "cpu_bf16 ignored" in caplog.text
    with policy.autocast():
        assert not torch.is_autocast_enabled("cpu")

    monkeypatch.setattr(rec_policy, "cpu_has_fast_bf16", lambda: True)  # as on an AMX machine
    policy = RecPolicy(PolicyConfig.from_fields(policy_model=tiny_lm, max_new_tokens=4, lora_r=8, cpu_bf16=True,
        learning_rate=0.05, group_size=2, kl_coef=0.0))
    with policy.autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    prompts = policy.build_prompts(HISTORIES)
    texts = policy.generate(prompts, num_samples=2)
    stats = policy.update(prompts, texts, torch.tensor([1.0, 0.0, 0.0, 1.0]))
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())


def test_cpu_bf16_counts_only_on_amx(monkeypatch):
    """AVX512-BF16 without AMX was measured ~12x slower (docs/performance.md): only AMX switches bf16 on."""
    from rl4rec_core import devices

    for flags, fast in (({"avx2"}, False), ({"avx512f", "avx512_bf16"}, False), ({"avx512_bf16", "amx_bf16"}, True)):
        monkeypatch.setattr(devices, "cpu_flags", lambda flags=flags: flags)
        assert devices.cpu_has_fast_bf16() is fast, flags
