"""RLTrainer: console/JSONL format, checkpoints, callbacks, resume = uninterrupted run, config errors."""

from __future__ import annotations

import json
import re

import pytest

from rl4rec_core.data import load_dataset
from rl4rec_core.errors import ConfigError, DataError, Rl4recError
from rl4rec_core.policy.registry import build_policy
from rl4rec_core.settings import Settings
from rl4rec_core.checkpoints import list_checkpoints, read_checkpoint
from rl4rec_core.training.trainer import RLTrainer, TrainerCallback, format_step
from tests.helpers.tiny_recdata import WordVectorEncoder, make_service, write_tiny_dataset

LINE = re.compile(r"^Step +\d+ \| Loss: -?\d+\.\d{4} \| Reward: \d+\.\d{4} \(max: \d+\.\d{4}, min: \d+\.\d{4}\)$")


def make(tiny, service, callbacks=(), **kw):
    # reward and KL as these tests were written for (the recipe's defaults are log_rank and 0.05)
    cfg = Settings.of(**{"dataset_name": tiny.name, "num_steps": 12, "batch_size": 8, "group_size": 4,
                         "policy": "dummy", "save_every": 5, "log_every": 5, "reward": "ndcg@10", "kl_coef": 0.0,
                         **kw})
    return RLTrainer(cfg, build_policy(cfg, tiny), service, tiny, callbacks=callbacks, progress=False)


class Recorder(TrainerCallback):
    def __init__(self, stop_at: int | None = None):
        self.calls: list[tuple] = []
        self.stop_at = stop_at

    def on_train_start(self, trainer):
        self.calls.append(("start", trainer.step))

    def on_step_end(self, step, stats):
        self.calls.append(("step", step, stats["avg_reward"]))
        if step == self.stop_at:
            raise KeyboardInterrupt  # what Ctrl-C in the middle of a run looks like to the loop

    def on_checkpoint(self, step, path):
        self.calls.append(("checkpoint", step, path.name))

    def on_train_end(self, summary):
        self.calls.append(("end", summary["steps"]))


def test_console_line_matches_the_original():
    stats = {"loss": 0.48761, "avg_reward": 0.67214, "max_reward": 0.90342, "min_reward": 0.45671}
    assert format_step(10, stats) == "Step     10 | Loss: 0.4876 | Reward: 0.6721 (max: 0.9034, min: 0.4567)"


def test_train_writes_log_checkpoints_and_console(tiny, service, rl4rec_dirs, capsys):
    rec = Recorder()
    trainer = make(tiny, service, callbacks=[rec])
    summary = trainer.train()
    out = capsys.readouterr().out.splitlines()
    run_dir = rl4rec_dirs["ckpt"] / f"{tiny.name}_rl"  # the default checkpoint_dir
    assert [line for line in out if line.startswith("Step")] and all(
        LINE.match(line) for line in out if line.startswith("Step"))
    assert [int(line.split()[1]) for line in out if line.startswith("Step")] == [0, 5, 10, 11]
    assert f"✓ Checkpoint saved: {run_dir / 'checkpoint_step_5'}" in out
    assert [p.name for _, p in list_checkpoints(run_dir)] == ["checkpoint_step_5", "checkpoint_step_10", "checkpoint_final"]
    records = [json.loads(line) for line in (run_dir / "training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(12))
    for r in records:
        assert {"loss", "avg_reward", "max_reward", "min_reward", "kl", "gen_len", "time_generate",
                "time_reward", "time_update", "time_step"} <= r.keys()
        assert r["min_reward"] <= r["avg_reward"] <= r["max_reward"]
    state, config = read_checkpoint(run_dir / "checkpoint_final")
    assert state["step"] == 12 and config["policy"]["policy"] == "dummy" and config["run"]["dataset_name"] == tiny.name
    assert (run_dir / "checkpoint_final" / "policy" / "state.pt").is_file()
    assert summary["steps"] == 12 and summary["final_checkpoint"].endswith("checkpoint_final")
    # callbacks: start, every step in order, every checkpoint, end
    assert rec.calls[0] == ("start", 0) and rec.calls[-1] == ("end", 12)
    assert [c[1] for c in rec.calls if c[0] == "step"] == list(range(12))
    assert [c[1:] for c in rec.calls if c[0] == "checkpoint"] == [
        (5, "checkpoint_step_5"), (10, "checkpoint_step_10"), (12, "checkpoint_final")]


def _without_times(records):
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in records]


def test_interrupt_then_resume_reproduces_the_uninterrupted_log(tiny, service, tmp_path):
    whole = make(tiny, service, num_steps=15, checkpoint_dir=str(tmp_path / "whole"))
    whole.train()
    expected = _without_times(whole.log.read())

    cut = make(tiny, service, num_steps=15, checkpoint_dir=str(tmp_path / "cut"), callbacks=[Recorder(stop_at=12)])
    with pytest.raises(KeyboardInterrupt):
        cut.train()
    assert [r["step"] for r in cut.log.read()] == list(range(13))  # steps 10..12 are past the last checkpoint

    with pytest.raises(ConfigError, match="--resume"):  # a fresh run must not clobber it
        make(tiny, service, num_steps=15, checkpoint_dir=str(tmp_path / "cut")).train()

    resumed = make(tiny, service, num_steps=15, checkpoint_dir=str(tmp_path / "cut"), resume=True)
    summary = resumed.train()
    assert summary["resumed_from"] == 10
    assert _without_times(resumed.log.read()) == expected
    # and the final policies are identical
    prompts = resumed.policy.build_prompts([["Carrie"], ["Tombstone"]])
    assert resumed.policy.generate(prompts, greedy=True) == whole.policy.generate(prompts, greedy=True)


def test_resume_a_finished_run_with_more_steps(tiny, service, tmp_path):
    make(tiny, service, num_steps=6, checkpoint_dir=str(tmp_path / "r")).train()
    more = make(tiny, service, num_steps=9, checkpoint_dir=str(tmp_path / "r"), resume=True)
    assert more.train()["resumed_from"] == 6
    assert [r["step"] for r in more.log.read()] == list(range(9))


def test_overwrite_replaces_an_old_run(tiny, service, tmp_path):
    make(tiny, service, num_steps=11, checkpoint_dir=str(tmp_path / "o")).train()
    again = make(tiny, service, num_steps=3, checkpoint_dir=str(tmp_path / "o"), overwrite=True)
    again.train()
    assert [p.name for _, p in list_checkpoints(tmp_path / "o")] == ["checkpoint_final"]
    assert len(again.log.read()) == 3


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"batch_size": 10, "group_size": 4}, "not divisible by group_size"),
        ({"group_size": 1, "batch_size": 4}, "GRPO needs group_size >= 2"),
        ({"reward": "ndcg_at_ten"}, "ndcg"),
        ({"num_steps": 0}, "num_steps must be a positive integer"),
        ({"algorithm": "ppo"}, "unknown algorithm"),
        ({"save_every": 0}, "save_every"),
        ({"num_negatives": -1}, "num_negatives"),
        ({"resume": True, "overwrite": True}, "contradict"),
        ({"learning_rate": -1.0}, "learning_rate"),
    ],
)
def test_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        Settings.of(**kw)


def test_an_import_path_reward_is_imported_when_the_trainer_starts_not_when_settings_are_built(tiny, service):
    from rl4rec_core.training.trainer import build_trainer

    settings = Settings.of(dataset_name=tiny.name, policy="dummy", reward="no_such_module:fn")  # its form: accepted
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module'"):
        build_trainer(settings, service, tiny, progress=False)


def test_reinforce_accepts_group_size_one():
    assert Settings.of(algorithm="reinforce", group_size=1, batch_size=3).users_per_step == 3


def test_too_many_users_per_step(tiny, service):
    with pytest.raises(ConfigError, match="usable users"):
        make(tiny, service, batch_size=400)


def test_service_without_the_dataset_is_a_clear_error(tiny, service, tmp_path):
    other = make_service(load_dataset(tiny.name), WordVectorEncoder())
    other._items = {"beauty": other._items[tiny.name]}  # a service started for another dataset
    with pytest.raises(ConfigError, match="rl4rec serve --datasets tiny-ml"):
        make(tiny, other, checkpoint_dir=str(tmp_path / "x")).train()


class DeadService:
    """A reward source whose connection is gone (what a killed Ray actor looks like to the caller)."""

    def compute_rewards(self, *args, **kwargs):
        raise ConnectionError("actor died")


def test_unreachable_service_is_a_clear_error(tiny, tmp_path):
    with pytest.raises(Rl4recError, match="rl4rec serve"):
        make(tiny, DeadService(), checkpoint_dir=str(tmp_path / "d")).train()


def test_dataset_without_train_history(rl4rec_dirs):
    import pandas as pd

    name = write_tiny_dataset(rl4rec_dirs["data"], name="short")
    folder = rl4rec_dirs["data"] / name
    seqs = pd.read_parquet(folder / "sequences.parquet")
    seqs["items"] = seqs["items"].map(lambda s: list(s)[:3])  # history seq[:-3] is empty for everyone
    seqs.to_parquet(folder / "sequences.parquet", index=False)
    ds = load_dataset(name)
    with pytest.raises(DataError, match="training history"):
        make(ds, make_service(ds, WordVectorEncoder()))


@pytest.mark.slow
def test_tiny_llm_grpo_steps_end_to_end(tiny, service, tmp_path):
    """A tiny random Llama through the whole trainer: GRPO steps change the LoRA weights, the
    checkpoint reloads as the same policy, and --resume continues it."""
    import torch

    from rl4rec_core.evaluation.policy_eval import evaluate_policy, load_policy
    from tests.helpers.tiny_lm import make_tiny_lm

    model_dir = make_tiny_lm(tmp_path / "lm")
    cfg = Settings.of(dataset_name=tiny.name, num_steps=3, batch_size=8, group_size=4, policy_model=model_dir,
                      learning_rate=1e-2, save_every=2, checkpoint_dir=str(tmp_path / "run"), max_new_tokens=8,
                      reward="ndcg@10", kl_coef=0.0)
    policy = build_policy(cfg, tiny)
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters() if p.requires_grad}
    summary = RLTrainer(cfg, policy, service, tiny, progress=False).train()
    assert summary["steps"] == 3
    changed = [n for n, p in policy.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed, "no trainable weight moved"
    records = RLTrainer(cfg.replace(trainer={"resume": True}), policy, service, tiny).log.read()
    assert [r["step"] for r in records] == [0, 1, 2] and all(r["gen_len"] > 0 for r in records)

    reloaded = load_policy(tmp_path / "run")
    prompts = policy.build_prompts([["Carrie", "Fog, The"]])
    assert reloaded.generate(prompts, greedy=True) == policy.generate(prompts, greedy=True)
    m, ranks = evaluate_policy(tiny, tmp_path / "run", split="valid", service=service, users=range(5))
    assert len(ranks) == 5 and 0 <= m["ndcg@10"] <= 1

    more = cfg.replace(trainer={"resume": True, "num_steps": 4})
    resumed = RLTrainer(more, build_policy(more, tiny), service, tiny, progress=False).train()
    assert resumed["resumed_from"] == 3 and resumed["steps"] == 4
