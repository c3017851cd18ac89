"""Constrained decoding (``fusion.constrained``): the policy can only write one of its prompt's candidate titles.

A trie over each prompt's tokenised candidate titles, each ended by EOS, says which tokens may come next
after what was generated so far; :class:`CandidateMask` sets every other logit to ``-inf`` before the
sampling warpers and the keyed Gumbel noise (``keyed_sampling.py``), so a sample is drawn from the policy's
distribution renormalised over the allowed tokens, and keyed sampling's (seed, step, user) reproducibility
holds. The update must score the same distribution: :func:`allowed_per_position` records, per sampled
token, the ids that were allowed, and the log-prob's normaliser is the logsumexp over those ids alone
(:func:`masked_logprobs`; ``rollout.pack`` / ``shared_prefix.pack_groups`` carry them as ``allowed [n, T, A]``,
``-1`` padded). A title longer than ``max_new_tokens`` is cut there, as any text is.

Only the hf engine decodes so; vLLM refuses it (one line).
"""

from __future__ import annotations

import torch

Trie = dict  # token id -> child Trie; the child of EOS is an empty dict (a leaf)


def build_trie(titles_ids: list[list[int]], eos_id: int) -> Trie:
    """The trie of the token sequences ``titles_ids``, each ended by ``eos_id``."""
    root: Trie = {}
    for ids in titles_ids:
        node = root
        for t in list(ids) + [eos_id]:
            node = node.setdefault(int(t), {})
    return root


def allowed_after(trie: Trie, generated: list[int]) -> list[int] | None:
    """The ids allowed after ``generated``, or None (no constraint) once the walk has left the trie: after EOS
    (a finished row, padded by ``generate``) nothing is sampled any more, so nothing needs masking."""
    node = trie
    for t in generated:
        node = node.get(t)
        if not node:
            return None
    return list(node)


def allowed_per_position(trie: Trie, completion: list[int]) -> list[list[int]]:
    """For each token of ``completion``, the ids that were allowed when it was drawn (``[]``: unconstrained)."""
    return [allowed_after(trie, completion[:t]) or [] for t in range(len(completion))]


class CandidateMask:
    """A ``generate`` logits processor: ``-inf`` for every token a row's trie does not allow next.

    ``row_tries[r]``: the trie of batch row ``r`` (prompt-major: a prompt's samples are consecutive rows);
    ``prompt_width``: the columns of ``input_ids`` before the first generated token (left-padded prompts)."""

    def __init__(self, row_tries: list[Trie], prompt_width: int):
        self.row_tries, self.prompt_width = list(row_tries), prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.row_tries):
            raise RuntimeError(f"constrained decoding got {scores.shape[0]} rows for {len(self.row_tries)} tries")
        keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
        for r, (trie, gen) in enumerate(zip(self.row_tries, input_ids[:, self.prompt_width:].tolist())):
            allowed = allowed_after(trie, gen)
            if allowed is None:
                keep[r] = True
            else:
                keep[r, allowed] = True
        return scores.masked_fill(~keep, float("-inf"))


def pad_allowed(rows: list[list[list[int]]], t_len: int) -> torch.Tensor:
    """Per sequence, per position allowed ids -> ``[n, T, A]`` long, ``-1`` where nothing (or no constraint)."""
    width = max([1] + [len(a) for row in rows for a in row])
    out = torch.full((len(rows), t_len, width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        for t, ids in enumerate(row[:t_len]):
            if ids:
                out[i, t, :len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def masked_logprobs(logits: torch.Tensor, targets: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """``[n, T]`` log-probs of ``targets [n, T]`` under ``softmax(logits [n, T, V])``, renormalised over the
    ``allowed [n, T, A]`` ids where a position has any (``-1`` padding); the full softmax elsewhere."""
    full = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if allowed is None:
        return picked - full
    allowed = allowed.to(logits.device)
    valid = allowed >= 0
    sub = logits.gather(-1, allowed.clamp(min=0)).masked_fill(~valid, float("-inf"))
    # positions without a constraint take the full normaliser (and never a logsumexp of nothing: -inf)
    norm = torch.where(valid.any(-1), torch.logsumexp(sub.masked_fill(~valid.any(-1, keepdim=True), 0.0), -1), full)
    return picked - norm
