"""One settings model: ``rl4rec train``'s flags, the flows' parameters and the defaults agree."""

from __future__ import annotations

import argparse
import dataclasses
import inspect

import pytest

from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import GROUPS, PolicySettings, Settings


def _train_parser() -> argparse.ArgumentParser:
    from rl4rec_core.cli import train

    parser = argparse.ArgumentParser()
    train.register(parser.add_subparsers())
    return parser._subparsers._group_actions[0].choices["train"]


def _train_flags() -> dict[str, object]:
    """dest -> default of every `rl4rec train` flag (aliases such as --use_dummy share a dest)."""
    parser = _train_parser()
    return {a.dest: parser.get_default(a.dest) for a in parser._actions if a.dest != "help"}


def _flow_leaves(flow) -> dict[str, object]:
    """field -> default of every leaf of a flow's parameters (settings groups are expanded)."""
    out: dict[str, object] = {}
    for name, param in inspect.signature(flow.fn).parameters.items():
        default = param.default
        if dataclasses.is_dataclass(default):
            out.update({f.name: getattr(default, f.name) for f in dataclasses.fields(default)})
        else:
            out[name] = default
    return out


def test_every_train_flag_is_a_training_flow_parameter_with_the_same_default_and_back():
    from flows.pipeline import training_flow
    from rl4rec_core.cli.train import CLI_ONLY_FLAGS

    flags = {k: v for k, v in _train_flags().items() if k not in CLI_ONLY_FLAGS}
    leaves = _flow_leaves(training_flow)
    # MLflow, the registry and Ray placement exist only where a flow runs: the CLI trainer has none
    flow_only = {"experiment", "model_name", "promote", "num_gpus", "train_cpus", "register_policy", "log_transformers"}
    assert {k: leaves[k] for k in flags if k in leaves} == flags, "a flag's default differs from the flow's"
    assert set(flags) - set(leaves) == set(), "a train flag the training flow cannot set"
    assert set(leaves) - set(flags) == flow_only, "a training-flow parameter the CLI cannot set"


@pytest.mark.parametrize("flow_name", ["pipeline_flow", "training_flow"])
def test_every_training_setting_reaches_the_pipeline_and_training_flows(flow_name):
    import flows.pipeline

    leaves = _flow_leaves(getattr(flows.pipeline, flow_name))
    for name, group in GROUPS.items():
        for f in dataclasses.fields(group):
            assert f.name in leaves, f"{name}.{f.name} is not a parameter of {flow_name}"


def test_retraining_flow_takes_every_training_setting():
    from flows.retraining import retraining_flow

    leaves = _flow_leaves(retraining_flow)
    assert all(f.name in leaves for g in GROUPS.values() for f in dataclasses.fields(g))


def test_defaults_are_the_recipe_and_are_declared_once():
    s = Settings()
    assert (s.trainer.num_steps, s.algorithm.reward, s.algorithm.kl_coef, s.policy.max_new_tokens) == (
        40, "log_rank", 0.05, 24)
    flags = _train_flags()
    for group in GROUPS.values():
        for f in dataclasses.fields(group):
            assert flags[f.name] == getattr(group(), f.name), f.name


def test_settings_of_flat_names_and_the_checkpoint_tree_round_trip():
    s = Settings.of(dataset_name="tiny", use_dummy=True, num_steps=3, temperature=0.7)
    assert s.policy.use_dummy and s.trainer.num_steps == 3 and s.policy.temperature == 0.7
    assert Settings.from_dict(s.to_dict()) == s
    # a checkpoint written before the settings model (flat TrainConfig) still reads
    old = {"dataset_name": "tiny", "num_steps": 5, "use_dummy": True, "progress": False, "extra": {}}
    assert Settings.from_dict(old) == Settings.of(dataset_name="tiny", num_steps=5, use_dummy=True)
    with pytest.raises(ConfigError, match="unknown settings.*'nmu_steps'"):
        Settings.of(nmu_steps=3)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"temperature": 0}, "temperature must be > 0"),
        ({"top_p": 1.5}, "top_p"),
        ({"policy": "gpt"}, "unknown policy 'gpt'"),
        ({"history_len": 0}, "history_len must be a positive integer"),
    ],
)
def test_policy_settings_reject_bad_values_with_the_fix(kw, match):
    with pytest.raises(ConfigError, match=match):
        PolicySettings(**kw)


def test_the_raw_data_encoding_is_a_setting_the_cli_and_flows_share():
    from rl4rec_core.settings import RunSettings

    assert _train_flags()["encoding"] == RunSettings().encoding == "utf-8"
    with pytest.raises(ConfigError, match="--encoding 'klingon'"):
        RunSettings(encoding="klingon")


def test_a_flow_group_can_be_given_as_json():
    """What a deployment sends: a dict per group, validated by Prefect into the dataclass."""
    from prefect.utilities.callables import parameter_schema

    from flows.pipeline import pipeline_flow

    schema = parameter_schema(pipeline_flow).model_dump()
    assert {"run", "retrieval", "policy", "algorithm", "trainer", "recipe", "evaluation", "tracking",
            "resources"} == set(schema["properties"])
    assert schema["properties"]["policy"]["default"]["max_new_tokens"] == 24
