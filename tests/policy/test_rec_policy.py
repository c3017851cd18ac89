"""RecPolicy on a tiny random Llama built in the test: prompts, grouped sampling, learning, KL, checkpoints."""

from __future__ import annotations

import pytest
import torch

from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.policy.rec_policy import RecPolicy
from rl4rec_core.policy.rollout import pack

HISTORIES = [["Toy Story (1995). Genres: Comedy"], ["Heat (1995). Genres: Action", "Casino (1995). Genres: Drama"]]
# an easy reward to learn: the share of generated tokens that are genre-ish words (~7% at random)
GOOD_WORDS = "comedy drama action thriller romance animation children great good fun".split()


# the tiny random Llama (`tiny_lm`) and one torch thread (`one_thread`) come from conftest.py
pytestmark = pytest.mark.usefixtures("one_thread")


def make_policy(path, **fields) -> RecPolicy:
    """Settings fields of the policy and algorithm groups over a small default."""
    defaults = dict(policy_model=path, max_new_tokens=6, learning_rate=0.05, lora_r=8, micro_batch_size=3,
                    group_size=4, kl_coef=0.0)
    return RecPolicy(PolicyConfig.from_fields(**{**defaults, **fields}))


def genre_reward(policy: RecPolicy, completion_ids: list[list[int]]) -> torch.Tensor:
    good = set(policy.tokenizer.convert_tokens_to_ids(GOOD_WORDS))
    return torch.tensor([sum(t in good for t in c) / max(1, len(c)) for c in completion_ids])


def trainable(policy: RecPolicy) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.model.named_parameters() if p.requires_grad}


def test_build_prompts_uses_chat_template_and_last_n(tiny_lm):
    policy = make_policy(tiny_lm, history_len=1, prompt_template="plain")
    prompts = policy.build_prompts(HISTORIES)
    assert prompts[1] == "<user> User history: Casino (1995). Genres: Drama\nNext item: <assistant>"
    assert len(prompts) == 2


def test_generate_groups_samples_per_prompt(tiny_lm):
    policy = make_policy(tiny_lm)
    prompts = policy.build_prompts(HISTORIES)
    texts = policy.generate(prompts, num_samples=3)
    assert len(texts) == 6 and all(isinstance(t, str) for t in texts)
    ro = policy.last_rollout
    assert ro.num_samples == 3 and ro.prompts == prompts and ro.texts == texts
    assert all(1 <= n <= 6 for n in ro.gen_lengths)
    # greedy: every sample of a prompt is the same, and generating again repeats it
    greedy = policy.generate(prompts, num_samples=2, greedy=True)
    assert greedy[0] == greedy[1] and greedy[2] == greedy[3]
    assert policy.generate(prompts, greedy=True) == greedy[::2]
    # the original's call: one text per prompt
    assert len(policy.generate(prompts)) == 2


def test_original_example_update_runs(tiny_lm):
    policy = make_policy(tiny_lm)
    prompts = policy.build_prompts([["Product A", "Product B"], ["Product C"]])
    texts = policy.generate(prompts)
    stats = policy.update(prompts, texts, torch.tensor([0.8, 0.6]))
    for key in ("loss", "kl", "grad_norm", "gen_tokens", "reward_mean", "update_s"):
        assert isinstance(stats[key], float)
    assert stats["reward_mean"] == pytest.approx(0.7)
    assert stats["grad_norm"] > 0


def test_grpo_steps_change_only_the_adapters_and_raise_the_reward(tiny_lm):
    torch.manual_seed(0)
    policy = make_policy(tiny_lm)
    prompts = policy.build_prompts(HISTORIES * 2)
    frozen_before = {n: p.detach().clone() for n, p in policy.model.named_parameters() if not p.requires_grad}
    adapters_before = trainable(policy)

    def mean_reward() -> float:
        with torch.random.fork_rng():
            torch.manual_seed(123)
            return float(genre_reward(policy, policy.rollout(prompts, 16).completion_ids).mean())

    start = mean_reward()
    for _ in range(10):
        ro = policy.rollout(prompts, 4)
        # the trainer's way: prompts repeated once per sample
        per_sample = [p for p in prompts for _ in range(4)]
        policy.update(per_sample, ro.texts, genre_reward(policy, ro.completion_ids))
    end = mean_reward()

    assert all(not torch.equal(adapters_before[n], p) for n, p in trainable(policy).items() if "lora_B" in n)
    assert all(torch.equal(frozen_before[n], p) for n, p in policy.model.named_parameters() if not p.requires_grad)
    assert end > start + 0.15, f"reward did not rise: {start:.3f} -> {end:.3f}"


def test_kl_is_zero_at_start_with_lora_then_grows(tiny_lm):
    torch.manual_seed(1)
    policy = make_policy(tiny_lm, group_size=4, kl_coef=0.1)
    prompts = policy.build_prompts(HISTORIES)
    ro = policy.rollout(prompts, 4)
    first = policy.update(prompts, ro.texts, genre_reward(policy, ro.completion_ids))
    assert first["kl"] == 0.0  # LoRA's B matrices start at zero: adapters on == adapters off
    for _ in range(3):
        ro = policy.rollout(prompts, 4)
        last = policy.update(prompts, ro.texts, genre_reward(policy, ro.completion_ids))
    assert last["kl"] > 0.0


def test_ppo_epochs_and_reinforce_full_finetuning(tiny_lm):
    torch.manual_seed(2)
    ppo = make_policy(tiny_lm, group_size=4, clip_eps=0.2, ppo_epochs=3)
    prompts = ppo.build_prompts(HISTORIES)
    ro = ppo.rollout(prompts, 4)
    stats = ppo.update(prompts, ro.texts, genre_reward(ppo, ro.completion_ids) + torch.arange(8) * 0.01)
    # after the first inner epoch the policy has moved, so later epochs see ratios != 1
    assert 0.0 <= stats["clip_frac"] <= 1.0 and stats["ratio_mean"] != 1.0

    full = make_policy(tiny_lm, lora=False, learning_rate=1e-2, algorithm="reinforce", group_size=1, kl_coef=0.1)
    before = trainable(full)
    texts = full.generate(prompts, num_samples=2)
    stats = full.update(prompts, texts, torch.tensor([0.1, 0.9, 0.5, 0.2]))
    assert full.baseline.value == pytest.approx(0.425)  # first batch: baseline = its mean
    assert any(not torch.equal(before[n], p) for n, p in trainable(full).items())
    assert stats["kl"] == 0.0  # the frozen copy equals the policy before the first step


def test_save_load_round_trip_resumes_exactly(tiny_lm, tmp_path):
    torch.manual_seed(3)
    policy = make_policy(tiny_lm, group_size=2)
    prompts = policy.build_prompts(HISTORIES)
    for _ in range(2):
        ro = policy.rollout(prompts, 2)
        policy.update(prompts, ro.texts, genre_reward(policy, ro.completion_ids) + torch.tensor([0.0, 0.1, 0.0, 0.2]))
    policy.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "adapter_model.safetensors").is_file()

    restored = RecPolicy.from_pretrained(tmp_path / "ckpt")
    assert restored.num_updates == 2 and restored.config == policy.config
    for name, p in trainable(policy).items():
        assert torch.equal(p, dict(restored.model.named_parameters())[name])
    untrained = RecPolicy.from_pretrained(tmp_path / "ckpt", trained=False)
    assert untrained.num_updates == 0

    # one more identical step on both (same samples, same rewards) lands on identical weights,
    # which needs the optimizer's moments to have been restored too
    ro = policy.rollout(prompts, 2)
    rewards = torch.tensor([0.3, 0.1, 0.0, 0.4])
    policy.last_rollout = None  # both re-tokenise the texts (the restored policy never sampled them)
    policy.update(prompts, ro.texts, rewards)
    restored.update(prompts, ro.texts, rewards)
    for name, p in trainable(policy).items():
        assert torch.allclose(p, dict(restored.model.named_parameters())[name], atol=1e-6)


def test_full_finetuning_save_load(tiny_lm, tmp_path):
    policy = make_policy(tiny_lm, lora=False, learning_rate=1e-2)
    prompts = policy.build_prompts(HISTORIES)
    policy.update(prompts, policy.generate(prompts, num_samples=4), torch.arange(8, dtype=torch.float32))
    policy.save(tmp_path / "full")
    restored = RecPolicy.from_pretrained(tmp_path / "full")
    batch = pack(policy.rollout(prompts, 2), [0, 1, 2, 3], policy.tokenizer.pad_token_id)
    with torch.no_grad():
        assert torch.allclose(policy.logprobs(batch), restored.logprobs(batch), atol=1e-6)


def test_bad_inputs_are_explained(tiny_lm, tmp_path):
    policy = make_policy(tiny_lm)
    prompts = policy.build_prompts(HISTORIES)
    texts = policy.generate(prompts, num_samples=2)
    with pytest.raises(DataError, match="4 rewards for 4|got 3 rewards"):
        policy.update(prompts, texts, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(DataError, match="split evenly"):
        policy.update(prompts, texts[:3], torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(DataError, match="NaN"):
        policy.update(prompts, texts, torch.tensor([0.1, float("nan"), 0.3, 0.0]))
    with pytest.raises(ConfigError, match="list of strings"):
        policy.generate(prompts[0])
    with pytest.raises(MissingArtifactError, match="not a RecPolicy checkpoint"):
        RecPolicy.from_pretrained(tmp_path)
    with pytest.raises(MissingArtifactError, match="no adapter_model.safetensors"):
        policy.load(tmp_path)
    with pytest.raises(ConfigError, match="temperature"):
        PolicyConfig.from_fields(policy_model=tiny_lm, temperature=0)
    with pytest.raises(ConfigError, match="unknown prompt template"):  # before the model loads
        RecPolicy(PolicyConfig.from_fields(policy_model=tiny_lm, prompt_template="fancy"))
    with pytest.raises(MissingArtifactError, match="cannot load policy model"):
        RecPolicy(PolicyConfig.from_fields(policy_model=str(tmp_path / "no-such-model"), kl_coef=0.0))
