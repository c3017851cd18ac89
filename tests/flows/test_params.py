"""FlowParams' checks that span groups: refused at the start of a flow, not after training."""

from __future__ import annotations

import pytest

from rl4rec_core.errors import ConfigError
from tests.helpers.tiny_recdata import write_tiny_dataset


def test_echo_prior_without_tuning_or_a_tuned_file_is_refused_up_front(rl4rec_dirs):
    from flows.params import FlowParams
    from rl4rec_core.retrieval.hybrid import settings_path
    from rl4rec_core.settings import EvaluationSettings, RecipeSettings, RetrievalSettings, RunSettings

    write_tiny_dataset(rl4rec_dirs["data"], "tiny-ml")
    run, off = RunSettings(dataset_name="tiny-ml"), RecipeSettings(tune_retrieval=False)
    with pytest.raises(ConfigError, match="echo\\+prior baseline ranks with tuned retrieval settings.*tiny-ml.*"
                                          "--baselines popularity echo"):
        FlowParams.of(run=run, recipe=off).check_inputs()
    # without echo+prior, with tuning, with the weights given, or with a tuned file already there: accepted
    FlowParams.of(run=run, recipe=off, evaluation=EvaluationSettings(baselines=["popularity", "echo"])).check_inputs()
    FlowParams.of(run=run).check_inputs()
    FlowParams.of(run=run, recipe=off, retrieval=RetrievalSettings(beta=0.1)).check_inputs()
    r = RetrievalSettings()
    path = settings_path("tiny-ml", r.emb_type, r.emb_model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    FlowParams.of(run=run, recipe=off).check_inputs()


def test_flow_params_hold_a_training_run_and_a_given_start_replaces_sft(rl4rec_dirs):
    from flows.params import FlowParams
    from rl4rec_core.settings import PolicySettings, ResourceSettings, Settings

    p = FlowParams.of(policy=PolicySettings(init_from="somewhere"), resources=ResourceSettings(num_gpus=1))
    assert isinstance(p.settings, Settings) and not isinstance(p, Settings)
    assert p.policy is p.settings.policy and p.recipe.sft_steps == 250
    assert not p.runs_sft  # the start replaces the recipe's SFT: one rule, in one place
    assert FlowParams.of().runs_sft and not FlowParams.of(policy=PolicySettings(policy="dummy")).runs_sft
    assert p.training_settings("out").run.device == "cuda" and p.training_settings("out").trainer.checkpoint_dir == "out"
    with pytest.raises(Exception, match="--init_from somewhere: no such folder"):
        p.check_inputs()
