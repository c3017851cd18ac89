"""``rl4rec sft``: training positions only, the loss falls, the checkpoint round-trips, bad values are refused."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from rl4rec_core.cli import main
from rl4rec_core.data.dataset import Dataset
from rl4rec_core.errors import ConfigError
from rl4rec_core.evaluation.policy_eval import load_policy
from rl4rec_core.settings import groups_of
from rl4rec_core.training.sft import SFTConfig, SFTTrainer, build_sft_policy, run_sft, sft_examples

pytestmark = pytest.mark.usefixtures("one_thread")


def sft_config(progress: bool = False, **fields) -> SFTConfig:
    """An ``SFTConfig`` of flat settings names (the run, policy, recipe and trainer groups' fields)."""
    return SFTConfig(**groups_of(fields, ("run", "policy", "recipe", "trainer")), progress=progress)


def _config(tiny, tiny_lm, tmp_path, **fields) -> SFTConfig:
    base = dict(dataset_name=tiny.name, policy_model=tiny_lm, sft_steps=30, sft_learning_rate=3e-3,
                checkpoint_dir=str(tmp_path / "sft"))
    return sft_config(**{**base, **fields})


def _dataset(seqs: list[list[int]], num_items: int) -> Dataset:
    items = pd.DataFrame({"item_idx": range(num_items), "title": [f"Item {i}" for i in range(num_items)]})
    sequences = pd.DataFrame({"user_idx": range(len(seqs)), "items": seqs})
    return Dataset("toy", None, items, sequences, {})


def test_examples_are_the_training_positions():
    # one user: a b c d | v (validation) t (test)
    ds = _dataset([[0, 1, 2, 3, 8, 9]], 10)
    assert sft_examples(ds) == [([0], 1), ([0, 1], 2), ([0, 1, 2], 3)]
    assert sft_examples(ds, positions_per_user=2) == [([0, 1], 2), ([0, 1, 2], 3)]
    assert sft_examples(ds, max_history=2) == [([0], 1), ([0, 1], 2), ([1, 2], 3)]
    assert sft_examples(_dataset([[0, 1, 8, 9], [0, 8, 9]], 10)) == [([0], 1)]  # 3 items: nothing to learn


def test_validation_and_test_items_never_appear():
    # every user's last two items are their own and occur nowhere else
    seqs, held_out = [], set()
    for u in range(20):
        v, t = 100 + 2 * u, 101 + 2 * u
        seqs.append([(u * 7 + k) % 50 for k in range(3 + u % 6)] + [v, t])
        held_out |= {v, t}
    examples = sft_examples(_dataset(seqs, 140))
    assert len(examples) == sum(len(s) - 3 for s in seqs)
    assert not {a for _, a in examples} & held_out
    assert not {i for h, _ in examples for i in h} & held_out


def _answer_logprobs(cfg, policy, dataset, n: int = 6) -> torch.Tensor:
    """Summed log-prob of each of the first ``n`` examples' answers, ``[n]``."""
    trainer = SFTTrainer(cfg, policy, dataset)
    with torch.no_grad():
        lp, mask = trainer.answer_logprobs(trainer.encode(trainer.examples[:n]), list(range(n)))
    return (lp * mask).sum(1)


def test_sft_lowers_the_loss_and_round_trips(tiny, tiny_lm, tmp_path, capsys):
    from peft import get_peft_model_state_dict

    cfg = _config(tiny, tiny_lm, tmp_path)
    trainer = SFTTrainer(cfg, build_sft_policy(cfg), tiny)
    summary = trainer.train()
    assert summary["steps"] == 30 and summary["examples"] == len(sft_examples(tiny))
    assert summary["last_loss"] < 0.6 * summary["first_loss"], summary
    assert "SFT step 0 | loss" in capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "sft" / "training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(30))
    assert {"loss", "tokens", "time"} <= set(records[0])

    final = tmp_path / "sft" / "checkpoint_final"
    assert str(final) == summary["final_checkpoint"]
    assert json.loads((final / "trainer_state.json").read_text())["kind"] == "sft"
    assert json.loads((final / "config.json").read_text())["stage"] == "sft"
    saved = json.loads((final / "policy" / "policy.json").read_text())["config"]
    # the SFT policy generates whole answers, with the dataset's noun, at temperature 1
    assert saved["policy"]["lora"] is True and saved["policy"]["max_new_tokens"] == 48
    assert saved["algorithm"]["learning_rate"] == 3e-3
    loaded = load_policy(final)
    want, got = get_peft_model_state_dict(trainer.policy.model), get_peft_model_state_dict(loaded.model)
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    torch.testing.assert_close(_answer_logprobs(cfg, loaded, tiny), _answer_logprobs(cfg, trainer.policy, tiny))
    # and training did something: the untrained policy finds the answers far less likely
    untrained = _answer_logprobs(cfg, load_policy(final, trained=False), tiny)
    assert _answer_logprobs(cfg, loaded, tiny).mean() > untrained.mean() + 1.0


def test_shared_prefix_matches_whole_prompts(tiny, tiny_lm, tmp_path):
    """Running the common prompt prefix once gives the log-probs and gradient of whole prompts."""
    cfg = _config(tiny, tiny_lm, tmp_path)
    trainer = SFTTrainer(cfg, build_sft_policy(cfg), tiny)
    params = trainer.policy.trainable_parameters()
    with torch.no_grad():
        for p in params:  # LoRA B starts at zero: make the adapters matter
            p.normal_(0, 0.1)
    rollout = trainer.encode(trainer.examples[:5])
    results = []
    for shared in (True, False):
        trainer.share_prefix = shared
        trainer.policy.model.zero_grad()
        lp, mask = trainer.answer_logprobs(rollout, list(range(5)))
        (lp * mask).sum().backward()
        results.append(((lp * mask).detach(), torch.cat([p.grad.flatten() for p in params])))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("bad", [
    {"sft_steps": 0}, {"sft_batch_size": -1}, {"sft_learning_rate": 0.0}, {"history_len": 0}, {"lora_r": 0},
    {"sft_positions_per_user": 0}, {"sft_max_answer_tokens": 0}, {"dataset_name": ""}, {"policy": "dummy"},
    {"init_from": "x"}, {"dataset_name": "a,b"},
])
def test_bad_config_values_are_refused(bad):
    with pytest.raises(ConfigError):
        sft_config(**bad)


def test_an_unknown_prompt_template_is_refused_before_the_model_loads(tiny, tmp_path):
    with pytest.raises(ConfigError, match="unknown prompt template 'nope'"):
        build_sft_policy(sft_config(dataset_name=tiny.name, policy_model=str(tmp_path / "no-model"),
                                    prompt_template="nope"))


def test_an_existing_run_is_refused_unless_overwrite(tiny, tiny_lm, tmp_path):
    cfg = _config(tiny, tiny_lm, tmp_path, sft_steps=2)
    run_sft(cfg, dataset=tiny)
    with pytest.raises(ConfigError, match="--overwrite"):
        run_sft(cfg, dataset=tiny)
    run_sft(_config(tiny, tiny_lm, tmp_path, sft_steps=3, overwrite=True), dataset=tiny)
    assert len((tmp_path / "sft" / "training_log.jsonl").read_text().splitlines()) == 3


def test_cli_end_to_end_and_bad_flag(tiny, tiny_lm, tmp_path, capsys):
    out_dir = tmp_path / "cli_sft"
    args = ["sft", "--dataset_name", tiny.name, "--policy_model", tiny_lm, "--sft_steps", "3", "--sft_batch_size", "4",
            "--history_len", "3", "--checkpoint_dir", str(out_dir), "--no_progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "SFT step 0 | loss" in out
    assert f"rl4rec train --init_from {out_dir / 'checkpoint_final'}\n" in out
    assert (out_dir / "checkpoint_final" / "policy" / "adapter_model.safetensors").is_file()
    assert main(["sft", "--sft_steps", "0"]) == 2
    assert "an SFT run needs --sft_steps >= 1" in capsys.readouterr().err
