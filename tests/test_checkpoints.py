"""training_log.jsonl: the one reader (torn-line safe) and the plot drawn from it."""

from __future__ import annotations

import json

import pytest

from rl4rec_core.errors import DataError
from rl4rec_core.checkpoints import TrainingLog
from rl4rec_core.training.plots import moving_average, plot_training_log

PNG = b"\x89PNG\r\n\x1a\n"


def _log(tmp_path, steps=3, **extra):
    log = TrainingLog(tmp_path / "training_log.jsonl")
    for s in range(steps):
        log.append({"step": s, "loss": 1.0 / (s + 1), "avg_reward": 0.1 * s, "max_reward": 0.2 * s, **extra})
    return log


def test_read_returns_records_in_order_and_nothing_for_a_missing_log(tmp_path):
    assert TrainingLog(tmp_path / "absent.jsonl").read() == []
    assert [r["step"] for r in _log(tmp_path).read()] == [0, 1, 2]


def test_torn_last_line_is_skipped(tmp_path):
    log = _log(tmp_path)
    with log.path.open("a") as f:
        f.write('{"step": 3, "avg_rew')  # the writer was killed mid-line
    assert [r["step"] for r in log.read()] == [0, 1, 2]


def test_blank_lines_are_ignored_and_a_torn_line_before_them_counts_as_last(tmp_path):
    log = _log(tmp_path)
    with log.path.open("a") as f:
        f.write('{"step": 3\n\n')
    assert [r["step"] for r in log.read()] == [0, 1, 2]


def test_corrupt_line_in_the_middle_is_an_error_naming_the_line(tmp_path):
    log = _log(tmp_path, steps=2)
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join([lines[0], "not json", lines[1]]) + "\n")
    with pytest.raises(DataError, match=r"training_log.jsonl line 2 is not a JSON record"):
        log.read()


def test_moving_average_by_hand():
    # windows of 2 over 1, 2, 3, 6: (1+2)/2, (2+3)/2, (3+6)/2
    assert moving_average([1, 2, 3, 6], 2).tolist() == [1.5, 2.5, 4.5]
    assert moving_average([1, 2], 5).tolist() == [1.0, 2.0]


def test_plot_needs_rewards(tmp_path):
    (tmp_path / "training_log.jsonl").write_text(json.dumps({"step": 0, "loss": 1.0}) + "\n")
    assert plot_training_log(tmp_path / "training_log.jsonl", tmp_path / "p.png") is None
    log = _log(tmp_path / "run")
    assert plot_training_log(log.path, tmp_path / "p.png", reward_keys=["no_such_reward"]) is None
    png = plot_training_log(log.path, tmp_path / "out" / "p.png")
    assert png == tmp_path / "out" / "p.png" and png.read_bytes()[:8] == PNG


def test_plot_with_moving_mean_and_phase_times(tmp_path):
    log = _log(tmp_path, steps=12, time_generate=0.5, time_reward=0.1, time_update=0.2)
    png = plot_training_log(log.path, tmp_path / "p.png", reward_keys=["avg_reward"], window=5,
                            panels=("time",), title="t", dpi=50)
    assert png.read_bytes()[:8] == PNG


def test_the_reward_plot_draws_rewards_not_the_reward_phase_time():
    from rl4rec_core.training.plots import reward_series

    records = [{"step": 0, "avg_reward": 0.5, "max_reward": 0.9, "time_reward": 0.1, "loss": 1.0}]
    assert reward_series(records) == ["avg_reward", "max_reward"]


def test_plot_rejects_unknown_panels(tmp_path):
    from rl4rec_core.errors import ConfigError

    with pytest.raises(ConfigError, match="panel"):
        plot_training_log(_log(tmp_path).path, tmp_path / "p.png", panels=("kl",))
