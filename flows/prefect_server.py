"""Which Prefect API a command talks to: the configured one (``PREFECT_API_URL`` or the active profile) and
whether it answers. Without one, ``rl4rec run`` starts Prefect's own temporary server (flows/run_cli.py)."""

from __future__ import annotations

import os
import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """Whether the API at ``api_url`` answers its health check (Prefect's client, with its TLS and auth settings)."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api_url, httpx_settings={"timeout": timeout}) as client:
        return client.api_healthcheck() is None


def configured_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment or the active Prefect profile, if any."""
    from prefect.settings import PREFECT_API_URL

    return os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value() or None
