"""SASRec (Kang & McAuley, 2018) in plain torch: a learned sequential baseline for the policies to beat.

Item ``i`` is token ``i + 1``; token 0 is padding, so every sequence is left-padded and the last
position always holds the newest item. The item embedding doubles as the output layer, and training
uses full softmax cross-entropy over all items at every position (cheap at a few thousand items, and
stronger than the paper's one-negative BCE). Training sees ``Dataset.train_histories()`` only;
validation NDCG@10 picks the epoch (early stopping) and test data is never read.

A trained model is cached in ``paths.emb_dir()/{dataset}_sasrec_{key}.pt``, where ``key`` hashes the
config, the training histories and the validation targets: everything that decides the weights.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

from rl4rec_core import paths
from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.io import atomic_path

logger = logging.getLogger(__name__)

# bump when the model, the training recipe or the file layout changes, so old caches are not reused
_FORMAT_VERSION = 1
_IGNORE = -100  # target of padded positions: F.cross_entropy skips it


@dataclass
class SASRecConfig:
    """Hyper-parameters of the model and its training. The defaults (RecBole-like) reach validation NDCG@10
    0.119 on ML-100k (best epoch 30), so they were kept untuned."""

    max_len: int = 50  # newest items the model reads; older ones are dropped (and positions learned up to this)
    hidden: int = 64  # width of item/position embeddings and of every block
    num_layers: int = 2  # causal self-attention blocks
    num_heads: int = 1  # attention heads per block; must divide ``hidden``
    dropout: float = 0.2  # on embeddings, attention weights and block outputs
    learning_rate: float = 1e-3  # Adam step size
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    batch_size: int = 128  # training windows per step
    max_epochs: int = 200  # hard cap on passes over the training windows
    patience: int = 10  # epochs without a validation NDCG@10 gain before stopping
    eval_every: int = 1  # validate every this many epochs (patience still counts epochs)
    seed: int = 0  # model init, dropout and shuffling all draw from this seed

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type == "int" and (not isinstance(v, int) or isinstance(v, bool)):
                _reject(f.name, v, "must be an integer", "pass a whole number")
            if f.type == "float" and (not isinstance(v, (int, float)) or isinstance(v, bool)):
                _reject(f.name, v, "must be a number", "pass e.g. 0.2")
        for name in ("max_len", "hidden", "num_layers", "num_heads", "batch_size", "max_epochs", "patience",
                     "eval_every"):
            if getattr(self, name) <= 0:
                _reject(name, getattr(self, name), "must be > 0", "pass a positive integer")
        if self.hidden % self.num_heads:
            _reject("hidden", self.hidden, f"is not divisible by num_heads={self.num_heads}",
                    "choose num_heads that divides hidden (e.g. 1 or 2)")
        if not 0.0 <= self.dropout < 1.0:
            _reject("dropout", self.dropout, "must be in [0, 1)", "use e.g. 0.2")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            _reject("learning_rate", self.learning_rate, "must be a positive number", "use e.g. 1e-3")
        if not self.weight_decay >= 0:
            _reject("weight_decay", self.weight_decay, "must be >= 0", "use 0 or e.g. 0.01")


def _reject(name: str, value, problem: str, fix: str):
    raise ConfigError(f"SASRecConfig.{name}={value!r} {problem}. Fix: {fix}")


def pad_left(histories: Sequence[Sequence[int]], max_len: int) -> torch.Tensor:
    """Tokens ``[b, max_len]`` (long): the newest ``max_len`` items of each history as ``item + 1``,
    left-padded with 0."""
    out = torch.zeros(len(histories), max_len, dtype=torch.long)
    for row, h in enumerate(histories):
        tail = list(h)[-max_len:]
        if tail:
            out[row, max_len - len(tail):] = torch.as_tensor(tail, dtype=torch.long) + 1
    return out


def training_windows(histories: Sequence[Sequence[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every next-item position of every history, cut into windows of ``max_len``.

    Returns ``(inputs [W, max_len] tokens, targets [W, max_len] item indices or -100 on padding)``.
    Windows are cut from the end of each history, so the newest items keep the longest context.
    E.g. history ``[5, 6, 7, 8]``, max_len 2 -> inputs ``[[7, 8], [0, 6]]`` (tokens = item + 1),
    targets ``[[7, 8], [-100, 6]]``.
    """
    inputs, targets = [], []
    for h in histories:
        src, tgt = list(h[:-1]), list(h[1:])
        for end in range(len(src), 0, -max_len):
            start = max(0, end - max_len)
            pad = max_len - (end - start)
            inputs.append([0] * pad + [i + 1 for i in src[start:end]])
            targets.append([_IGNORE] * pad + tgt[start:end])
    if not inputs:
        raise DataError("no training history has 2 or more items, so SASRec has nothing to learn from. "
                        "Fix: prepare the dataset with longer user sequences (min 4 items per user)")
    return torch.tensor(inputs, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


class _Block(nn.Module):
    """Pre-norm causal self-attention + point-wise feed-forward, both residual: ``[b, L, d] -> [b, L, d]``."""

    def __init__(self, cfg: SASRecConfig):
        super().__init__()
        self.heads, self.p = cfg.num_heads, cfg.dropout
        self.ln1, self.ln2 = nn.LayerNorm(cfg.hidden), nn.LayerNorm(cfg.hidden)
        self.qkv, self.proj = nn.Linear(cfg.hidden, 3 * cfg.hidden), nn.Linear(cfg.hidden, cfg.hidden)
        self.ff = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.hidden))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x [b, L, d]``; ``mask [b, 1, L, L]`` bool, True where a query may attend to a key."""
        b, L, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, L, d)))
        return x + self.drop(self.ff(self.ln2(x)))


class SASRec(nn.Module):
    """Item + learned position embeddings, causal blocks, final LayerNorm; output layer = item embeddings."""

    def __init__(self, num_items: int, cfg: SASRecConfig):
        super().__init__()
        self.num_items, self.max_len = num_items, cfg.max_len
        self.item = nn.Embedding(num_items + 1, cfg.hidden, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_len, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.num_layers))
        self.ln = nn.LayerNorm(cfg.hidden)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        # small normal init (as BERT/RecBole): with a tied output layer, large item vectors make the first
        # logits huge and the early loss spiky
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            nn.init.zeros_(m.weight[m.padding_idx])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens [b, L]`` (left-padded, L <= max_len) -> hidden states ``[b, L, d]``."""
        L = tokens.shape[1]
        real = tokens > 0  # [b, L]
        causal = torch.ones(L, L, dtype=torch.bool, device=tokens.device).tril()
        # a padded query would see no key at all (NaN softmax), so each position may always see itself;
        # real positions never see padding, and padded positions never reach the loss or the scores
        mask = (causal & real[:, None, :]) | torch.eye(L, dtype=torch.bool, device=tokens.device)
        x = self.item(tokens) + self.pos.weight[self.max_len - L:]  # right-aligned: newest item, last position
        x = self.drop(x * real[..., None])
        for block in self.blocks:
            x = block(x, mask[:, None]) * real[..., None]
        return self.ln(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden [..., d]`` -> item scores ``[..., N]`` (padding token excluded)."""
        return hidden @ self.item.weight[1:].T


def _run_epoch(model: SASRec, opt: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor,
               batch_size: int, gen: torch.Generator) -> float:
    """One shuffled pass over ``inputs/targets [W, L]``; returns the mean cross-entropy per target."""
    model.train()
    total, count = 0.0, 0
    for idx in torch.randperm(len(inputs), generator=gen).split(batch_size):
        tgt = targets[idx]
        loss = F.cross_entropy(model.logits(model(inputs[idx])).flatten(0, 1), tgt.flatten(), ignore_index=_IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n = int((tgt != _IGNORE).sum())
        total, count = total + loss.item() * n, count + n
    return total / max(count, 1)


def train_sasrec(train_histories: Sequence[Sequence[int]], num_items: int, config: SASRecConfig,
                 valid=None, progress: bool = False) -> tuple[SASRec, int, float]:
    """Train on ``train_histories``; early-stop on NDCG@10 of ``valid`` (a Split) and keep the best epoch.

    Without ``valid`` it trains ``max_epochs`` epochs and keeps the last. Returns
    ``(model in eval mode, best epoch (1-based), its validation NDCG@10 or nan)``.
    """
    from rl4rec_core.evaluation.ranking import evaluate_scores

    inputs, targets = training_windows(train_histories, config.max_len)
    # a private RNG stream: the same seed gives the same weights whatever the caller did to the global RNG
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        model = SASRec(num_items, config)
        opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.98),
                                weight_decay=config.weight_decay)
        best = (-1.0, 0, None)  # (valid ndcg@10, epoch, state_dict)
        bar = _progress_bar(config.max_epochs, progress)
        for epoch in range(1, config.max_epochs + 1):
            loss = _run_epoch(model, opt, inputs, targets, config.batch_size, gen)
            bar.update(1)
            if valid is None or (epoch % config.eval_every and epoch != config.max_epochs):
                logger.debug("sasrec epoch %d loss %.4f", epoch, loss)
                continue
            ndcg = evaluate_scores(SASRecBaseline(model, config), valid, ks=(10,))["ndcg@10"]
            logger.info("sasrec epoch %d loss %.4f valid ndcg@10 %.4f", epoch, loss, ndcg)
            bar.set_postfix(loss=f"{loss:.3f}", ndcg10=f"{ndcg:.4f}")
            if ndcg > best[0]:
                best = (ndcg, epoch, copy.deepcopy(model.state_dict()))
            elif epoch - best[1] >= config.patience:
                break
        bar.close()
    if valid is None:
        return model.eval(), epoch, float("nan")
    model.load_state_dict(best[2])
    return model.eval(), best[1], best[0]


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    from rl4rec_core.progress import bars_wanted

    return tqdm(total=total, desc="sasrec epochs", unit="epoch", disable=not bars_wanted(enabled), leave=False)


def cache_key(dataset, config: SASRecConfig) -> str:
    """12 hex chars of sha256 over the format version, the config, the item count, the training
    histories and the validation targets (which choose the epoch). Test targets are left out: they
    never touch the weights."""
    h = hashlib.sha256()
    h.update(json.dumps({"v": _FORMAT_VERSION, "config": asdict(config), "items": dataset.num_items},
                        sort_keys=True).encode())
    h.update(json.dumps(dataset.train_histories()).encode())
    h.update(json.dumps(dataset.split("valid").targets.tolist()).encode())
    return h.hexdigest()[:12]


class SASRecBaseline:
    """Scorer over a trained :class:`SASRec`: ``score(histories) -> [b, N]``, the logits after the last item."""

    name = "sasrec"

    def __init__(self, model: SASRec, config: SASRecConfig, best_epoch: int = 0,
                 valid_ndcg10: float = float("nan"), train_seconds: float = 0.0, from_cache: bool = False):
        self.model, self.config, self.num_items = model, config, model.num_items
        self.best_epoch, self.valid_ndcg10 = best_epoch, valid_ndcg10
        self.train_seconds, self.from_cache = train_seconds, from_cache

    @torch.no_grad()
    def score(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """``[b, N]`` float logits; users with an empty history get all zeros (every item ties)."""
        was_training = self.model.training
        self.model.eval()
        tokens = pad_left(histories, self.config.max_len)  # [b, L]
        out = self.model.logits(self.model(tokens)[:, -1])  # [b, N]
        self.model.train(was_training)
        return out.masked_fill(tokens[:, -1:] == 0, 0.0)

    @classmethod
    def from_dataset(cls, dataset, config: SASRecConfig | None = None, cache: bool = True,
                     progress: bool = False) -> SASRecBaseline:
        """Load the cached model for (dataset, config) or train one (and cache it, atomically)."""
        config = config or SASRecConfig()
        path = paths.emb_dir() / f"{dataset.name}_sasrec_{cache_key(dataset, config)}.pt"
        if cache and path.is_file():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model = SASRec(dataset.num_items, config)
            model.load_state_dict(saved["state_dict"])
            logger.info("sasrec: loaded %s (best epoch %d)", path, saved["best_epoch"])
            return cls(model.eval(), config, saved["best_epoch"], saved["valid_ndcg10"], saved["train_seconds"], True)
        t0 = time.perf_counter()
        model, best_epoch, ndcg = train_sasrec(dataset.train_histories(), dataset.num_items, config,
                                               valid=dataset.split("valid"), progress=progress)
        seconds = time.perf_counter() - t0
        logger.info("sasrec: best epoch %d, valid ndcg@10 %.4f, %.1f s", best_epoch, ndcg, seconds)
        if cache:
            with atomic_path(path) as tmp:
                torch.save({"state_dict": model.state_dict(), "config": asdict(config), "best_epoch": best_epoch,
                            "valid_ndcg10": ndcg, "train_seconds": seconds}, tmp)
        return cls(model, config, best_epoch, ndcg, seconds)
