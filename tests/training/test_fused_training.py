"""The fused recipe's training step (fusion.base set): candidates in the prompt from the history alone, the
fused reward at train_gamma, and the diagnostics in training_log.jsonl.

The retrieval service's fused channel is a stand-in here (tests/helpers/fused_source.py) over a real service."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from rl4rec_core.data import load_dataset
from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.registry import build_policy
from rl4rec_core.settings import Settings
from rl4rec_core.training.trainer import RLTrainer
from tests.helpers.fused_source import FusedStandIn
from tests.helpers.tiny_recdata import write_tiny_dataset

K = 5


def make(ds, source, **kw):
    cfg = Settings.of(**{"dataset_name": ds.name, "num_steps": 4, "batch_size": 8, "group_size": 4,
                         "policy": "dummy", "save_every": 100, "log_every": 1, "reward": "ndcg@10", "kl_coef": 0.0,
                         "base": "sasrec", "num_candidates": K, "train_gamma": 0.7, **kw})
    return RLTrainer(cfg, build_policy(cfg, ds), source, ds, progress=False)


def test_a_fused_run_shows_candidates_asks_the_fused_reward_and_logs_diagnostics(tiny, service, tmp_path, capsys):
    source = FusedStandIn(service, tiny)
    trainer = make(tiny, source, checkpoint_dir=str(tmp_path / "run"))
    trainer.train()
    records = [json.loads(line) for line in (tmp_path / "run" / "training_log.jsonl").read_text().splitlines()]
    assert len(records) == 4
    for r in records:
        assert {"frac_zero_spread", "reward_std_within", "names_candidate", "names_target", "entropy", "kl",
                "gen_len", "beats_base", "rank_gain"} <= r.keys()
        assert r["names_candidate"] == 1.0  # the dummy picks a candidate's title, always
        assert 0.0 <= r["frac_zero_spread"] <= 1.0 and r["reward_std_within"] >= 0.0
    assert {(c["scorer"], c["gamma"]) for c in source.reward_calls} == {("fused", 0.7)}
    assert all(k == K and len(h) == 2 for _, h, k in source.candidate_calls)  # 2 users a step, K each
    lines = capsys.readouterr().out.splitlines()
    diag = [line for line in lines if "zero-spread" in line]
    assert len(diag) == 4 and all("| cand 100% | target" in line for line in diag)


def test_without_a_base_the_diagnostics_are_logged_but_no_candidates(tiny, service, tmp_path):
    trainer = make(tiny, service, base="none", num_steps=2, checkpoint_dir=str(tmp_path / "plain"))
    trainer.train()
    (last,) = trainer.log.read()[-1:]
    assert {"frac_zero_spread", "reward_std_within", "names_target"} <= last.keys()
    assert "names_candidate" not in last and "beats_base" not in last


def _with_other_targets(tiny, data_dir) -> str:
    """A copy of ``tiny`` whose train targets (seq[-3]) are other items; histories, validation, test unchanged."""
    seqs = pd.read_parquet(data_dir / tiny.name / "sequences.parquet")
    n = tiny.num_items

    def swap(s):
        s = list(s)
        s[-3] = next(j for j in range(n) if j not in s)
        return s

    name = write_tiny_dataset(data_dir, name="tiny-other")
    seqs.assign(items=seqs["items"].map(swap)).to_parquet(data_dir / name / "sequences.parquet", index=False)
    return name


def test_the_prompt_holds_the_bases_top_k_of_the_history_alone(tiny, service, rl4rec_dirs, tmp_path):
    other = load_dataset(_with_other_targets(tiny, rl4rec_dirs["data"]))
    a = make(tiny, FusedStandIn(service, tiny), checkpoint_dir=str(tmp_path / "a"))
    b = make(other, FusedStandIn(service, tiny), checkpoint_dir=str(tmp_path / "b"))
    users = np.arange(len(a.pool))
    assert a.pool.histories == b.pool.histories and a.pool.targets != b.pool.targets
    (pa, ca), (pb, cb) = a.step_prompts(users), b.step_prompts(users)
    assert pa == pb and ca == cb  # a user's target changed, its prompt did not
    for prompt, titles, items, h in zip(pa, ca.titles, ca.items, a.pool.histories):
        assert len(items) == K and not set(items) & set(h)  # the history is masked out of the candidates
        assert all(f"{j}. {t}" in prompt for j, t in enumerate(titles, 1))


def test_a_base_needs_a_service_with_candidates(tiny, service, tmp_path):
    class RewardsOnly:  # a reward source from before the fused channel
        compute_rewards = staticmethod(service.compute_rewards)

    with pytest.raises(ConfigError, match="no candidates"):
        make(tiny, RewardsOnly(), checkpoint_dir=str(tmp_path / "x")).train()


def test_constrained_hands_the_candidates_to_the_sampler(tiny, service, tmp_path):
    class Recording:  # the dummy policy, recording what generate was given
        def __init__(self, policy):
            self.policy, self.given = policy, []

        def __getattr__(self, name):
            return getattr(self.policy, name)

        def generate(self, prompts, num_samples=1, greedy=False, **kw):
            self.given.append(kw.get("candidates"))
            return self.policy.generate(prompts, num_samples, greedy, **kw)

    for constrained in (False, True):
        trainer = make(tiny, FusedStandIn(service, tiny), constrained=constrained, num_steps=1,
                       checkpoint_dir=str(tmp_path / str(constrained)))
        trainer.policy = Recording(trainer.policy)
        trainer.train_step()
        (given,) = trainer.policy.given
        assert (given is not None) == constrained and (given is None or all(len(c) == K for c in given))


def test_a_run_whose_groups_never_spread_warns_once(tiny, service, tmp_path, caplog):
    class Flat(FusedStandIn):  # every text of a user gets the same reward: GRPO has nothing to learn
        def compute_rewards(self, texts, dataset_name, targets, histories=None, **kw):
            out = super().compute_rewards(texts, dataset_name, targets, histories, **kw)
            out.rewards = torch.zeros_like(out.rewards)
            return out

    with caplog.at_level("WARNING", logger="rl4rec_core.training.diagnostics"):
        make(tiny, Flat(service, tiny), checkpoint_dir=str(tmp_path / "flat")).train()
    warned = [r.getMessage() for r in caplog.records if "groups have rewards that are all equal" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("step 0: 100%")
    records = [json.loads(line) for line in (tmp_path / "flat" / "training_log.jsonl").read_text().splitlines()]
    assert [r["frac_zero_spread"] for r in records] == [1.0] * 4 and all(r["reward_std_within"] == 0 for r in records)
