"""How tasks reach Ray (tasks/runtime.py): what a task carries to its worker."""

from __future__ import annotations


def test_prefect_settings_shipped_with_tasks_hold_no_unnamed_credential(monkeypatch):
    """prefect-ray serialises the flow's Prefect settings into every task, the API key included."""
    import json

    from prefect.context import serialize_context
    from prefect.settings import PREFECT_API_KEY, temporary_settings

    from tasks.runtime import prefect_credentials_withheld

    monkeypatch.delenv("RL4REC_WORKER_SECRETS", raising=False)
    with temporary_settings(updates={PREFECT_API_KEY: "pnu_secret"}):
        assert "pnu_secret" in json.dumps(serialize_context(), default=str)  # what prefect-ray ships by default
        with prefect_credentials_withheld():
            assert "pnu_secret" not in json.dumps(serialize_context(), default=str)
        assert PREFECT_API_KEY.value() == "pnu_secret"  # the flow keeps its own
        monkeypatch.setenv("RL4REC_WORKER_SECRETS", "PREFECT_API_KEY")
        with prefect_credentials_withheld():
            assert "pnu_secret" in json.dumps(serialize_context(), default=str)

