"""Training SASRec: full softmax over the items at every real position, early stopping on validation NDCG@10.

Training reads the training histories only (``Dataset.train_histories()``: each sequence without its
validation and test items). Validation histories and targets pick the epoch (the best NDCG@10, stopping
after ``sasrec_patience`` epochs without a gain); test data is never read. Validation ranks every item for
every user in a few batched passes (the history masked, pessimistic ties: ``metrics.target_ranks``), so an
epoch's check costs well under a second on ML-100k.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from rl4rec_core import metrics
from rl4rec_core.recommenders.sasrec_model import IGNORE, SASRec, SASRecScorer, training_windows
from rl4rec_core.settings import SASRecSettings

logger = logging.getLogger(__name__)

EVAL_BATCH = 1024  # validation users scored at once (bounds memory at ~2 x EVAL_BATCH x items floats)


@dataclass
class Trained:
    """A trained model (eval mode, the best epoch's weights) and how it got there."""

    model: SASRec
    epochs: int  # epochs run
    best_epoch: int  # 1-based; the last epoch without validation
    valid_ndcg10: float  # nan without validation
    valid_hit10: float


def validate(scorer: SASRecScorer, histories: Sequence[Sequence[int]], targets: torch.Tensor) -> dict[str, float]:
    """``{"ndcg@10", "hit@10"}`` of ``scorer`` on these users: every item ranked, the history masked."""
    ranks = []
    for start in range(0, len(histories), EVAL_BATCH):
        hist = histories[start:start + EVAL_BATCH]
        scores = scorer.score(hist).float()
        ranks.append(metrics.target_ranks(scores, targets[start:start + EVAL_BATCH].to(scores.device), hist).cpu())
    return metrics.summarize(torch.cat(ranks), (10,))


def _run_epoch(model: SASRec, opt: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor,
               batch_size: int, gen: torch.Generator, device: torch.device) -> float:
    """One shuffled pass over ``inputs/targets [W, L]``; returns the mean cross-entropy per target."""
    model.train()
    total, count = 0.0, 0
    for idx in torch.randperm(len(inputs), generator=gen).split(batch_size):
        tgt = targets[idx].to(device)
        real = tgt != IGNORE  # [b, L]
        # logits of the real positions only: a fifth of the positions of ML-100k's windows is padding, and
        # the [positions, items] logits and their softmax are most of a step's time
        hidden = model(inputs[idx].to(device))[real]  # [n, d]
        loss = F.cross_entropy(model.logits(hidden), tgt[real])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n = int(real.sum())
        total, count = total + loss.item() * n, count + n
    return total / max(count, 1)


def train_sasrec(train_histories: Sequence[Sequence[int]], num_items: int, settings: SASRecSettings,
                 valid=None, progress: bool = False, device: str | torch.device = "cpu",
                 on_epoch: Callable[[int, float, dict], None] | None = None) -> Trained:
    """Train on ``train_histories``; early-stop on NDCG@10 of ``valid`` (``histories`` and ``targets``, a
    ``Split``) and keep the best epoch's weights. Without ``valid`` it runs ``sasrec_max_epochs`` epochs and
    keeps the last. ``on_epoch(epoch, loss, valid_metrics)`` sees every epoch."""
    s, device = settings, torch.device(device)
    inputs, targets = training_windows(train_histories, s.sasrec_max_len)
    # a private RNG stream: the same seed gives the same weights whatever the caller did to the global RNG
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.sasrec_seed)
        gen = torch.Generator().manual_seed(s.sasrec_seed)
        model = SASRec(num_items, s).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=s.sasrec_learning_rate, betas=(0.9, 0.98),
                                weight_decay=s.sasrec_weight_decay)
        best: tuple[dict, int, dict | None] = ({"ndcg@10": -1.0, "hit@10": float("nan")}, 0, None)
        bar = _progress_bar(s.sasrec_max_epochs, progress)
        for epoch in range(1, s.sasrec_max_epochs + 1):
            loss = _run_epoch(model, opt, inputs, targets, s.sasrec_batch_size, gen, device)
            bar.update(1)
            found = {} if valid is None else validate(SASRecScorer(model, s), valid.histories, valid.targets)
            if on_epoch:
                on_epoch(epoch, loss, found)
            if valid is None:
                logger.debug("sasrec epoch %d loss %.4f", epoch, loss)
                continue
            logger.debug("sasrec epoch %d loss %.4f valid ndcg@10 %.4f", epoch, loss, found["ndcg@10"])
            bar.set_postfix(loss=f"{loss:.3f}", ndcg10=f"{found['ndcg@10']:.4f}", best=best[1])
            if found["ndcg@10"] > best[0]["ndcg@10"]:
                best = (found, epoch, copy.deepcopy(model.state_dict()))
            elif epoch - best[1] >= s.sasrec_patience:
                break
        bar.close()
    if valid is None:
        return Trained(model.eval(), epoch, epoch, float("nan"), float("nan"))
    model.load_state_dict(best[2])
    return Trained(model.eval(), epoch, best[1], best[0]["ndcg@10"], best[0]["hit@10"])


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    from rl4rec_core.progress import bars_wanted

    return tqdm(total=total, desc="sasrec epochs", unit="epoch", disable=not bars_wanted(enabled), leave=False)
