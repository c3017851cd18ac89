"""SASRec (Kang & McAuley, 2018) in plain torch: the network, its inputs, and the scorer over a trained one.

Item ``i`` is token ``i + 1``; token 0 is padding, so every sequence is left-padded and the last position
always holds the newest item. The item embedding doubles as the output layer (full softmax over all items,
cheap at a few thousand items, and stronger than the paper's one-negative BCE).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from rl4rec_core.errors import DataError
from rl4rec_core.settings import SASRecSettings

IGNORE = -100  # target of padded positions: the loss skips them


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
            targets.append([IGNORE] * pad + tgt[start:end])
    if not inputs:
        raise DataError("no training history has 2 or more items, so SASRec has nothing to learn from. "
                        "Fix: prepare the dataset with longer user sequences (min 4 items per user)")
    return torch.tensor(inputs, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


class _Block(nn.Module):
    """Pre-norm causal self-attention + point-wise feed-forward, both residual: ``[b, L, d] -> [b, L, d]``."""

    def __init__(self, s: SASRecSettings):
        super().__init__()
        d = s.sasrec_hidden
        self.heads, self.p = s.sasrec_heads, s.sasrec_dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.drop = nn.Dropout(s.sasrec_dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x [b, L, d]``; ``mask [b, 1, L, L]`` bool, True where a query may attend to a key."""
        b, L, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, L, d)))
        return x + self.drop(self.ff(self.ln2(x)))


class SASRec(nn.Module):
    """Item + learned position embeddings, causal blocks, final LayerNorm; output layer = item embeddings."""

    def __init__(self, num_items: int, s: SASRecSettings):
        super().__init__()
        self.num_items, self.max_len = num_items, s.sasrec_max_len
        self.item = nn.Embedding(num_items + 1, s.sasrec_hidden, padding_idx=0)
        self.pos = nn.Embedding(s.sasrec_max_len, s.sasrec_hidden)
        self.drop = nn.Dropout(s.sasrec_dropout)
        self.blocks = nn.ModuleList(_Block(s) for _ in range(s.sasrec_layers))
        self.ln = nn.LayerNorm(s.sasrec_hidden)
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


class SASRecScorer:
    """Scores over a trained :class:`SASRec`: ``score(histories) -> [b, N]``, the logits after the last item.

    Scores read the history alone (the newest ``max_len`` items), in eval mode and without gradients.
    ``record`` (set by the store) says which checkpoint it is.
    """

    name = "sasrec"

    def __init__(self, model: SASRec, settings: SASRecSettings, record: dict | None = None):
        self.model, self.settings, self.num_items = model.eval(), settings, model.num_items
        self._record = dict(record or {})

    @property
    def device(self) -> torch.device:
        return self.model.item.weight.device

    @torch.no_grad()
    def score(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """``[b, N]`` float logits; users with an empty history get all zeros (every item ties)."""
        was_training = self.model.training
        self.model.eval()
        tokens = pad_left(histories, self.settings.sasrec_max_len).to(self.device)  # [b, L]
        out = self.model.logits(self.model(tokens)[:, -1])  # [b, N]
        self.model.train(was_training)
        return out.masked_fill(tokens[:, -1:] == 0, 0.0)

    def record(self) -> dict:
        """What this scorer is: name, checkpoint path, data digest, best epoch, validation metrics."""
        return {"base": self.name, "name": self.name, **self._record}
