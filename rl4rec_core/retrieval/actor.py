"""The retrieval service as a named Ray actor, and a client that finds it, calls it and survives restarts.

Ray is applied here only (``ray.remote(RetrievalService)``); the service itself is a plain class.
The actor runs with ``max_restarts`` so a crashed process comes back and re-runs ``__init__``
(reloading its datasets from disk); calls that were in flight fail with ``RayActorError``, and
:class:`RetrievalClient` retries such a call once before giving up with a clear error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import ray
from ray.exceptions import ActorAlreadyExistsError, ActorDiedError, GetTimeoutError, RayActorError, RayTaskError

from rl4rec_core import errors, paths
from rl4rec_core.errors import ConfigError, Rl4recError
from rl4rec_core.ray_access import init_ray
from rl4rec_core.retrieval.owner import actor_id, name_taken_message
from rl4rec_core.retrieval.service import RetrievalService
from rl4rec_core.settings import DEFAULT_ACTOR_NAME, DEFAULT_REWARD, RAY_NAMESPACE, FusionSettings, RetrievalSettings

log = logging.getLogger(__name__)

DEFAULT_NAME = DEFAULT_ACTOR_NAME
DEFAULT_NAMESPACE = RAY_NAMESPACE


class RetrievalServiceNotFound(Rl4recError, LookupError):
    """No actor of that name in that namespace."""


class ActorNameTaken(ConfigError):
    """A live actor holds the name; the message names it (id, datasets, who started it) and how to stop it."""


def not_found_message(name: str, namespace: str) -> str:
    # the first line is the original guide's troubleshooting entry, kept verbatim
    return (
        f"❌ Error: {name} not found! (namespace {namespace!r})\n"
        f"Start it first, e.g. in another terminal (a Ray with token auth on 127.0.0.1: README, section 4):\n"
        f"  ray start --head --include-dashboard=false\n"
        f"  rl4rec serve --datasets ml-100k --actor_name {name} --namespace {namespace}\n"
        f"and check which actors are running with: rl4rec serve --status --namespace {namespace}\n"
        f"(the original's `ray list actors --namespace {namespace}` needs Ray's dashboard, which is off)"
    )


def launch_retrieval_actor(
    retrieval: RetrievalSettings,
    datasets: Sequence[str],
    *,
    fusion: FusionSettings | None = None,
    bases=None,
    device: str | None = None,
    num_gpus: float = 0,
    detached: bool = False,
    get_if_exists: bool = False,
    embeddings=None,
    wait: bool = True,
    timeout_s: float = 600,
):
    """Create the named retrieval actor of ``retrieval`` and (with ``wait``) block until its datasets are loaded.

    Args:
        retrieval: the service's settings (``RetrievalService``), plus the actor's: ``actor_name``,
            ``namespace``, ``actor_cpus`` (0 by default so a long-lived service never starves training tasks
            on a small box) and ``max_restarts`` (Ray restarts a crashed actor this many times, re-running
            ``__init__``).
        fusion: the ``FusionSettings`` (the base recommender the actor fuses with the text, its gammas); None: no
            fused scorer. An actor reused with ``get_if_exists`` keeps the fusion it started with.
        bases: ``{dataset: BaseScorer}`` shipped to the actor instead of what ``fusion.base`` loads there (tests).
        device: where the actor keeps items and encoder; default ``cuda`` when ``num_gpus > 0``, else ``cpu``.
        detached: outlive the driver (``rl4rec serve``); otherwise the actor dies with the launching job.
        get_if_exists: when an actor of this name already runs, return it *as it is* (its datasets
            and model were fixed when it started; the requested datasets must be among them, else
            ``ConfigError``). When False an existing name is an error.
        embeddings: ``{dataset: tensor}`` to ship to the actor instead of loading from ``emb_dir()``
            (small catalogues and tests; large ones should be loaded by the actor from disk).

    Returns:
        the Ray actor handle.

    Raises:
        ConfigError: the existing actor lacks a requested dataset; ActorNameTaken: the name is taken.
        Rl4recError: the actor failed to start (missing embeddings, wrong model, ...), with its reason.
    """
    name, namespace = retrieval.actor_name, retrieval.namespace
    if not ray.is_initialized():
        init_ray(None, namespace=namespace, log_to_driver=False)  # 127.0.0.1 and token auth (ray_access)
    if device is None:
        device = "cuda" if num_gpus else "cpu"
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    existing = _running_actor(name, namespace, datasets, get_if_exists, embeddings, fusion)
    if existing is not None:
        return existing
    options = _actor_options(retrieval, num_gpus, detached)
    try:
        actor = ray.remote(RetrievalService).options(**options).remote(
            retrieval, [] if embeddings else datasets, device=device, embeddings=embeddings, fusion=fusion, bases=bases)
    except ActorAlreadyExistsError as e:  # another process took the name since the look-up above
        return _taken_meanwhile(e, name, namespace, datasets, get_if_exists, embeddings, fusion)
    if wait:
        _wait_until_up(actor, name, timeout_s, retrieval.actor_cpus, num_gpus)
    log.info("retrieval actor %s/%s up with %s", namespace, name, datasets)
    return actor


def _running_actor(name: str, namespace: str, datasets: list[str], get_if_exists: bool, embeddings,
                   fusion: FusionSettings | None = None):
    """The actor already running under ``name`` when it may be reused, None when the name is free.

    Raises ActorNameTaken when the name is taken and ``get_if_exists`` is off, and ConfigError when
    the running actor lacks a requested dataset or ``fusion``'s base (both were fixed when it started).
    """
    existing = find_retrieval_actor(name, namespace)
    if existing is None:
        return None
    if not get_if_exists:
        raise ActorNameTaken(name_taken_message(name, namespace, existing))
    loaded = RetrievalClient(existing, name=name, namespace=namespace).datasets()
    missing = [d for d in datasets if d not in loaded and embeddings is None]
    if missing:
        raise ConfigError(
            f"actor {name!r} already runs with datasets {sorted(loaded)}, not {missing}; stop it "
            f"(Ctrl-C its `rl4rec serve`, or remove_retrieval_actor) or pick another --actor_name"
        )
    _check_fusion(existing, name, datasets, fusion)
    return existing


def _check_fusion(actor, name: str, datasets: list[str], fusion: FusionSettings | None) -> None:
    """A running actor reused for a fused run must hold that base for every dataset (fixed when it started)."""
    if fusion is None or fusion.base == "none":
        return
    held = RetrievalClient(actor, name=name).info().get("fusion", {})
    wrong = [d for d in datasets if held.get(d, {}).get("base") != fusion.base]
    if wrong:
        raise ConfigError(
            f"actor {name!r} already runs without the base {fusion.base!r} for {wrong} (it holds "
            f"{ {d: held[d].get('base') for d in held} or 'none'}); stop it (Ctrl-C its `rl4rec serve`) and start it "
            f"with --base {fusion.base}, or pick another --actor_name")


def _taken_meanwhile(error, name: str, namespace: str, datasets: list[str], get_if_exists: bool, embeddings,
                     fusion: FusionSettings | None = None):
    """The actor that took ``name`` between the look-up and the creation, when it may be reused."""
    existing = _running_actor(name, namespace, datasets, get_if_exists, embeddings, fusion)
    if existing is None:  # and it is already gone again
        raise ActorNameTaken(str(error)) from None
    return existing


def _actor_options(retrieval: RetrievalSettings, num_gpus: float, detached: bool) -> dict:
    """``ray.remote(...).options`` of the service actor: its name, resources, restarts, lifetime, env."""
    return dict(
        name=retrieval.actor_name,
        namespace=retrieval.namespace,
        num_cpus=retrieval.actor_cpus,
        num_gpus=num_gpus,
        max_restarts=retrieval.max_restarts,
        lifetime="detached" if detached else None,
        runtime_env={"env_vars": paths.worker_env()},
    )


def _wait_until_up(actor, name: str, timeout_s: float, num_cpus: float, num_gpus: float) -> None:
    """Block until the new actor answers; if it died or never came up, kill it and raise why."""
    try:
        ray.get(actor.ping.remote(), timeout=timeout_s)
    except RayActorError as e:
        ray.kill(actor, no_restart=True)
        cls, reason = _startup_error(e)
        raise cls(f"retrieval actor {name!r} failed to start: {reason}") from None
    except GetTimeoutError:
        ray.kill(actor, no_restart=True)
        raise Rl4recError(
            f"retrieval actor {name!r} did not come up within {timeout_s:.0f} s; is there a node with "
            f"num_cpus={num_cpus}, num_gpus={num_gpus} free? Check `ray status`"
        ) from None


def _reason(e: RayActorError) -> str:
    """The user-facing cause of an actor death: the constructor's own error message when there is one."""
    cause = getattr(e, "error_msg", None) or str(e)
    for line in reversed(str(cause).splitlines()):
        line = line.strip()
        if ("Error:" in line or "Error(" in line) and not line.startswith("ray."):
            return line
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(e).__name__


def _startup_error(e: RayActorError) -> tuple[type[Rl4recError], str]:
    """Recover the rl4rec error class and message a failed constructor raised (Ray sends only its text)."""
    reason = _reason(e)
    qualified, sep, message = reason.partition(": ")
    module, _, cls_name = qualified.rpartition(".")
    cls = getattr(errors, cls_name, None) if module == errors.__name__ else None
    if sep and isinstance(cls, type) and issubclass(cls, Rl4recError):
        return cls, message
    return Rl4recError, reason


def find_retrieval_actor(name: str = DEFAULT_NAME, namespace: str = DEFAULT_NAMESPACE):
    """The running actor's handle, or None (no error): for "attach if running, else launch" logic."""
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None


def get_retrieval_actor(name: str = DEFAULT_NAME, namespace: str = DEFAULT_NAMESPACE, address: str | None = None):
    """Find the running actor (``ray.get_actor``); connects to Ray (``address``/``RAY_ADDRESS``) when needed.

    Raises:
        RetrievalServiceNotFound: with the original's message plus how to start and list actors.
    """
    if not ray.is_initialized():
        init_ray(address, namespace=namespace, log_to_driver=False)
    actor = find_retrieval_actor(name, namespace)
    if actor is None:
        raise RetrievalServiceNotFound(not_found_message(name, namespace))
    return actor


def remove_retrieval_actor(
    name: str = DEFAULT_NAME, namespace: str = DEFAULT_NAMESPACE, *, owned_id: str | None = None
) -> bool:
    """Kill the actor that holds ``name`` for good (no restart). Returns False when there was none.

    With ``owned_id`` (:func:`~rl4rec_core.retrieval.owner.actor_id` of the actor the caller started)
    only that actor is killed: when the name now belongs to another actor (the caller's died and
    someone started a new one), it is left running, with a warning, and the result is False.
    """
    actor = find_retrieval_actor(name, namespace)
    if actor is None:
        return False
    if owned_id is not None and actor_id(actor) != owned_id:
        log.warning("retrieval actor %s/%s is now actor %s, not %s (started by this process); left it running",
                    namespace, name, actor_id(actor), owned_id)
        return False
    ray.kill(actor, no_restart=True)
    # the GCS frees the name once it marks the actor dead: a launch right after must not attach to the corpse
    deadline = time.monotonic() + 10
    while find_retrieval_actor(name, namespace) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


class RetrievalClient:
    """Calls the retrieval actor like the plain service, with one retry when the actor died.

    Errors raised inside the actor (bad dataset name, bad targets, ...) come back as the original
    exception (``ValueError``, ``ConfigError``) without Ray's wrapping; the actor keeps serving.
    """

    def __init__(
        self,
        actor=None,
        *,
        name: str = DEFAULT_NAME,
        namespace: str = DEFAULT_NAMESPACE,
        timeout_s: float | None = 300,
        restart_wait_s: float = 180,
    ) -> None:
        self.name, self.namespace = name, namespace
        self.timeout_s, self.restart_wait_s = timeout_s, restart_wait_s
        self._actor = actor if actor is not None else get_retrieval_actor(name, namespace)

    def _call(self, method: str, *args, **kwargs):
        for attempt in (1, 2):
            try:
                return ray.get(getattr(self._actor, method).remote(*args, **kwargs), timeout=self.timeout_s)
            except RayTaskError as e:
                # an error raised by the service itself: the actor is fine, hand back the real exception
                cause = getattr(e, "cause", None)
                raise (cause if isinstance(cause, BaseException) else e) from None
            except RayActorError as e:
                if attempt == 1:
                    log.warning("retrieval actor %s failed during %s (%s); retrying once", self.name, method, _reason(e))
                    if self._wait_until_back():
                        continue
                raise Rl4recError(
                    f"retrieval actor {self.name!r} died during {method}() and did not come back ({_reason(e)}). "
                    f"Check `rl4rec serve --status --namespace {self.namespace}` and the actor's log "
                    f"(`ray logs`), then restart it with `rl4rec serve ...`"
                ) from None

    def _wait_until_back(self) -> bool:
        """Wait for a restarting actor (Ray re-runs ``__init__``, reloading datasets); False if it is gone for good."""
        deadline = time.monotonic() + self.restart_wait_s
        while time.monotonic() < deadline:
            try:
                ray.get(self._actor.ping.remote(), timeout=max(1.0, deadline - time.monotonic()))
                return True
            except ActorDiedError:
                # out of restarts or killed for good: someone may have started a fresh one under the name
                fresh = find_retrieval_actor(self.name, self.namespace)
                if fresh is None or fresh._actor_id == self._actor._actor_id:
                    return False
                self._actor = fresh
            except (RayActorError, GetTimeoutError):
                time.sleep(0.5)  # restarting: the constructor is still loading
        return False

    def ping(self) -> str:
        return self._call("ping")

    def datasets(self) -> dict[str, tuple[int, int]]:
        return self._call("datasets")

    def info(self) -> dict:
        return self._call("info")

    def calculate_reward(self, texts, dataset_name, hybrid=False, histories=None):
        """float32 ``[len(texts), num_items]`` cosine (or hybrid) scores (crosses the object store: big for big N)."""
        return self._call("calculate_reward", texts, dataset_name, hybrid=hybrid, histories=histories)

    def scorer(self, dataset_name, mode=None):
        return self._call("scorer", dataset_name, mode)

    def compute_rewards(self, texts, dataset_name, targets, histories=None, reward=DEFAULT_REWARD, num_negatives=0, seed=None, **kw):
        """``RewardBatch(rewards [B], ranks [B])`` computed inside the actor."""
        return self._call(
            "compute_rewards", texts, dataset_name, targets, histories, reward=reward, num_negatives=num_negatives, seed=seed, **kw
        )

    def top_k(self, texts, dataset_name, k=10, histories=None, scorer=None, gamma=None):
        """``(indices [B, k], scores [B, k])``."""
        return self._call("top_k", texts, dataset_name, k=k, histories=histories, scorer=scorer, gamma=gamma)

    def candidates(self, dataset_name, histories, k=None):
        """The base's top-``k`` items per history: long ``[B, k]`` (``RetrievalService.candidates``)."""
        return self._call("candidates", dataset_name, histories, k)

    def fused_grid_ranks(self, texts, dataset_name, targets, histories, gammas):
        """Long ``[G, B]`` fused ranks at each gamma (``fusion_tuning.tune_gamma``)."""
        return self._call("fused_grid_ranks", texts, dataset_name, targets, histories, gammas)

    def set_gamma(self, dataset_name, gamma, source="tuned", sha256=None):
        return self._call("set_gamma", dataset_name, gamma, source=source, sha256=sha256)

    def fusion_info(self):
        return self._call("fusion_info")
