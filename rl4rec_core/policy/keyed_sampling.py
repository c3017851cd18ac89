"""Sampling keyed to the prompt, not to the batch: a prompt given seed ``s`` gets the same samples whatever
else is in the batch, and whichever process samples it.

Why: data-parallel training (``training/distributed.py``) splits a step's users over workers. With
torch's one generator per process, a user's samples would depend on how many workers there are and on
who shares its batch, so a 2-worker run could not repeat a 1-worker run. Keyed, it does (up to float
rounding of the logits, which differs with the batch's padding).

How: the Gumbel-max trick. ``argmax(logits + g)`` with ``g`` i.i.d. Gumbel(0, 1) is an exact sample of
``softmax(logits)``, so a greedy decode over logits that went through the usual warpers (temperature,
top-k, top-p) and then got Gumbel noise *is* sampling. The noise of row ``r`` at decode position ``t``
comes from its own generator seeded by ``(seed of r's prompt, sample index, t)``.
"""

from __future__ import annotations

import hashlib

import torch

_MASK = (1 << 63) - 1


def sample_key(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python runs, unlike ``hash``)."""
    digest = hashlib.blake2b(b"/".join(str(int(p)).encode() for p in parts), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK


class KeyedGumbel:
    """Adds Gumbel noise keyed per row and decode position; decode greedily after it. A logits processor
    of ``generate`` (a plain callable: transformers is imported only where the list is built).

    ``row_seeds[r]`` is the seed of row ``r`` of the batch ``generate`` runs (prompt-major: a prompt's
    samples are consecutive rows, each with its own seed).
    """

    def __init__(self, row_seeds: list[int]):
        self.row_seeds = list(row_seeds)
        self.position = 0  # decode positions seen; generate calls a processor once per new token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.row_seeds):
            raise RuntimeError(f"keyed sampling got {scores.shape[0]} rows for {len(self.row_seeds)} seeds")
        vocab = scores.shape[-1]
        noise = torch.empty(scores.shape, dtype=torch.float32)
        for r, seed in enumerate(self.row_seeds):
            gen = torch.Generator().manual_seed(sample_key(seed, self.position))
            noise[r] = torch.rand(vocab, generator=gen)
        self.position += 1
        # u in [0, 1): clamp away from 0 and 1 so -log(-log(u)) stays finite
        gumbel = -torch.log(-torch.log(noise.clamp(1e-10, 1.0 - 1e-7)))
        # -inf (masked by top-k/top-p) stays -inf; the noise is added in float32 whatever the logits' dtype
        return scores.float() + gumbel.to(scores.device)


def keyed_processors(row_seeds: list[int], temperature: float, top_p: float, top_k: int | None):
    """The warpers ``generate`` applies when sampling, then :class:`KeyedGumbel`, as a ``LogitsProcessorList``
    to pass with ``do_sample=False``."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    procs: list = []
    if temperature != 1.0:
        procs.append(TemperatureLogitsWarper(temperature))
    if top_k:
        procs.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        procs.append(TopPLogitsWarper(top_p))
    procs.append(KeyedGumbel(row_seeds))
    return LogitsProcessorList(procs)


def row_seeds(prompt_seeds: list[int], num_samples: int) -> list[int]:
    """One seed per generated row: sample ``j`` of the prompt with seed ``s`` gets ``key(s, j)``."""
    return [sample_key(s, j) for s in prompt_seeds for j in range(num_samples)]
