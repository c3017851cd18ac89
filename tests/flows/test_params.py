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
        FlowParams(run=run, recipe=off)
    # without echo+prior, with tuning, or with a tuned file already there: accepted
    FlowParams(run=run, recipe=off, evaluation=EvaluationSettings(baselines=["popularity", "echo"]))
    FlowParams(run=run)
    r = RetrievalSettings()
    path = settings_path("tiny-ml", r.emb_type, r.emb_model_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    FlowParams(run=run, recipe=off)
