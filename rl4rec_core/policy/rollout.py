"""Typed containers for generated samples, and the per-token log-probabilities of a causal LM.

Shapes: ``B`` prompts, ``G`` samples per prompt, ``N = B*G`` sequences (grouped: prompt i's samples
at ``i*G : (i+1)*G``), ``n`` sequences in one micro-batch, ``P`` the longest prompt of a micro-batch,
``T`` its longest completion.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rl4rec_core.policy.constrained import masked_logprobs, pad_allowed


@dataclass
class Rollout:
    """One batch of generations, kept with the exact token ids that were sampled.

    prompts: ``[B]`` prompt texts.  texts: ``[N]`` decoded completions (special tokens removed).
    prompt_ids: ``[B]`` token ids of each prompt, unpadded.
    completion_ids: ``[N]`` sampled ids, unpadded, up to and including the end-of-sequence token when
    the model stopped by itself (so the policy is also trained on *when* to stop).
    num_samples: ``G``.
    allowed: with constrained decoding (``policy/constrained.py``), per sequence and sampled token the ids
    that were allowed (``[]``: unconstrained); None otherwise.
    """

    prompts: list[str]
    texts: list[str]
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    num_samples: int
    allowed: list[list[list[int]]] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def gen_lengths(self) -> list[int]:
        return [len(c) for c in self.completion_ids]


@dataclass
class TokenBatch:
    """A micro-batch ready for one forward pass: prompts left-padded, completions right-padded, so
    every completion starts at column ``P``.

    input_ids, attention_mask: ``[n, P + T]``; position_ids ``[n, P + T]`` (count real tokens only,
    so left padding does not shift positions); completion_mask ``[n, T]`` (1 = sampled token);
    indices: which of the rollout's ``N`` sequences these are. allowed: ``[n, T, A]`` the ids each token was
    drawn among with constrained decoding (``-1`` padded), else None.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    completion_mask: torch.Tensor
    prompt_len: int
    indices: list[int]
    allowed: torch.Tensor | None = None

    @property
    def completion_ids(self) -> torch.Tensor:
        """``[n, T]`` the sampled tokens (padding where ``completion_mask`` is 0)."""
        return self.input_ids[:, self.prompt_len:]


def pack(rollout: Rollout, indices: list[int], pad_id: int, device: torch.device | str = "cpu") -> TokenBatch:
    """Build the :class:`TokenBatch` for sequences ``indices`` of ``rollout``."""
    g = rollout.num_samples
    prompts = [rollout.prompt_ids[i // g] for i in indices]
    comps = [rollout.completion_ids[i] for i in indices]
    p_len = max(len(p) for p in prompts)
    # at least one completion column, so an all-empty micro-batch still has a well-formed [n, T] mask
    t_len = max(1, max(len(c) for c in comps))
    n = len(indices)
    ids = torch.full((n, p_len + t_len), pad_id, dtype=torch.long)
    attn = torch.zeros((n, p_len + t_len), dtype=torch.long)
    cmask = torch.zeros((n, t_len), dtype=torch.long)
    for row, (p, c) in enumerate(zip(prompts, comps)):
        ids[row, p_len - len(p):p_len] = torch.tensor(p, dtype=torch.long)
        attn[row, p_len - len(p):p_len] = 1
        if c:
            ids[row, p_len:p_len + len(c)] = torch.tensor(c, dtype=torch.long)
            attn[row, p_len:p_len + len(c)] = 1
            cmask[row, :len(c)] = 1
    pos = (attn.cumsum(dim=1) - 1).clamp(min=0)
    allowed = None if rollout.allowed is None else pad_allowed([rollout.allowed[i] for i in indices], t_len).to(device)
    return TokenBatch(ids.to(device), attn.to(device), pos.to(device), cmask.to(device), p_len, list(indices), allowed)


def completion_logprobs(
    model, batch: TokenBatch, temperature: float = 1.0, logits_to_keep: bool = True
) -> torch.Tensor:
    """log π(token) of every completion token, ``[n, T]`` float32 (padding positions hold junk; mask them).

    Logits are divided by the sampling temperature so the log-probs are those of the distribution the
    tokens were drawn from. Only the last ``T + 1`` positions go through the output layer
    (``logits_to_keep``): the prompt's logits are never needed and, with a 49 k vocabulary, they are
    most of the forward pass's memory. Models whose forward lacks that argument pass ``False``.
    """
    t_len = batch.completion_mask.shape[1]
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=False,
        **({"logits_to_keep": t_len + 1} if logits_to_keep else {}),
    )
    logits = out.logits[:, -(t_len + 1):-1, :].float()  # position j predicts token j + 1
    if temperature != 1.0:
        logits = logits / temperature
    # gather - logsumexp instead of log_softmax: never materialises a second [n, T, V] tensor; with constrained
    # decoding the normaliser covers the allowed tokens only, as the sampler's distribution did
    return masked_logprobs(logits, batch.completion_ids, batch.allowed)


def cut_completion(ids: list[int], eos_ids: set[int]) -> list[int]:
    """Generated row -> tokens up to and including the first end-of-sequence token."""
    for j, t in enumerate(ids):
        if t in eos_ids:
            return ids[: j + 1]
    return ids
