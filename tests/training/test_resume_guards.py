"""What ``--resume`` compares beyond the settings, and what it leaves alone: the scorer that made the rewards
(a run trained with plain cosine may not go on under the hybrid scorer a later ``tune-retrieval`` wrote),
and a ``training_log.jsonl`` with a garbage line in the middle (an error, as ``TrainingLog.read`` has it)."""

from __future__ import annotations

import json

import pytest

from rl4rec_core.checkpoints import read_checkpoint
from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.policy.registry import build_policy
from rl4rec_core.retrieval.hybrid import HybridWeights, TunedRetrieval, save_tuned, settings_path
from rl4rec_core.settings import Settings
from rl4rec_core.training.trainer import RLTrainer
from tests.helpers.tiny_recdata import WordVectorEncoder, make_service


def make(tiny, run, **kw):
    """A trainer over a fresh service: it reads the dataset's tuned settings file when there is one."""
    cfg = Settings.of(**{"dataset_name": tiny.name, "num_steps": 6, "batch_size": 8, "group_size": 4,
                         "policy": "dummy", "save_every": 3, "log_every": 3, "reward": "ndcg@10",
                         "checkpoint_dir": str(run), **kw})
    service = make_service(tiny, WordVectorEncoder(), **cfg.retrieval.weight_overrides)
    return RLTrainer(cfg, build_policy(cfg, tiny), service, tiny, progress=False)


def _tune(tiny, beta: float) -> None:
    """What `rl4rec tune-retrieval` leaves: the dataset's settings file beside its embeddings."""
    path = settings_path(tiny.name, "item", WordVectorEncoder.model_name)
    save_tuned(path, TunedRetrieval(tiny.name, HybridWeights(beta=beta, alpha=0.5, history_m=3),
                                    [1] * tiny.num_items), WordVectorEncoder.model_name, "item")


def test_the_checkpoint_records_the_scorer_that_made_its_rewards(tiny, tmp_path):
    make(tiny, tmp_path / "run").train()
    _, config = read_checkpoint(tmp_path / "run" / "checkpoint_final")
    assert config["scoring"] == {tiny.name: {"scorer": "cosine", "beta": 0.0, "alpha": 0.0, "history_m": 1,
                                             "settings_sha256": None}}
    _tune(tiny, beta=0.05)
    make(tiny, tmp_path / "tuned").train()
    _, config = read_checkpoint(tmp_path / "tuned" / "checkpoint_final")
    record = config["scoring"][tiny.name]
    assert (record["scorer"], record["beta"], record["alpha"], record["history_m"]) == ("hybrid", 0.05, 0.5, 3)
    assert len(record["settings_sha256"]) == 64


def test_weights_given_over_the_tuned_file_are_what_the_checkpoint_records(tiny, tmp_path):
    """--beta and --history_m override the tuned file's weights (resolve_tuned): the record holds the weights
    that scored the rewards, and the file they were laid over."""
    _tune(tiny, beta=0.05)  # alpha 0.5, m 3
    make(tiny, tmp_path / "run", beta=0.2, history_m=5).train()
    _, config = read_checkpoint(tmp_path / "run" / "checkpoint_final")
    record = config["scoring"][tiny.name]
    assert (record["scorer"], record["beta"], record["alpha"], record["history_m"]) == ("hybrid", 0.2, 0.5, 5)
    assert len(record["settings_sha256"]) == 64


def test_a_scorer_changed_under_a_run_is_refused_unless_overridden(tiny, tmp_path):
    run = tmp_path / "run"
    make(tiny, run).train()
    log_before = (run / "training_log.jsonl").read_text()
    _tune(tiny, beta=0.05)  # tune-retrieval writes its file; scorer=auto now picks the hybrid scorer
    with pytest.raises(ConfigError) as e:
        make(tiny, run, num_steps=8, resume=True).train()
    text = str(e.value)
    assert "\n" not in text and "--override_config" in text
    assert f"scoring.{tiny.name}.scorer (saved 'cosine', given 'hybrid')" in text
    assert f"scoring.{tiny.name}.beta (saved 0.0, given 0.05)" in text and "settings_sha256" in text
    assert (run / "training_log.jsonl").read_text() == log_before
    assert make(tiny, run, num_steps=8, resume=True, override_config=True).train()["steps"] == 8
    state, config = read_checkpoint(run / "checkpoint_final")
    assert state["config_changes"][0]["changes"][f"scoring.{tiny.name}.scorer"] == {"saved": "cosine",
                                                                                    "given": "hybrid"}
    assert config["scoring"][tiny.name]["scorer"] == "hybrid"
    _tune(tiny, beta=0.2)  # tuned again: other weights, another file
    with pytest.raises(ConfigError, match=rf"scoring.{tiny.name}.beta \(saved 0.05, given 0.2\)"):
        make(tiny, run, num_steps=9, resume=True).train()


def test_a_garbage_line_in_the_middle_of_the_log_stops_resume_and_is_kept(tiny, tmp_path):
    run = tmp_path / "run"
    make(tiny, run).train()
    log = run / "training_log.jsonl"
    lines = log.read_text().splitlines()
    garbage = "x" * 20_000_000
    log.write_text("\n".join([*lines[:2], garbage, *lines[2:]]) + "\n")
    before = log.read_bytes()
    with pytest.raises(DataError) as e:
        make(tiny, run, num_steps=8, resume=True).train()
    assert "training_log.jsonl line 3 is not a JSON record" in str(e.value) and "\n" not in str(e.value)
    assert len(str(e.value)) < 500
    assert log.read_bytes() == before  # nothing deleted without a word
    with pytest.raises(DataError, match="line 3"):
        make(tiny, run).log.read()


def test_a_torn_last_line_is_still_dropped_on_resume(tiny, tmp_path):
    """What a kill leaves: half a line at the end. That one alone is dropped, as before."""
    run = tmp_path / "run"
    make(tiny, run).train()
    log = run / "training_log.jsonl"
    log.write_text(log.read_text() + '{"step": 6, "lo')
    assert make(tiny, run, num_steps=7, resume=True).train()["steps"] == 7
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == list(range(7))


class TableBase:
    """A base recommender whose record names its version (as a SASRec checkpoint's sha256 would)."""

    def __init__(self, num_items: int, version: int):
        self.num_items, self.version = num_items, version

    def score(self, histories):
        import torch

        return torch.arange(self.num_items, dtype=torch.float32).repeat(len(histories), 1)

    def record(self):
        return {"base": "table", "version": self.version}


def test_a_base_recommender_changed_under_a_run_is_refused(tiny, tmp_path):
    from rl4rec_core.retrieval import RetrievalService
    from rl4rec_core.settings import FusionSettings, RetrievalSettings

    def fused(run, version, **kw):
        cfg = Settings.of(**{"dataset_name": tiny.name, "num_steps": 3, "batch_size": 8, "group_size": 4,
                             "policy": "dummy", "save_every": 3, "log_every": 3, "reward": "ndcg@10",
                             "checkpoint_dir": str(run), **kw})
        plain = make_service(tiny, WordVectorEncoder())
        service = RetrievalService(RetrievalSettings(emb_model_name=WordVectorEncoder.model_name),
                                   encoder=plain.encoder, embeddings={tiny.name: plain._items[tiny.name].clone()},
                                   fusion=FusionSettings(), bases={tiny.name: TableBase(tiny.num_items, version)})
        return RLTrainer(cfg, build_policy(cfg, tiny), service, tiny, progress=False)

    run = tmp_path / "run"
    fused(run, 1).train()
    _, config = read_checkpoint(run / "checkpoint_final")
    assert config["scoring"][tiny.name]["fusion_base"] == {"base": "table", "version": 1}
    with pytest.raises(ConfigError, match=rf"scoring.{tiny.name}.fusion_base.version \(saved 1, given 2\)"):
        fused(run, 2, num_steps=6, resume=True).train()
    assert fused(run, 1, num_steps=6, resume=True).train()["steps"] == 6
