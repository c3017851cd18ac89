"""How rl4rec's processes start and join Ray: servers bound to 127.0.0.1, Ray's token authentication on.

Ray 2.60, as read in its source (``ray/_private/worker.py``, ``services.py``, ``ray_constants.py`` and
``authentication/authentication_token_setup.py``):

* ``ray.init()`` starting a new instance turns token authentication on by default; the token lives in
  ``~/.ray/auth_token`` (created when missing). ``ray start --head`` turns it on only with
  ``RAY_AUTH_MODE=token`` or when a token already exists. A process joining a cluster at an explicit
  address (an argument or ``RAY_ADDRESS``) sends the token only when ``RAY_AUTH_MODE=token``.
  Ray reads the token from ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``, and writes
  the file with the umask (0644: every user of the machine could read it). This module never reads or copies
  the token; it makes the file 0600 (:func:`protect_token_file`).
* Ray's servers (GCS, raylet, workers, agents, metrics) bind to 127.0.0.1 only when the node's IP is
  127.0.0.1, else to all interfaces. On Linux Ray replaces a loopback node IP (``--node-ip-address``,
  ``_node_ip_address``) with the machine's address unless its single-machine mode is on:
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, Ray's default on macOS and Windows. A process joining such a
  cluster needs the mode as well, or ``127.0.0.1:PORT`` is rewritten to the machine's address.

:func:`init_ray` is the project's one way to call ``ray.init``: it turns both on first (in this process
and, through the environment, in every process it starts), and a new local instance starts with the
environment ``rl4rec_core/env_allowlist.py`` allows, nothing else. A user who set ``RAY_AUTH_MODE`` or
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`` (a multi-machine cluster) keeps that choice.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from rl4rec_core import env_allowlist
from rl4rec_core.errors import ConfigError

log = logging.getLogger(__name__)

AUTH_VAR = "RAY_AUTH_MODE"
LOOPBACK_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")
_TOKEN_SOURCES = "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token"


def is_loopback(address: str) -> bool:
    """Whether ``host:port`` (or a bare host) names this machine's loopback interface."""
    rest = address.split("://", 1)[-1]
    host = rest.rpartition(":")[0] if rest.count(":") == 1 or rest.startswith("[") else rest
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def target_address(address: str | None) -> str | None:
    """The cluster ``ray.init(address)`` will join, or None when it will start a new local instance."""
    if address == "local":
        return None
    if address not in (None, "auto"):
        return address
    from ray._private.services import get_ray_address_from_environment

    try:  # RAY_ADDRESS, else the cluster the last `ray start` here recorded
        return get_ray_address_from_environment(address, None)
    except ConnectionError:  # "auto" with nothing running: ray.init will say so
        return None


def secure_ray(address: str | None) -> str | None:
    """Prepare this process (and those it starts) for ``ray.init(address)``: token auth, loopback binding.

    Loopback-only applies when the call starts a new instance or joins a cluster at a loopback address.
    Returns :func:`target_address`.
    """
    _token_auth()
    target = target_address(address)
    if target is None or is_loopback(target):
        _loopback_only()
    return target


def withheld_secrets(keep: Iterable[str] = ()) -> list[str]:
    """This process's variables that a new local Ray does not inherit: every one that
    ``rl4rec_core/env_allowlist.py`` does not name (nor ``keep``, nor ``RL4REC_WORKER_SECRETS``, nor ``RAY_*``)."""
    return env_allowlist.left_out(keep)


@contextlib.contextmanager
def secrets_withheld(keep: Iterable[str] = ()):
    """Hide :func:`withheld_secrets` from processes started inside the block (a new local Ray's GCS, raylet
    and, through the raylet, every worker), then put them back."""
    saved = {k: os.environ.pop(k) for k in withheld_secrets(keep)}
    try:
        yield sorted(saved)
    finally:
        os.environ.update(saved)


def protect_token_file() -> None:
    """Ray writes its token (``~/.ray/auth_token``, or ``RAY_AUTH_TOKEN_PATH``) with the umask, readable by every
    user of the machine, and whoever reads it may run code on the cluster: make it 0600, and say so."""
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    try:
        mode = path.stat().st_mode & 0o777
        if not mode & 0o077:
            return
        path.chmod(0o600)
    except FileNotFoundError:
        return
    except OSError as e:
        log.warning("Ray's token %s is readable by other users (mode %o) and could not be made private (%s); "
                    "run `chmod 600 %s`", path, mode, e.strerror or e, path)
        return
    log.warning("Ray's token %s was readable by other users (mode %o): made it readable by you alone (0600), as "
                "anyone who reads it can run code on the cluster", path, mode)


def _token_auth() -> None:
    mode = os.environ.get(AUTH_VAR)
    if mode is not None:
        if mode.lower() != "token":
            log.warning("%s=%s: Ray's token authentication is off, so anyone who can reach its ports can run "
                        "code; unset it to turn authentication on", AUTH_VAR, mode)
        return
    # Ray's own switch: sets RAY_AUTH_MODE=token and refreshes the config this process already read
    from ray._private.authentication.authentication_token_setup import _enable_token_auth

    _enable_token_auth()


def _loopback_only() -> None:
    if os.environ.get(LOOPBACK_VAR, "").lower() in ("1", "true"):
        return  # the user asked for a cluster that spans machines
    os.environ[LOOPBACK_VAR] = "0"
    # Ray read the variable when it was imported; its own code reads the constant at each use
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def init_ray(address: str | None = None, keep_env: Iterable[str] = (), **kwargs):
    """``ray.init(address, **kwargs)`` after :func:`secure_ray`; a new local instance starts with only the
    environment ``env_allowlist`` names (and ``keep_env``), and Ray's token file is made private.

    Raises:
        ConnectionError: as ``ray.init``, with a hint about the token when authentication is on.
        ConfigError: authentication is on and this process has no token.
    """
    import ray
    from ray.exceptions import AuthenticationError

    new_instance = secure_ray(address) is None
    protect_token_file()
    try:
        # a new instance's processes inherit this environment, and its workers the raylet's: the allow-list only
        with secrets_withheld(keep_env) if new_instance else contextlib.nullcontext():
            context = ray.init(address, **kwargs)
        protect_token_file()  # ray.init writes the token when there was none
        return context
    except AuthenticationError as e:
        raise ConfigError(
            f"Ray token authentication is on but this process has no token ({e}). Ray reads it from "
            f"{_TOKEN_SOURCES}: give this process the cluster's token (`ray get-auth-token` prints it on the "
            f"cluster's machine)"
        ) from None
    except ConnectionError as e:
        if os.environ.get(AUTH_VAR, "").lower() != "token":
            raise
        raise ConnectionError(
            f"{e} (if the cluster is up, it may hold another token than this process: Ray reads it from "
            f"{_TOKEN_SOURCES})"
        ) from e


def named_actors(namespace: str) -> list[tuple[str, str]]:
    """``[(name, state)]`` of the named actors in ``namespace``, read from the GCS (no dashboard needed).

    ``state`` starts with ``answers`` when the actor replied to ``info()`` within 10 s (a retrieval service:
    its device and datasets follow), else says why it did not.
    """
    import ray

    names = sorted(e["name"] for e in ray.util.list_named_actors(all_namespaces=True) if e["namespace"] == namespace)
    return [(name, _probe(name, namespace)) for name in names]


def _probe(name: str, namespace: str) -> str:
    import ray

    try:
        actor = ray.get_actor(name, namespace=namespace)
        if not hasattr(actor, "info"):
            return "registered (not a retrieval service: no info())"
        info = ray.get(actor.info.remote(), timeout=10)
    except Exception as e:  # dead, restarting or stuck: report it, never fail the listing
        first = (str(e).strip().splitlines() or [""])[0][:160]
        return f"does not answer ({type(e).__name__}{': ' + first if first else ''})"
    sets = ", ".join(f"{d} {tuple(shape)}" for d, shape in info.get("datasets", {}).items())
    return f"answers: on {info.get('device')}, datasets {sets or 'none'}"
