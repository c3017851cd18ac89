"""``rl4rec run``'s console: which records reach it, the settings it hands Prefect, Ray and MLflow, the task line."""

from __future__ import annotations

import logging

from flows import console
from flows.run_cli import print_times


def _record(name: str, level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_quiet_keeps_our_info_and_every_warning_but_not_what_the_summary_says():
    quiet = console._Quiet()
    assert quiet.filter(_record("tasks.registry", logging.INFO, "registered"))
    assert not quiet.filter(_record("prefect.flow_runs", logging.INFO, "Beginning flow run"))
    assert quiet.filter(_record("mlflow.store", logging.WARNING, "disk almost full"))
    assert not quiet.filter(_record("ray._private.worker", logging.WARNING, "Token authentication is enabled ..."))


def test_off_a_terminal_nothing_is_coloured_and_without_v_consoles_show_warnings_only():
    env = console.logging_env(verbose=False, tty=False)
    assert env["RAY_COLOR_PREFIX"] == "0" and env["PREFECT_LOGGING_COLORS"] == "false"
    assert env["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] == "WARNING"
    verbose = console.logging_env(verbose=True, tty=True)
    assert "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL" not in verbose and "RAY_COLOR_PREFIX" not in verbose
    assert verbose["PREFECT_LOGGING_FORMATTERS_STANDARD_DATEFMT"] == "%H:%M:%S"  # one timestamp format


def test_task_times_longest_first_and_other_states_named(capsys):
    tasks = [("train_policy-1a2", "COMPLETED", 5.0), ("evaluate_policy-3b4", "COMPLETED", 2.0),
             ("evaluate_policy-5c6", "FAILED", 1.0), ("prepare_dataset-7d8", "COMPLETED", 0.0)]
    print_times(tasks, 30.0, 25.0, 8.0)
    out = capsys.readouterr().out
    assert "Tasks (4; NOT COMPLETED: evaluate_policy-5c6 FAILED): train_policy 5.0 s, evaluate_policy 2.0+1.0 s" in out
    assert "Wall time 30.0 s" in out
