"""What ``rl4rec ab --a SPEC --b SPEC`` compares: a SPEC is a baseline name, a checkpoint folder (or the run
folder holding it) or a registry URI (``models:/rl4rec-ml-100k@champion``), resolved here to something that
ranks the held-out item of chosen users. A registry URI is resolved by the caller's ``registry_resolver``
(``tasks/ab.py``): the core has no MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rl4rec_core.errors import ConfigError, MissingArtifactError, Rl4recError
from rl4rec_core.settings import BASELINES

if TYPE_CHECKING:  # numpy and torch load only when a spec is ranked: `rl4rec ab --help` imports this module
    import numpy as np
    import torch

REGISTRY_PREFIX = "models:/"
SPEC_HELP = (f"a baseline ({', '.join(BASELINES)}), a checkpoint folder (or the run folder holding checkpoints) "
             f"or a registry URI such as {REGISTRY_PREFIX}rl4rec-ml-100k@champion")


@dataclass(frozen=True)
class Spec:
    """A resolved SPEC: ``kind`` is ``baseline`` (``baseline`` set) or ``checkpoint``/``registry``
    (``checkpoint`` = the local checkpoint folder); ``label`` names it in reports."""

    text: str
    kind: str
    label: str
    baseline: str | None = None
    checkpoint: Path | None = None

    @property
    def key(self) -> tuple:
        """Equal for two SPECs that rank identically (the same baseline or the same checkpoint folder)."""
        return (self.baseline,) if self.baseline else (str(self.checkpoint.resolve()),)


def resolve_spec(text: str, flag: str = "--a", registry_resolver: Callable[[str], Path] | None = None) -> Spec:
    """The :class:`Spec` for ``text``; anything that resolves to nothing is a ``MissingArtifactError``
    naming the flag, what was tried and what to pass instead.

    ``registry_resolver``: the local checkpoint folder of a registry URI (the core has no MLflow; ``rl4rec ab``
    passes ``tasks.ab.registry_checkpoint``, which raises the URI's own errors); without it a registry URI is a
    ``ConfigError``."""
    text = text.strip()
    if text in BASELINES:
        return Spec(text, "baseline", text, baseline=text)
    if text.startswith(REGISTRY_PREFIX):
        if registry_resolver is None:
            raise ConfigError(f"{flag} {text!r} is a registry URI, which needs MLflow: pass it to `rl4rec ab` "
                              "(or a checkpoint folder or a baseline here)")
        return Spec(text, "registry", text.removeprefix(REGISTRY_PREFIX), checkpoint=registry_resolver(text))
    from rl4rec_core.checkpoints import resolve_checkpoint

    path = Path(text).expanduser()
    if not path.exists():
        raise MissingArtifactError(
            f"{flag} {text!r} resolves to nothing: no such folder, not a baseline and not a registry URI; "
            f"pass {SPEC_HELP}"
        )
    try:
        ckpt = resolve_checkpoint(path)
    except Rl4recError as e:
        raise MissingArtifactError(f"{flag} {text!r}: {e}") from e
    label = f"{ckpt.parent.name}/{ckpt.name}" if ckpt.parent.name else ckpt.name
    return Spec(text, "checkpoint", label, checkpoint=ckpt)


def policy_ranks(checkpoint: Path, dataset, split_name: str, users: np.ndarray, service, device: str) -> torch.Tensor:
    """1-based target ranks ``[U]`` of the checkpoint's trained policy for the split's rows ``users``, greedy
    text ranked by ``service``."""
    from rl4rec_core.evaluation.policy_eval import evaluate_policy, load_policy

    _, ranks = evaluate_policy(dataset, load_policy(checkpoint, device=device), split=split_name, service=service,
                               users=users, progress=True)
    return ranks
