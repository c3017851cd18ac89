"""One settings model: every setting has one name and one default in every command, every flow and every
deployment of prefect.yaml, and the name tables agree with the registries that use them."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest
import yaml

from flows.cli import EXTRA_COMMANDS
from rl4rec_core.cli import COMMANDS, build_parser
from rl4rec_core.errors import ConfigError, Rl4recError
from rl4rec_core.settings import (
    ALL_GROUPS,
    GROUPS,
    PROFILES,
    PolicySettings,
    RunSettings,
    Settings,
    apply_profile,
    default_of,
    field_names,
)

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {f.name: (group, f) for group, cls in ALL_GROUPS.items() for f in dataclasses.fields(cls)}
# what each command needs besides settings to parse (its required flags); its settings flags are all left out
REQUIRED = {"ab": ["--a", "popularity", "--b", "echo"]}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    return dict(sub.choices) if sub else {}


def _command_parsers() -> dict[str, tuple[argparse.ArgumentParser, object]]:
    """``{"evaluate": (parser, module), "data prepare": (...), ...}`` of every command (and action)."""
    top = build_parser(commands={**COMMANDS, **EXTRA_COMMANDS})
    out = {}
    for name, parser in _subparsers(top).items():
        module = importlib.import_module({**COMMANDS, **EXTRA_COMMANDS}[name][0])
        actions = _subparsers(parser)
        out.update({f"{name} {a}": (p, module) for a, p in actions.items()} if actions else {name: (parser, module)})
    return out


PARSERS = _command_parsers()


def _allowed(field: dataclasses.Field) -> set[str]:
    """The option strings of a field's flag: its name (and --no_ for a switch), declared aliases and shortcuts."""
    name = field.name
    return {f"--{name}", f"--no_{name}", f"--no-{name}", *field.metadata.get("aliases", ()),
            *field.metadata.get("shortcuts", {})}


def test_every_field_name_is_unique_across_the_groups():
    names = [f.name for cls in ALL_GROUPS.values() for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names)), "a flat name (a flag, a profile key) would be ambiguous"


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_a_command_names_each_setting_by_its_field_and_nothing_else_by_a_setting_name(command):
    parser, _ = PARSERS[command]
    taken = {opt: name for name, (_, f) in FIELDS.items() for opt in _allowed(f)}
    for action in parser._actions:
        if action.dest in FIELDS:
            extra = set(action.option_strings) - _allowed(FIELDS[action.dest][1])
            assert not extra, f"{command}: {extra} set the setting {action.dest}"
            default = FIELDS[action.dest][1]
            assert action.default in (default_of(default), None, argparse.SUPPRESS), (command, action.dest)
        for opt in action.option_strings:
            assert taken.get(opt, action.dest) == action.dest, f"{command}: {opt} is a setting's flag but sets {action.dest}"


@pytest.mark.parametrize("command", sorted(c for c in PARSERS if hasattr(PARSERS[c][1], "SETTINGS")))
def test_a_command_left_alone_builds_the_default_groups(command):
    """Every settings flag a command declares exists, and not giving any gives the settings' defaults."""
    from rl4rec_core.cli.flags import groups_from_args

    parser, module = PARSERS[command]
    selection = getattr(module, "INFO_SETTINGS", None) if command == "data info" else module.SETTINGS
    dests = {a.dest for a in parser._actions}
    for group, fields in selection.items():
        missing = set(fields or field_names(ALL_GROUPS[group])) - dests
        assert not missing, f"{command} lacks the flags of {group}.{sorted(missing)}"
    args = parser.parse_args(REQUIRED.get(command, []))
    assert groups_from_args(args, selection) == {g: ALL_GROUPS[g]() for g in selection}


def _flows():
    from flows.pipeline import embedding_flow, evaluation_flow, pipeline_flow, training_flow
    from flows.retraining import retraining_flow

    return {f.name: f for f in (pipeline_flow, embedding_flow, training_flow, evaluation_flow, retraining_flow)}


@pytest.mark.parametrize("flow_name", sorted(_flows()))
def test_a_flow_takes_each_group_by_its_name_with_the_settings_defaults(flow_name):
    params = inspect.signature(_flows()[flow_name].fn).parameters
    for name, param in params.items():
        if name in ALL_GROUPS:
            assert param.annotation in (ALL_GROUPS[name], ALL_GROUPS[name].__name__), name
            assert param.default == ALL_GROUPS[name](), f"{flow_name}: {name}'s default is not the settings'"
        else:
            assert name not in FIELDS, f"{flow_name}: parameter {name} is a setting; it belongs in its group"
    if flow_name in ("rl4rec-pipeline", "rl4rec-retraining"):
        assert set(ALL_GROUPS) <= set(params), "a pipeline takes every group"


def test_every_prefect_deployment_names_real_settings_and_validates():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for dep in spec["deployments"]:
        module, _, fn = dep["entrypoint"].partition(":")
        flow = getattr(importlib.import_module(module), fn)
        params = dep.get("parameters", {})
        assert set(params) <= set(inspect.signature(flow.fn).parameters), dep["name"]
        for name, value in params.items():
            if name in ALL_GROUPS:
                assert set(value) <= field_names(ALL_GROUPS[name]), f"{dep['name']}: unknown {name} fields"
                ALL_GROUPS[name](**value)  # the group's checks
        flow.validate_parameters(params)  # what Prefect runs before the flow


def test_the_quick_profile_is_defined_once():
    """`rl4rec run --quick` and the pipeline-quick deployment both use settings.PROFILES["quick"]."""
    from flows.run_cli import flow_parameters

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    quick = next(d for d in spec["deployments"] if d["name"] == "pipeline-quick")
    assert quick["parameters"]["profile"] == "quick"
    restated = {k for g, v in quick["parameters"].items() if g in ALL_GROUPS for k in v} & set(PROFILES["quick"])
    assert not restated, f"pipeline-quick restates the profile's {sorted(restated)}"
    parser = build_parser(commands={**COMMANDS, **EXTRA_COMMANDS})
    cli = flow_parameters(parser.parse_args(["run", "--quick"]))
    deployed = apply_profile({g: cls() for g, cls in ALL_GROUPS.items()}, "quick")
    assert cli == deployed and cli["policy"].policy == "dummy"
    # a flag given wins over the profile, even when it is the recipe's value
    kept = flow_parameters(parser.parse_args(["run", "--quick", "--kl_coef", "0.05"]))
    assert kept["algorithm"].kl_coef == 0.05 and kept["trainer"].num_steps == 20


def test_the_name_tables_are_the_registries_names():
    from rl4rec_core.evaluation.baselines import BUILDERS
    from rl4rec_core.policy.registry import POLICY_BUILDERS
    from rl4rec_core.retrieval import rewards
    from rl4rec_core.settings import BASELINES, POLICIES, REWARD_FAMILIES, REWARDS

    assert set(BUILDERS) == set(BASELINES) and set(POLICY_BUILDERS) == set(POLICIES)
    assert set(rewards._REWARDS) == set(REWARDS) and set(rewards._FAMILIES) == set(REWARD_FAMILIES)


def test_defaults_are_the_recipe():
    s = Settings()
    assert (s.trainer.num_steps, s.algorithm.reward, s.algorithm.kl_coef, s.policy.max_new_tokens) == (
        40, "log_rank", 0.05, 24)
    assert s.learning_rate == 2e-4 and Settings.of(policy="dummy").learning_rate == 0.05


def test_settings_of_flat_names_and_the_checkpoint_tree_round_trip():
    s = Settings.of(dataset_name="tiny", policy="dummy", num_steps=3, temperature=0.7)
    assert s.policy.policy == "dummy" and s.trainer.num_steps == 3 and s.policy.temperature == 0.7
    assert Settings.from_dict(s.to_dict()) == s
    with pytest.raises(ConfigError, match="unknown settings.*'nmu_steps'"):
        Settings.of(nmu_steps=3)
    with pytest.raises(ConfigError, match="not a settings tree"):  # the flat config of before the tree
        Settings.from_dict({"dataset_name": "tiny", "num_steps": 5})


def test_building_settings_runs_no_user_code_and_imports_only_the_standard_library():
    """An import-path reward is checked by its form here and imported when the trainer starts."""
    import subprocess
    import sys

    code = ("import sys; from rl4rec_core.settings import AlgorithmSettings; "
            "AlgorithmSettings(reward='no_such_pkg.mod:fn'); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pandas', 'numpy', 'no_such_pkg'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    with pytest.raises(ConfigError, match="known rewards"):
        Settings.of(reward="ndcg")


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"temperature": 0}, "temperature must be a number > 0"),
        ({"top_p": 1.5}, "top_p"),
        ({"policy": "gpt"}, "unknown policy 'gpt'"),
        ({"history_len": 0}, "history_len must be a positive integer"),
    ],
)
def test_policy_settings_reject_bad_values_with_the_fix(kw, match):
    with pytest.raises(ConfigError, match=match):
        PolicySettings(**kw)


def test_the_hybrid_weights_are_retrieval_settings_that_override_the_tuned_file():
    from rl4rec_core.settings import RetrievalSettings

    assert RetrievalSettings(beta=0.1, history_m=3).weight_overrides == {"beta": 0.1, "history_m": 3}
    with pytest.raises(ConfigError, match="--scorer is cosine"):
        RetrievalSettings(scorer="cosine", beta=0.1)
    with pytest.raises(ConfigError, match="history_m must be a positive integer"):
        RetrievalSettings(history_m=0)


def test_the_raw_data_encoding_is_a_setting_the_cli_and_flows_share():
    assert RunSettings().encoding == "utf-8"
    with pytest.raises(ConfigError, match="--encoding 'klingon'"):
        RunSettings(encoding="klingon")


def test_a_flow_group_can_be_given_as_json():
    """What a deployment sends: a dict per group, validated by Prefect into the dataclass."""
    from prefect.utilities.callables import parameter_schema

    from flows.pipeline import pipeline_flow

    schema = parameter_schema(pipeline_flow).model_dump()
    assert set(ALL_GROUPS) | {"profile"} == set(schema["properties"])
    assert schema["properties"]["policy"]["default"]["max_new_tokens"] == 24
    assert set(GROUPS) <= set(schema["properties"])


def test_rl4rec_run_defaults_to_the_fused_recipe_and_flags_given_win():
    """`rl4rec run` (and the pipeline deployment) run PROFILES["recipe"]: SASRec as the base, its top 5 as
    constrained candidates; `--profile text` is the settings' own defaults (the text-only design)."""
    from flows.run_cli import flow_parameters

    parser = build_parser(commands={**COMMANDS, **EXTRA_COMMANDS})
    recipe = flow_parameters(parser.parse_args(["run"]))
    assert (recipe["fusion"].base, recipe["fusion"].num_candidates, recipe["fusion"].constrained) == ("sasrec", 5, True)
    assert (recipe["policy"].history_len, recipe["recipe"].sft_steps, recipe["trainer"].num_steps) == (5, 40, 24)
    text = flow_parameters(parser.parse_args(["run", "--profile", "text"]))
    assert text == {g: cls() for g, cls in ALL_GROUPS.items()} and text["fusion"].base == "none"
    mine = flow_parameters(parser.parse_args(["run", "--base", "echo+prior", "--num_steps", "3"]))
    assert (mine["fusion"].base, mine["trainer"].num_steps, mine["fusion"].constrained) == ("echo+prior", 3, True)
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert next(d for d in spec["deployments"] if d["name"] == "pipeline")["parameters"]["profile"] == "recipe"
    with pytest.raises(Rl4recError, match="--quick"):
        flow_parameters(parser.parse_args(["run", "--quick", "--profile", "text"]))
