"""``DataParallelTrainer``: ``RLTrainer``'s step on every worker of a ``torch.distributed`` group.

Started by Ray Train (``training/ray_train.py``), which sets up the process group (gloo on CPU, NCCL on
GPU). Per step:

* every worker draws the *same* users (the sampler has the same seed and state everywhere) and keeps its
  share, ``users[rank::world]``: a user's whole GRPO group stays on one worker;
* each user's samples are keyed to (seed, step, user) (``policy/keyed_sampling.py``), so they do not
  depend on how many workers there are;
* rewards come from the one shared retrieval actor;
* gradients are averaged over workers before the optimiser step. With equal shares the mean of the
  workers' mean losses is the mean over the whole batch, so N workers take the step one worker would
  take with the same total batch (GRPO; REINFORCE's running baseline is per worker);
* rank 0 alone writes the JSONL log, checkpoints and console lines and runs the callbacks (MLflow),
  with stats of the whole batch (gathered from every worker).

Why not ``DistributedDataParallel``: the policy calls its model three ways (``generate``, the shared-prompt
forward, the reference with adapters off) and accumulates micro-batches; DDP's reducer wants every forward
through its wrapper. One all-reduce of the accumulated gradients is the same arithmetic, once per step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from accelerate.utils import set_seed

from rl4rec_core.errors import ConfigError
from rl4rec_core.policy.keyed_sampling import sample_key
from rl4rec_core.training.resume import resume_latest
from rl4rec_core.training.trainer import RLTrainer


class _NoLog:
    """The training log of a worker that does not write it."""

    path = None

    def append(self, record: dict[str, Any]) -> None: ...

    def read(self) -> list[dict[str, Any]]:
        return []

    def truncate(self, step: int) -> int:
        return 0


def average_gradients(params: list[torch.Tensor]) -> None:
    """Replace each parameter's gradient by its mean over the process group: one flat all-reduce."""
    grads = [p.grad for p in params if p.grad is not None]
    if len(grads) != len(params):  # every worker must send the same buffer
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def check_split(settings, workers: int) -> None:
    """Every worker gets the same number of whole users (their GRPO groups stay together)."""
    if settings.users_per_step % workers:
        raise ConfigError(
            f"{settings.users_per_step} users per step do not split over {workers} workers; pass a --batch_size "
            f"that is a multiple of group_size x num_workers ({settings.algorithm.group_size * workers})"
        )


class DataParallelTrainer(RLTrainer):
    """See the module docstring. Needs an initialised ``torch.distributed`` process group."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not dist.is_initialized():
            raise ConfigError("DataParallelTrainer runs inside a torch.distributed group; start it with "
                              "`rl4rec train --num_workers N` (Ray Train)")
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        check_split(self.settings, self.world)
        self.writer = self.rank == 0
        if not self.writer:
            self.log, self.callbacks, self.progress = _NoLog(), [], False
        self.policy.grad_sync = average_gradients
        # the same starting weights everywhere (they are seeded alike; this makes sure, as DDP does)
        with torch.no_grad():
            for p in self.policy.trainable_parameters():
                dist.broadcast(p.data, src=0)

    def sample_users(self) -> np.ndarray:
        return super().sample_users()[self.rank::self.world]

    def rollout_seeds(self, users: np.ndarray) -> list[int]:
        return [sample_key(self.settings.run.seed, self.step, int(u)) for u in users]

    def step_stats(self, users, texts, rewards, ranks, upd, times) -> dict[str, Any]:
        """Stats of the whole batch: users, texts, rewards and ranks of every worker; update stats averaged
        (the gradient norm is the same everywhere: it is taken after averaging); times of the slowest."""
        numeric = {k: float(v) for k, v in upd.items() if isinstance(v, (int, float))}
        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, (np.asarray(users), texts, rewards, ranks, numeric, times))
        users = np.concatenate([p[0] for p in parts])
        texts = [t for p in parts for t in p[1]]
        rewards = torch.cat([p[2] for p in parts])
        ranks = torch.cat([p[3] for p in parts])
        mean_upd = {k: float(np.mean([p[4][k] for p in parts if k in p[4]])) for k in numeric}
        if "num_sequences" in mean_upd:
            mean_upd["num_sequences"] *= self.world
        slowest = {k: max(p[5][k] for p in parts) for k in times}
        stats = super().step_stats(users, texts, rewards, ranks, mean_upd, slowest)
        stats["num_workers"] = self.world
        return stats

    def save(self, path: Path, bar=None) -> Path:
        if self.writer:
            return super().save(path, bar)
        return path

    def _prepare_output(self) -> None:
        """Rank 0 checks and prepares the folder (and cuts the log back on resume) before the others read it."""
        if self.writer:
            super()._prepare_output()
        dist.barrier()
        if self.writer:
            return
        if self.settings.trainer.resume:
            _, changes = resume_latest(self)
            if changes:
                self.config_changes.append({"step": self.step, "changes": changes})
        else:
            set_seed(self.settings.run.seed)
