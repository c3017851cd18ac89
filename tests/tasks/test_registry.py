"""The model registry on a real SQLite store: a trained dummy-policy checkpoint is logged, registered,
aliased, and loaded back by alias to generate recommendation texts."""

from __future__ import annotations

import pytest

from rl4rec_core.checkpoints import save_checkpoint
from rl4rec_core.errors import MissingArtifactError
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.policy.dummy import DummyRecPolicy
from rl4rec_core.settings import TrackingSettings
from tasks import registry
from tasks import tracking as mt

TITLES = ["Alien (1979) Horror Sci-Fi", "Unforgiven (1992) Western", "Shining, The (1980) Horror",
          "Tombstone (1993) Western", "Brazil (1985) Sci-Fi"]


def _checkpoint(tmp_path, seed=0):
    policy = DummyRecPolicy.from_item_texts(TITLES, PolicyConfig.from_fields(policy="dummy", seed=seed, kl_coef=0.0))
    prompts = policy.build_prompts([["Alien"], ["Unforgiven"]])
    texts = policy.generate(prompts, num_samples=4)
    import torch

    # reward "western" texts so the trained policy differs from the untrained one
    rewards = torch.tensor([float("western" in t) for t in texts])
    policy.update([p for p in prompts for _ in range(4)], texts, rewards)
    return save_checkpoint(tmp_path / "ckpt" / "checkpoint_final", policy, {"step": 1},
                           {"policy": {"policy": "dummy"}, "run": {"dataset_name": "tiny"}}), policy


def test_register_alias_promote_and_load_back(store):
    ckpt, trained = _checkpoint(store)
    name = TrackingSettings().registered_name("tiny")
    assert name == "rl4rec-tiny"
    with mt.tracked_run(run_name="reg", experiment="rl4rec-test") as run_id:
        uri = registry.log_policy_model(run_id, ckpt)
        version = registry.register_policy(uri, name)
    assert registry.alias_version(name, registry.CHALLENGER) == version
    assert registry.champion_version(name) is None
    assert registry.wants_promotion(name, "first") and not registry.wants_promotion(name, "never")
    with pytest.raises(MissingArtifactError, match="champion"):
        registry.load_policy_by_alias(name, registry.CHAMPION)
    registry.set_alias(name, version, registry.CHAMPION)
    assert registry.champion_version(name) == version
    assert not registry.wants_promotion(name, "first") and registry.wants_promotion(name, "always")
    model = registry.load_policy_by_alias(name, registry.CHAMPION)
    histories = [["Alien (1979)", "Brazil (1985)"], ["Unforgiven (1992)"]]
    answers = model.predict([{"history": h} for h in histories])
    expected = trained.generate(trained.build_prompts(histories), greedy=True)
    assert [a.text for a in answers] == expected and all(isinstance(a.text, str) and a.text for a in answers)
    loaded = model.unwrap_python_model().policy
    assert isinstance(loaded, DummyRecPolicy)
    assert registry.version_checkpoint(name, alias=registry.CHAMPION).joinpath("trainer_state.json").is_file()


def test_policy_kind_from_the_saved_policy_else_the_config(tmp_path):
    import json

    from rl4rec_core.checkpoints import policy_kind

    ckpt, _ = _checkpoint(tmp_path)
    assert policy_kind(ckpt) == "dummy"
    (tmp_path / "old" / "policy").mkdir(parents=True)  # no policy.json: the run's settings name the kind
    (tmp_path / "old" / "config.json").write_text(json.dumps({"policy": {"policy": "llm"}}))
    assert policy_kind(tmp_path / "old") == "llm"
    with pytest.raises(MissingArtifactError, match="not a training checkpoint"):
        policy_kind(tmp_path)


def test_registration_and_decision_are_recorded_in_the_run(store):
    from flows.promotion import decide_promotion

    decision = decide_promotion([1, 2, 30], [5, 8, 40], n_bootstrap=50)
    with mt.tracked_run(run_name="decide", experiment="rl4rec-test") as run_id:
        registry.record_registration(run_id, "rl4rec-tiny", 3, promoted=False)
        registry.record_decision(run_id, decision, challenger_version=3, champion_before=None)
    run = mt.client().get_run(run_id)
    assert run.data.tags["rl4rec.registered_version"] == "3" and run.data.tags["rl4rec.promoted"] == "False"
    assert run.data.tags["rl4rec.decision"] == ("promoted" if decision.promote else "kept_champion")
    assert run.data.tags["rl4rec.champion_version_before"] == "none"
    assert run.data.metrics["decision/users"] == 3
    assert run.data.metrics["decision/promoted"] == float(decision.promote)
    assert "decision/reason" not in run.data.metrics


def test_registered_name_template_is_checked():
    assert TrackingSettings(model_name="recs-{dataset}-v2").registered_name("ml-100k") == "recs-ml-100k-v2"
    from rl4rec_core.errors import ConfigError

    with pytest.raises(ConfigError, match="dataset"):
        TrackingSettings(model_name="recs-{data}")


@pytest.mark.slow
def test_llm_policy_registers_as_pyfunc_and_transformers(store):
    import mlflow

    from rl4rec_core.policy.config import PolicyConfig

    from rl4rec_core.policy.rec_policy import RecPolicy
    from tests.helpers.tiny_lm import make_tiny_lm

    lm = make_tiny_lm(store / "tiny_lm")
    policy = RecPolicy(PolicyConfig.from_fields(policy_model=lm, max_new_tokens=6, kl_coef=0.0))
    ckpt = save_checkpoint(store / "llm_ckpt" / "checkpoint_final", policy, {"step": 0},
                           {"policy": {"policy": "llm", "policy_model": lm}})
    with mt.tracked_run(run_name="llm", experiment="rl4rec-test") as run_id:
        uri = registry.log_policy_model(run_id, ckpt, log_transformers=True)
        version = registry.register_policy(uri, "rl4rec-tiny-llm", alias=registry.CHAMPION)
    model = registry.load_policy_by_alias("rl4rec-tiny-llm", registry.CHAMPION)
    [answer] = model.predict([{"history": ["toy story (1995)", "heat (1995)"]}])
    assert isinstance(answer.text, str) and isinstance(model.unwrap_python_model().policy, RecPolicy)
    tf_uri = mt.client().get_run(run_id).data.tags["rl4rec.transformers_model_uri"]
    pipe = mlflow.transformers.load_model(tf_uri)
    assert pipe.task == "text-generation"
    assert isinstance(pipe("<user> toy story <assistant>", max_new_tokens=3)[0]["generated_text"], str)
    assert version == 1
