"""The crafted checkpoints of issue 22 (each with a manifest that agrees, as an attacker's would): every one
is skipped with a one-line warning and ``--resume`` continues from the newest intact checkpoint; a reward
named in a checkpoint is never imported."""

from __future__ import annotations

import json
import logging
import random
import sys

import pytest

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.registry import build_policy
from rl4rec_core.settings import Settings
from rl4rec_core.training.trainer import RLTrainer
from tests.helpers import crafted_checkpoints as cc


def make(tiny, service, run, **kw):
    cfg = Settings.of(**{"dataset_name": tiny.name, "num_steps": 12, "batch_size": 8, "group_size": 4,
                         "policy": "dummy", "save_every": 5, "log_every": 5, "reward": "ndcg@10", "kl_coef": 0.0,
                         "checkpoint_dir": str(run), **kw})
    return RLTrainer(cfg, build_policy(cfg, tiny), service, tiny, progress=False)


@pytest.fixture
def finished(tiny, service, tmp_path):
    """A finished 12-step run: checkpoint_step_5, checkpoint_step_10 and checkpoint_final (step 12)."""
    make(tiny, service, tmp_path / "run").train()
    return tmp_path / "run"


def _deep(name):
    def craft(ckpt):
        (ckpt / name).write_text("[" * 100_000 + "]" * 100_000)
    return craft


def _state_pt(change):
    def craft(ckpt):
        import torch

        state = torch.load(ckpt / "policy" / "state.pt", weights_only=True)
        change(state)
        torch.save(state, ckpt / "policy" / "state.pt")
    return craft


def _trainer_state(**values):
    def craft(ckpt):
        state = json.loads((ckpt / "trainer_state.json").read_text())
        (ckpt / "trainer_state.json").write_text(json.dumps({**state, **values}))
    return craft


def _optimizer_of_the_wrong_form(state):
    state["optimizer"]["param_groups"][0]["params"] = [0]
    state["optimizer"]["state"] = {0: {"step": 3}}


CRAFTED = {
    "config.json nested": (_deep("config.json"), "nests lists or objects more than 32 deep"),
    "trainer_state.json nested": (_deep("trainer_state.json"), "nests lists or objects more than 32 deep"),
    "manifest.json nested": (_deep("manifest.json"), "nests lists or objects more than 32 deep"),
    "weights of another shape": (_state_pt(lambda s: s.update(weight=s["weight"][:, :-1].clone())),
                                 "(weight) is damaged or for another model"),
    "optimizer of the wrong form": (_state_pt(_optimizer_of_the_wrong_form), "(optimizer) is damaged or for another model"),
    "a 1 GiB tensor in 1 MB": (lambda c: cc.inflating_record(random.Random(0), c), "is compressed"),
    "step -5": (_trainer_state(step=-5), "step -5 is not an integer in [0, 12]"),
    "step 1e30": (_trainer_state(step=1e30), "step 1e+30 is not an integer in [0, 12]"),
    "step 3.9": (_trainer_state(step=3.9), "step 3.9 is not an integer in [0, 12]"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_newest_checkpoint_is_skipped_in_one_line(tiny, service, finished, caplog, case):
    craft, why = CRAFTED[case]
    craft(finished / "checkpoint_final")
    if "manifest" not in case:
        cc.refresh(finished / "checkpoint_final")
    caplog.set_level(logging.WARNING)
    resumed = make(tiny, service, finished, num_steps=13, resume=True)
    assert resumed.train()["resumed_from"] == 10
    [skipped] = [r.getMessage() for r in caplog.records if "--resume: skipping" in r.getMessage()]
    assert why in skipped and "\n" not in skipped and len(skipped) < 1500, skipped


def test_a_reward_named_in_a_checkpoint_is_never_imported(tiny, service, finished, tmp_path, monkeypatch):
    """The saved config names `planted.reward:fn`, whose import would create a file; `--resume` with another
    reward is refused naming both, and the module is never imported (with --override_config neither)."""
    package = tmp_path / "lib" / "planted"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    marker = tmp_path / "imported"
    (package / "reward.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef fn(ranks, **kw): return ranks\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    for ckpt in ("checkpoint_final", "checkpoint_step_10", "checkpoint_step_5"):
        path = finished / ckpt / "config.json"
        config = json.loads(path.read_text())
        config["algorithm"]["reward"] = "planted.reward:fn"
        path.write_text(json.dumps(config))
        cc.refresh(finished / ckpt)
    with pytest.raises(ConfigError, match=r"algorithm.reward \(saved 'planted.reward:fn', given 'ndcg@10'\)"):
        make(tiny, service, finished, num_steps=13, resume=True).train()
    assert make(tiny, service, finished, num_steps=13, resume=True, override_config=True).train()["steps"] == 13
    assert not marker.exists() and "planted.reward" not in sys.modules
