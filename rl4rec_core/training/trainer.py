"""``RLTrainer``: users' histories -> prompts -> policy samples -> retrieval rewards -> policy update.

The trainer knows nothing about the model (anything satisfying :class:`Policy`) nor where rewards come
from (anything satisfying :class:`RewardSource`: the plain ``RetrievalService``, its Ray client, or a
test double). It owns the loop, the user sampler, the JSONL log, checkpoints and callbacks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from accelerate.utils import set_seed  # python, numpy, torch and any accelerator's generators
from tqdm.auto import tqdm

from rl4rec_core import checkpoints as ckpt
from rl4rec_core.errors import ConfigError, DataError, Rl4recError
from rl4rec_core.progress import bars_wanted
from rl4rec_core.retrieval.source import RewardSource
from rl4rec_core.settings import Settings
from rl4rec_core.training import candidates as cand
from rl4rec_core.training.diagnostics import (ZeroSpreadWarning, format_diagnostics, format_step,
                                              base_diagnostics, group_diagnostics, naming_diagnostics)
from rl4rec_core.training.resume import resume_latest, run_config, scoring_of
from rl4rec_core.training.run_lock import RunLock
from rl4rec_core.training.trainer_state import check_trainer_state
from rl4rec_core.training.user_pool import UserPool
from rl4rec_core.write_errors import saving_into

log = logging.getLogger(__name__)


@runtime_checkable
class Policy(Protocol):
    """What the trainer needs from a policy (``RecPolicy`` and ``DummyRecPolicy`` both fit).

    ``generate`` returns texts grouped by prompt: prompt i's samples at ``i*num_samples:(i+1)*num_samples``.
    ``update`` gets one prompt per text (prompts repeated per sample) and rewards ``[len(texts)]``.
    """

    def build_prompts(self, user_histories: list[list[str]], candidates: list[list[str]] | None = None) -> list[str]: ...

    def generate(self, prompts: list[str], num_samples: int = 1, greedy: bool = False) -> list[str]: ...

    def update(self, prompts: list[str], texts: list[str], rewards: torch.Tensor) -> dict[str, float]: ...

    def save(self, path: str | Path) -> None: ...

    def load(self, path: str | Path) -> None: ...


class TrainerCallback:
    """Hooks for outside observers (e.g. MLflow logging in ``tasks/``); override what you need."""

    def on_train_start(self, trainer: "RLTrainer") -> None: ...

    def on_step_end(self, step: int, stats: dict[str, Any]) -> None: ...

    def on_checkpoint(self, step: int, path: Path) -> None: ...

    def on_train_end(self, summary: dict[str, Any]) -> None: ...


class RLTrainer:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        reward_source: RewardSource,
        dataset,
        callbacks: Sequence[TrainerCallback] = (),
        progress: bool = True,
    ):
        self.settings = settings
        self.progress = progress
        self.policy = policy
        self.reward_source = reward_source
        # one Dataset, or a list of them for a run on several (--dataset_name a,b); self.dataset is the first
        self.datasets = list(dataset) if isinstance(dataset, (list, tuple)) else [dataset]
        self.dataset = self.datasets[0]
        self.callbacks = list(callbacks)
        self.output_dir = settings.output_dir
        self.log = ckpt.TrainingLog(self.output_dir / ckpt.LOG_NAME)
        self.step = 0  # number of completed steps
        # whether this process writes the run's files and console lines (data-parallel: rank 0 only)
        self.writer = True
        self.config_changes: list[dict[str, Any]] = []  # settings changes accepted by --override_config
        self.scoring: dict[str, dict[str, Any]] = {}  # the reward source's scorer records (resume.scoring_of)
        self.titles = self.dataset.item_titles
        # every usable train user of every dataset; sample_users() indexes into it
        self.pool = UserPool(settings.run.datasets, self.datasets, settings.run.weights)
        self.histories, self.targets = self.pool.histories, self.pool.targets
        self.user_dataset = self.pool.dataset_of  # [U] position in settings.run.datasets of each pool user
        if settings.users_per_step > len(self.pool):
            where = "the train split has" if not self.pool.multi else "the train splits together have"
            raise ConfigError(
                f"batch_size {settings.trainer.batch_size} / group_size {settings.algorithm.group_size} = "
                f"{settings.users_per_step} "
                f"users per step, but {where} only {len(self.pool)} usable users; lower --batch_size"
            )
        self.sampler = np.random.default_rng(settings.run.seed)
        self.zero_spread = ZeroSpreadWarning()
        self.base_ranks: torch.Tensor | None = None  # of the last reward call, when its source gives them

    # ---------------------------------------------------------------- one step
    def sample_users(self) -> np.ndarray:
        """Indices (into self.histories) of the users of one step, drawn without replacement; with several
        datasets, how many come from each is drawn by weight first (from the same checkpointed sampler)."""
        return self.pool.sample(self.sampler, self.settings.users_per_step)

    def compute_rewards(self, texts: list[str], users: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards and target ranks ``([B*G] float, [B*G] long)`` for grouped texts of ``users [B]``:
        one call of the reward source per dataset present, results put back in the texts' order."""
        g = self.settings.algorithm.group_size
        targets = [self.targets[u] for u in users for _ in range(g)]
        histories = [self.histories[u] for u in users for _ in range(g)]
        if not self.pool.multi:
            return self._rewards_of(self.settings.run.dataset_name, texts, targets, histories)
        rewards, ranks = torch.empty(len(texts)), torch.empty(len(texts), dtype=torch.long)
        for d, rows in self.pool.groups(users, g):
            r, k = self._rewards_of(self.pool.names[d], [texts[i] for i in rows], [targets[i] for i in rows],
                                    [histories[i] for i in rows])
            rewards[rows], ranks[rows] = r, k.long()
        self.base_ranks = None  # several datasets: the gain over the base is not put together
        return rewards, ranks

    def _rewards_of(self, dataset: str, texts: list[str], targets: list[int],
                    histories: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        call = cand.reward_call(self.settings, self.step)
        try:
            out = self.reward_source.compute_rewards(texts, dataset, targets=targets, histories=histories, **call)
        except Rl4recError:
            raise
        except Exception as e:  # ray.exceptions.* and connection errors: say what to do
            raise _service_error(e) from e
        # on the CPU whatever the source returned: the stats below and the policy's update read them there
        rewards = torch.as_tensor(out.rewards, dtype=torch.float32).reshape(-1).cpu()
        ranks = torch.as_tensor(out.ranks).reshape(-1).cpu()
        self.base_ranks = getattr(out, "base_ranks", None)  # the fused scorer's: the base's own rank of each target
        if rewards.shape[0] != len(texts):
            raise Rl4recError(f"reward source returned {rewards.shape[0]} rewards for {len(texts)} texts")
        return rewards, ranks

    def rollout_seeds(self, users: np.ndarray) -> list[int] | None:
        """Per-user sampling seeds for this step, or None to sample from torch's generator.

        The data-parallel trainer (``training/data_parallel.py``) keys each user's samples to (seed, step,
        user), so a user gets the same samples whichever worker and batch it lands in."""
        return None

    def step_prompts(self, users: np.ndarray) -> tuple[list[str], cand.StepCandidates | None]:
        """The prompts of ``users`` and, with a base, the candidates they show: from the histories alone."""
        shown = None
        if cand.fused(self.settings):
            shown = cand.step_candidates(self.reward_source, self.pool, users, self.settings.fusion.num_candidates)
        prompts = self.policy.build_prompts(self.pool.history_titles(users),
                                            **({} if shown is None else {"candidates": shown.titles}))
        return prompts, shown

    def train_step(self) -> dict[str, Any]:
        """Run one step and return its stats (the JSONL record)."""
        group = self.settings.algorithm.group_size
        t0 = time.perf_counter()
        users = self.sample_users()
        prompts, shown = self.step_prompts(users)
        seeds = self.rollout_seeds(users)
        extra = {} if seeds is None else {"seeds": seeds}
        if shown is not None and self.settings.fusion.constrained:
            extra["candidates"] = shown.titles  # decoding limited to the candidates' titles
        texts = self.policy.generate(prompts, num_samples=group, **extra)
        t1 = time.perf_counter()
        rewards, ranks = self.compute_rewards(texts, users)
        t2 = time.perf_counter()
        per_sample_prompts = [p for p in prompts for _ in range(group)]
        upd = dict(self.policy.update(per_sample_prompts, texts, rewards))
        t3 = time.perf_counter()
        # per worker, with its own users: the data-parallel trainer averages them as the update's stats
        upd.update(naming_diagnostics(texts, group, self.pool.target_titles(users), None if shown is None else shown.titles))
        upd.update(base_diagnostics(ranks, self.base_ranks))
        times = {"time_generate": t1 - t0, "time_reward": t2 - t1, "time_update": t3 - t2, "time_step": t3 - t0}
        stats = self.step_stats(users, texts, rewards, ranks, upd, times)
        self.step += 1
        return stats

    def step_stats(self, users: np.ndarray, texts: list[str], rewards: torch.Tensor, ranks: torch.Tensor,
                   upd: dict[str, Any], times: dict[str, float]) -> dict[str, Any]:
        """The JSONL record of a step from its users, texts, rewards ``[B*G]``, ranks ``[B*G]`` and the
        policy's update stats (consumed). The data-parallel trainer passes every worker's batch."""
        stats: dict[str, Any] = {
            "step": self.step,
            "loss": float(upd.pop("loss", float("nan"))),
            "avg_reward": float(rewards.mean()),
            "max_reward": float(rewards.max()),
            "min_reward": float(rewards.min()),
            "std_reward": float(rewards.std()) if len(rewards) > 1 else 0.0,
            "mean_rank": float(ranks.float().mean()),
            "kl": float(upd.pop("kl", 0.0)),
            # words, not tokens: comparable across policies; LLM policies also report gen_tokens
            "gen_len": float(upd.pop("gen_len", np.mean([len(t.split()) for t in texts]))),
            # GRPO's signal: groups with no reward spread teach nothing (training/diagnostics.py)
            **group_diagnostics(rewards, self.settings.algorithm.group_size),
            **times,
        }
        for k, v in upd.items():
            if isinstance(v, (int, float)) and k not in stats:
                stats[k] = float(v)
        if self.pool.multi:
            stats.update(self.dataset_stats(users, rewards, ranks))
        return stats

    def dataset_stats(self, users: np.ndarray, rewards: torch.Tensor, ranks: torch.Tensor) -> dict[str, float]:
        """Per dataset of a several-dataset run: ``users/<name>`` this step, and ``reward/<name>`` and
        ``rank/<name>`` (means over its samples) when it had any."""
        g = self.settings.algorithm.group_size
        out: dict[str, float] = {f"users/{n}": 0 for n in self.pool.names}
        for d, rows in self.pool.groups(users, g):
            name = self.pool.names[d]
            idx = torch.as_tensor(rows)
            out[f"users/{name}"] = len(rows) // g
            out[f"reward/{name}"] = float(rewards[idx].mean())
            out[f"rank/{name}"] = float(ranks[idx].float().mean())
        return out

    # ---------------------------------------------------------------- the loop
    def train(self) -> dict[str, Any]:
        """Train until ``num_steps`` steps are done, resuming first if asked; returns a summary.

        The writer holds the run folder's lock (``run_lock.py``) throughout: a second writer is refused."""
        out, resume = self.output_dir, self.settings.trainer.resume
        if not self.writer or (resume and not out.is_dir()):  # nothing to resume is an error, creating nothing
            return self._train()
        with RunLock(out):
            return self._train()

    def _train(self) -> dict[str, Any]:
        cfg = self.settings.trainer
        self._check_service()  # and what scores the rewards, which a resume compares with the checkpoint's
        self._prepare_output()
        self._emit("on_train_start", self)
        start = self.step
        bar = tqdm(total=cfg.num_steps, initial=start, desc="train", unit="step", disable=not bars_wanted(self.progress))
        last: dict[str, Any] = {}
        try:
            while self.step < cfg.num_steps:
                step = self.step
                stats = self.train_step()
                last = stats
                self.log.append(stats)
                if self.writer and (step % cfg.log_every == 0 or self.step == cfg.num_steps):
                    _print(format_step(step, stats), bar)
                    _print(format_diagnostics(stats), bar)
                if self.writer and self.settings.algorithm.group_size > 1:  # a group of one never spreads
                    self.zero_spread.check(step, stats["frac_zero_spread"])
                bar.set_postfix(reward=f"{stats['avg_reward']:.4f}", loss=f"{stats['loss']:.4f}")
                bar.update(1)
                self._emit("on_step_end", step, stats)
                if self.step % cfg.save_every == 0 and self.step < cfg.num_steps:
                    self.save(self.output_dir / f"checkpoint_step_{self.step}", bar)
        finally:
            bar.close()
            # a vLLM rollout engine holds a process and memory; it restarts if the policy samples again
            if hasattr(self.policy, "close"):
                self.policy.close()
        final = self.output_dir / ckpt.FINAL_NAME
        self.save(final, None)
        records = self.log.read()
        rewards = [r["avg_reward"] for r in records]
        summary = {
            "steps": self.step,
            "resumed_from": start,
            "final_checkpoint": str(final),
            "training_log": str(self.log.path),
            "last": last,
            "first_avg_reward": rewards[0] if rewards else None,
            "last_avg_reward": rewards[-1] if rewards else None,
        }
        self._emit("on_train_end", summary)
        return summary

    def save(self, path: Path, bar=None) -> Path:
        state = {"step": self.step, "sampler": self.sampler.bit_generator.state, "rng": ckpt.capture_rng()}
        if self.config_changes:
            state["config_changes"] = self.config_changes
        # a full disk, the file-size limit, a read-only folder: one line; older checkpoints stay whole
        with saving_into(path.parent, f"write checkpoint {path.name}"):
            ckpt.save_checkpoint(path, self.policy, state, run_config(self.settings, self.scoring))
        _print(f"✓ Checkpoint saved: {path}", bar)
        self._emit("on_checkpoint", self.step, path)
        return path

    def _emit(self, hook: str, *args) -> None:
        # a callback may implement only the hooks it cares about
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(*args)

    def restore_state(self, path: Path, state: dict[str, Any], num_steps: int) -> None:
        """Load policy, step, sampler and RNG states from a checkpoint folder whose ``trainer_state.json``
        is ``state`` (``num_steps``: the run's length in its ``config.json``). Everything is checked first."""
        checked = check_trainer_state(path, state, num_steps, self.sampler.bit_generator.state)
        self.policy.load(Path(path) / "policy")
        self.sampler.bit_generator.state = checked.sampler
        ckpt.restore_rng(checked.rng)
        self.step, self.config_changes = checked.step, checked.config_changes

    def _prepare_output(self) -> None:
        cfg, seed = self.settings.trainer, self.settings.run.seed
        out = self.output_dir
        if cfg.resume:  # never a fresh run, and the log is only cut back to the restored step
            path, changes = resume_latest(self)
            if changes:
                self.config_changes.append({"step": self.step, "changes": changes})
            kept = self.log.truncate(self.step)
            print(f"Resumed from {path} at step {self.step} ({kept} log lines kept)")
            return
        if ckpt.run_artifacts(out, hidden=False) and not cfg.overwrite:
            raise ConfigError(
                f"{out} already holds a training run; pass --resume to continue it, --overwrite to delete "
                f"it and start over, or another --checkpoint_dir"
            )
        set_seed(seed)
        # whatever they hold (damaged ones included): stale later steps would hijack a future --resume
        ckpt.clear_run(out)

    def _check_service(self) -> None:
        src = self.reward_source
        if not hasattr(src, "compute_rewards"):
            raise ConfigError(f"reward source {type(src).__name__} has no compute_rewards(...)")
        if cand.fused(self.settings):
            cand.check_source(src)
        datasets = getattr(src, "datasets", None)
        if datasets is None:
            return
        try:
            loaded = datasets()
            self.scoring = scoring_of(src, self.settings.run.datasets)
        except Rl4recError:
            raise
        except Exception as e:
            raise _service_error(e) from e
        names = self.settings.run.datasets
        missing = [n for n in names if n not in loaded]
        if missing:
            raise ConfigError(
                f"the retrieval service does not hold dataset {', '.join(map(repr, missing))} (it has "
                f"{sorted(loaded)}); start it with `rl4rec serve --datasets {' '.join(names)}` or use --service local"
            )
        for name, ds in zip(names, self.datasets):
            n_items = loaded[name][0]
            if n_items != ds.num_items:
                raise DataError(
                    f"the retrieval service has {n_items} item embeddings for {name!r} but the dataset has "
                    f"{ds.num_items} items; regenerate them with `rl4rec embed --dataset {name} --force`"
                )


def _service_error(e: Exception) -> Rl4recError:
    return Rl4recError(
        f"the retrieval service failed or is unreachable ({type(e).__name__}: {e}); start it with "
        f"`rl4rec serve` (check with `rl4rec serve --status`) or train with --service local"
    )


def _print(line: str, bar) -> None:
    if bar is not None and not bar.disable:
        tqdm.write(line)
    else:
        print(line, flush=True)


def build_trainer(
    settings: Settings, reward_source: RewardSource, dataset=None, callbacks: Sequence[TrainerCallback] = (),
    progress: bool = True, trainer_cls: type[RLTrainer] | None = None,
) -> RLTrainer:
    """The one way from settings to a trainer: the reward (an import path is imported here, before any model
    loads), the dataset (loaded unless given), the policy the settings name (``policy/registry.py``) on the
    run's device, and the trainer around them (``trainer_cls``, e.g. the data-parallel one, or ``RLTrainer``)."""
    from rl4rec_core.data import load_datasets
    from rl4rec_core.policy.registry import build_policy
    from rl4rec_core.retrieval.rewards import resolve_reward

    resolve_reward(settings.algorithm.reward)  # raises ConfigError naming the known rewards

    if dataset is None:  # every dataset of the run; one is passed on as itself, several as a list
        loaded = load_datasets(settings.run.datasets)
        dataset = loaded[0] if len(loaded) == 1 else loaded
    set_seed(settings.run.seed)
    policy = build_policy(settings, dataset)
    return (trainer_cls or RLTrainer)(settings, policy, reward_source, dataset, callbacks=callbacks, progress=progress)
