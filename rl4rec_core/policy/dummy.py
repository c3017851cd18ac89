"""``DummyRecPolicy``: the RecPolicy interface without an LLM, so the whole loop runs in seconds.

It still *really* learns. A "text" is ``dummy_words`` words drawn from a vocabulary of words found in the
item texts (titles, genres). The word distribution is a softmax over learnable logits::

    logits[p] = bias + features(prompt p) @ weight        bias [V], weight [V, V], features [V]

where ``features`` is the normalised bag of vocabulary words in the prompt (so what a user watched can
steer what gets "generated"). Updates use the same policy-gradient code as the LLM policy
(``rl4rec_core.policy.algorithms``): GRPO group advantages or REINFORCE with a running baseline, the
token-level surrogate loss (a word plays the part of a token), optional PPO clipping and a KL penalty
against the starting (uniform) distribution — exact here, because the distribution is small.

With candidates (the fused recipe: the base recommender's top-K in the prompt) it picks one of them
instead, so ``rl4rec run --quick`` exercises that path: candidate ``j`` of prompt ``p`` scores
``positions[j] + mean(logits[p, words of its title])`` (a learnable preference over the base's ranks
plus the word logits above), a softmax over the K scores is the choice's distribution, and the text is
the chosen title. A choice plays the part of a one-token text in the update.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from rl4rec_core.errors import ConfigError, DataError, MissingArtifactError
from rl4rec_core.integrity import FIX, load_torch, read_json_object
from rl4rec_core.io import atomic_path, write_json
from rl4rec_core.policy.algorithms import RunningBaseline, compute_advantages, policy_gradient_loss
from rl4rec_core.policy.config import PolicyConfig
from rl4rec_core.policy.keyed_sampling import sample_key
from rl4rec_core.state_checks import (check_baseline_state, check_optimizer_state, check_tensor, owned,
                                      state_bound)

# recent items a prompt shows when the policy settings give no history_len (the original's example shows 5)
HISTORY_ITEMS = 5
VOCAB_SIZE = 256
_STATE_KEYS = frozenset({"bias", "weight", "positions", "optimizer", "baseline", "generator"})
# candidate positions the learnable preference covers (the base's top-K shown in a prompt)
MAX_CANDIDATES = 64
_WORD = re.compile(r"[a-z][a-z']+")
# words that say nothing about an item
_STOP = frozenset(
    "the a an and of in on to for with from at by is it its as or be this that his her their our your "
    "my me you we they he she them us not no but are was were has have had la le les el de der die das "
    "und ii iii".split()
)


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (the unit the dummy policy generates)."""
    return _WORD.findall(text.lower())


def build_vocab(texts: Iterable[str], size: int = VOCAB_SIZE) -> list[str]:
    """The ``size`` most frequent non-stop words of ``texts`` (ties broken alphabetically)."""
    counts = Counter(w for t in texts for w in words(t) if w not in _STOP and len(w) > 2)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [w for w, _ in ranked[:size]]


class DummyRecPolicy:
    """The dummy policy over ``vocab``, built from a ``PolicyConfig`` (words per text: ``policy.dummy_words``;
    recent items shown: ``policy.history_len`` or ``HISTORY_ITEMS``; step, algorithm and seed as an LLM's)."""

    kind = "dummy"

    def __init__(self, vocab: Sequence[str], config: PolicyConfig):
        if len(vocab) < 2:
            raise ConfigError(f"the dummy policy needs a vocabulary of >= 2 words, got {len(vocab)}")
        if len(set(vocab)) != len(vocab):
            raise ConfigError("the dummy policy's vocabulary has duplicate words")
        if not isinstance(config, PolicyConfig):
            raise ConfigError("DummyRecPolicy takes a PolicyConfig, e.g. PolicyConfig.from_fields(policy='dummy')")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.config = config
        self.num_words = config.policy.dummy_words
        self.learning_rate = config.learning_rate
        self.algo = config.algorithm
        self.seed = config.seed
        self.history_items = config.policy.history_len or HISTORY_ITEMS
        v = len(self.vocab)
        # zero init = the uniform distribution, which is also the KL reference
        self.bias = torch.nn.Parameter(torch.zeros(v))
        self.weight = torch.nn.Parameter(torch.zeros(v, v))
        # preference for the base's rank j (zero: every candidate as likely as its words make it)
        self.positions = torch.nn.Parameter(torch.zeros(MAX_CANDIDATES))
        self.optimizer = torch.optim.Adam([self.bias, self.weight, self.positions], lr=self.learning_rate)
        # the candidate titles of the prompts build_prompts made last (generate and update look them up)
        self._candidates: dict[str, list[str]] = {}
        self.baseline = RunningBaseline(self.algo.baseline_momentum)
        self.generator = torch.Generator().manual_seed(self.seed)
        # set by the data-parallel trainer: averages the gradients of every worker before each step
        self.grad_sync: Callable[[list[torch.Tensor]], None] | None = None

    @classmethod
    def from_item_texts(cls, texts: Iterable[str], config: PolicyConfig, vocab_size: int = VOCAB_SIZE) -> "DummyRecPolicy":
        return cls(build_vocab(texts, vocab_size), config)

    @classmethod
    def from_dataset(cls, dataset, config: PolicyConfig, vocab_size: int = VOCAB_SIZE) -> "DummyRecPolicy":
        """Vocabulary from the dataset's item titles and text columns (genres, categories, ...)."""
        items = dataset.items
        import pandas as pd

        cols = [c for c in items.columns if c not in ("item_idx", "item_id") and not pd.api.types.is_numeric_dtype(items[c])]
        texts = (" ".join(map(str, row)) for row in items[cols].itertuples(index=False))
        return cls.from_item_texts(texts, config, vocab_size)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """What the optimiser steps (as ``RecPolicy.trainable_parameters``)."""
        return [self.bias, self.weight, self.positions]

    # ------------------------------------------------------------------ the RecPolicy interface
    def build_prompts(self, user_histories: list[list[str]], candidates: list[list[str]] | None = None) -> list[str]:
        """One prompt per history; with ``candidates`` (each user's base top-K titles) they are listed, numbered,
        and remembered so that ``generate`` picks among them and ``update`` scores the picks."""
        if candidates is None:
            return [
                "Recently watched: " + "; ".join(h[-self.history_items :]) + ". Recommend the next one:"
                for h in user_histories
            ]
        if len(candidates) != len(user_histories):
            raise ConfigError(f"got candidates for {len(candidates)} users and {len(user_histories)} histories; "
                              "give one candidate list per user")
        if any(not 1 <= len(c) <= MAX_CANDIDATES for c in candidates):
            raise ConfigError(f"the dummy policy picks among 1 to {MAX_CANDIDATES} candidates a user; lower "
                              "--num_candidates")
        prompts = [
            "Recently watched: " + "; ".join(h[-self.history_items :]) + ". Candidates: "
            + "; ".join(f"{j}. {t}" for j, t in enumerate(c, 1)) + ". Pick the next one:"
            for h, c in zip(user_histories, candidates)
        ]
        self._candidates = {p: list(c) for p, c in zip(prompts, candidates)}
        return prompts

    def generate(self, prompts: list[str], num_samples: int = 1, greedy: bool = False,
                 seeds: list[int] | None = None, **_) -> list[str]:
        """``len(prompts) * num_samples`` texts, prompt i's at ``i*num_samples:(i+1)*num_samples``.

        ``seeds`` (one per prompt) draw prompt i's words from a generator of its own seed, so they do not
        depend on the rest of the batch (data-parallel training; see ``keyed_sampling.py``)."""
        if self._with_candidates(prompts):
            return self._pick(prompts, num_samples, greedy, seeds)
        with torch.no_grad():
            probs = torch.softmax(self.logits(prompts), dim=-1)  # [P, V]
            if greedy:
                ids = probs.topk(min(self.num_words, len(self.vocab)), dim=-1).indices
                ids = ids.repeat_interleave(num_samples, dim=0)
            elif seeds is not None:
                if len(seeds) != len(prompts):
                    raise ConfigError(f"got {len(seeds)} seeds for {len(prompts)} prompts; pass one per prompt")
                ids = torch.cat([
                    torch.multinomial(p.expand(num_samples, -1), self.num_words, replacement=True,
                                      generator=torch.Generator().manual_seed(sample_key(seed)))
                    for p, seed in zip(probs, seeds)
                ])
            else:
                ids = torch.multinomial(
                    probs.repeat_interleave(num_samples, dim=0), self.num_words, replacement=True,
                    generator=self.generator,
                )  # [P*S, L]
        return [" ".join(self.vocab[i] for i in row) for row in ids.tolist()]

    def update(self, prompts: list[str], texts: list[str], rewards: torch.Tensor) -> dict[str, float]:
        """One policy-gradient update. prompts/texts ``[N]`` (one prompt per text), rewards ``[N]``."""
        rewards = torch.as_tensor(rewards, dtype=torch.float32).reshape(-1)
        if not len(prompts) == len(texts) == rewards.shape[0]:
            raise ValueError(f"{len(prompts)} prompts, {len(texts)} texts, {rewards.shape[0]} rewards: need one each")
        adv = compute_advantages(rewards, self.algo, self.baseline)  # [N]
        picks = self._with_candidates(prompts)
        ids, mask = self._encode_picks(prompts, texts) if picks else self._encode(texts)  # [N, T]
        logprobs = self._pick_logprobs if picks else self._token_logprobs
        with torch.no_grad():
            old = logprobs(prompts, ids)
        stats: dict[str, float] = {}
        for _ in range(self.algo.ppo_epochs):
            logp = logprobs(prompts, ids)
            loss, stats = policy_gradient_loss(logp, old, adv, mask, self.algo.clip_eps)
            kl = self.kl(prompts)
            if self.algo.kl_coef > 0:
                loss = loss + self.algo.kl_coef * kl
            self.optimizer.zero_grad()
            loss.backward()
            if self.grad_sync is not None:  # data-parallel: every worker steps with the mean gradient
                self.grad_sync(self.trainable_parameters())
            self.optimizer.step()
        with torch.no_grad():  # of what was sampled: the pick among candidates, else the words
            p = torch.softmax(self.candidate_logits(prompts) if picks else self.logits(prompts), dim=-1)
            entropy = float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())
        return {
            **stats,
            "loss": float(loss.detach()),
            "kl": float(kl.detach()),
            "entropy": entropy,
            "adv_abs_mean": float(adv.abs().mean()),
            "gen_len": float(np.mean([len(t.split()) for t in texts])) if picks else float(mask.sum(1).mean()),
        }

    # ------------------------------------------------------------------ picking among candidates
    def _with_candidates(self, prompts: list[str]) -> bool:
        """True when every prompt was built with candidates (by the last build_prompts), False when none was."""
        known = [p in self._candidates for p in prompts]
        if any(known) and not all(known):
            raise ConfigError("some prompts have candidates and some do not; build a batch's prompts in one "
                              "build_prompts call")
        return bool(known) and all(known)

    def candidate_logits(self, prompts: list[str]) -> torch.Tensor:
        """``[P, K]`` scores of each prompt's candidates (``-inf`` past a shorter list): the position preference
        plus the mean word logit of the title's vocabulary words (0 for a title without any)."""
        logits = self.logits(prompts)  # [P, V]
        k = max(len(self._candidates[p]) for p in prompts)
        rows = []
        for r, p in enumerate(prompts):
            titles = self._candidates[p]
            word_part = [logits[r, ids].mean() if ids else logits.new_zeros(())
                         for ids in ([self.index[w] for w in words(t) if w in self.index] for t in titles)]
            row = self.positions[: len(titles)] + torch.stack(word_part)
            rows.append(torch.cat([row, row.new_full((k - len(titles),), float("-inf"))]))
        return torch.stack(rows)

    def _pick(self, prompts: list[str], num_samples: int, greedy: bool, seeds: list[int] | None) -> list[str]:
        """``num_samples`` picks per prompt, as titles; keyed per prompt with ``seeds`` (as the word path)."""
        with torch.no_grad():
            probs = torch.softmax(self.candidate_logits(prompts), dim=-1)  # [P, K]
            if greedy:
                ids = probs.argmax(-1, keepdim=True).repeat_interleave(num_samples, dim=0)
            elif seeds is not None:
                if len(seeds) != len(prompts):
                    raise ConfigError(f"got {len(seeds)} seeds for {len(prompts)} prompts; pass one per prompt")
                ids = torch.cat([torch.multinomial(p, num_samples, replacement=True,
                                                   generator=torch.Generator().manual_seed(sample_key(seed)))
                                 for p, seed in zip(probs, seeds)]).unsqueeze(1)
            else:
                ids = torch.multinomial(probs, num_samples, replacement=True, generator=self.generator).reshape(-1, 1)
        prompt_of = [p for p in prompts for _ in range(num_samples)]
        return [self._candidates[p][j] for p, j in zip(prompt_of, ids[:, 0].tolist())]

    def _encode_picks(self, prompts: list[str], texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Picked titles -> their candidate positions ``[N, 1]`` and a mask of ones ``[N, 1]``."""
        ids = []
        for p, t in zip(prompts, texts):
            if t not in self._candidates[p]:
                raise ValueError(f"text {t[:60]!r} is not a candidate of its prompt; update with the picks generate made")
            ids.append(self._candidates[p].index(t))
        return torch.tensor(ids, dtype=torch.long).unsqueeze(1), torch.ones(len(ids), 1)

    def _pick_logprobs(self, prompts: list[str], ids: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.candidate_logits(prompts), dim=-1).gather(1, ids)  # [N, 1]

    # ------------------------------------------------------------------ internals
    def features(self, prompts: list[str]) -> torch.Tensor:
        """``[P, V]`` bag of vocabulary words per prompt, each non-empty row summing to 1."""
        feats = torch.zeros(len(prompts), len(self.vocab))
        for r, p in enumerate(prompts):
            for w in words(p):
                j = self.index.get(w)
                if j is not None:
                    feats[r, j] += 1.0
        return feats / feats.sum(1, keepdim=True).clamp_min(1.0)

    def logits(self, prompts: list[str]) -> torch.Tensor:
        """``[P, V]`` word logits per prompt."""
        return self.bias + self.features(prompts) @ self.weight

    def kl(self, prompts: list[str]) -> torch.Tensor:
        """Exact mean KL(π(·|prompt) ‖ uniform) = log V − H(π), a scalar with grad."""
        logp = torch.log_softmax(self.logits(prompts), dim=-1)
        return (logp.exp() * logp).sum(-1).mean() + torch.log(torch.tensor(float(len(self.vocab))))

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts -> word ids ``[N, T]`` (right-padded with 0) and mask ``[N, T]``; unknown words dropped."""
        rows = [[self.index[w] for w in words(t) if w in self.index] for t in texts]
        t = max(1, max(len(r) for r in rows))
        ids = torch.zeros(len(rows), t, dtype=torch.long)
        mask = torch.zeros(len(rows), t)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1.0
        return ids, mask

    def _token_logprobs(self, prompts: list[str], ids: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.logits(prompts), dim=-1).gather(1, ids)  # [N, T]

    # ------------------------------------------------------------------ checkpoints
    def config_dict(self) -> dict:
        return {"kind": self.kind, "vocab": self.vocab, "config": self.config.to_dict()}

    def save(self, path: str | Path) -> None:
        """Weights, optimizer, baseline and sampling RNG, so a resumed run samples the same texts."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_json(path / "policy.json", self.config_dict())
        state = {
            "bias": self.bias.detach().clone(),
            "weight": self.weight.detach().clone(),
            "positions": self.positions.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline.state_dict(),
            "generator": self.generator.get_state(),
        }
        with atomic_path(path / "state.pt") as tmp:
            torch.save(state, tmp)

    def load(self, path: str | Path) -> None:
        """Restore a saved state; it is checked against this policy before anything changes, so a damaged
        or crafted file is a ``DataError`` (``--resume`` then falls back to an older checkpoint)."""
        path = Path(path)
        vocab, _ = _read_saved(path)
        if vocab != self.vocab:
            raise DataError(f"{path} was saved with another vocabulary (another dataset?); load it with "
                            f"DummyRecPolicy.from_dir, or resume from a checkpoint of this run")
        # weights_only: a hostile file cannot run code; the bound: nothing bigger than weights + Adam's moments
        file = path / "state.pt"
        state = load_torch(file, max_bytes=state_bound(self.trainable_parameters(), copies=3))
        self._check_state(file, state)
        with torch.no_grad():
            self.bias.copy_(state["bias"])
            self.weight.copy_(state["weight"])
            self.positions.copy_(state["positions"])
        self.optimizer.load_state_dict(owned(state["optimizer"]))
        self.baseline.load_state_dict(state["baseline"])
        self.generator.set_state(state["generator"].clone())

    def _check_state(self, file: Path, state) -> None:
        if not isinstance(state, dict) or not _STATE_KEYS <= state.keys():
            raise DataError(f"{file} is not a dummy policy's state. {FIX}")
        check_tensor(file, "bias", state["bias"], self.bias.detach())
        check_tensor(file, "weight", state["weight"], self.weight.detach())
        check_tensor(file, "positions", state["positions"], self.positions.detach())
        check_optimizer_state(file, state["optimizer"], self.optimizer)
        check_baseline_state(file, state["baseline"])
        check_tensor(file, "generator", state["generator"], self.generator.get_state())
        try:  # on a scratch generator: this one stays as it is unless every check passes
            torch.Generator().set_state(state["generator"].clone())
        except (RuntimeError, ValueError) as e:
            raise DataError(f"{file} (generator) is damaged ({str(e)[:120]}). {FIX}") from None

    @classmethod
    def from_dir(cls, path: str | Path, trained: bool = True) -> "DummyRecPolicy":
        """Rebuild a saved policy; ``trained=False`` gives the same policy before any update."""
        vocab, config = _read_saved(Path(path))
        try:
            policy = cls(vocab, config)
        except ConfigError as e:
            raise DataError(f"{Path(path) / 'policy.json'} is damaged ({str(e)[:160]}). {FIX}") from None
        if trained:
            policy.load(path)
        return policy


# the vocabulary sizes the weight matrix ([V, V]) and the words per text size every sample ([N, words]): a
# crafted policy.json must not make them terabytes
MAX_VOCAB = 4096
MAX_WORDS = 1024


def _read_saved(path: Path) -> tuple[list[str], PolicyConfig]:
    """The vocabulary and the ``PolicyConfig`` in ``policy.json``: its kind, strings within ``MAX_VOCAB``,
    settings checked as settings are; anything else is a ``DataError`` (a damaged or crafted checkpoint)."""
    f = path / "policy.json"
    if not f.is_file():
        raise MissingArtifactError(f"{path} holds no saved dummy policy (policy.json missing)")
    cfg = read_json_object(f)
    if cfg.get("kind") != DummyRecPolicy.kind:
        raise DataError(f"{path} holds a {str(cfg.get('kind'))[:40]!r} policy, not a dummy one")
    vocab = cfg.get("vocab") if isinstance(cfg.get("vocab"), list) else []
    if not 2 <= len(vocab) <= MAX_VOCAB or not all(isinstance(w, str) for w in vocab):
        raise DataError(f"{f} is damaged: a vocabulary of {len(vocab)} words (2 to {MAX_VOCAB}). {FIX}")
    if not isinstance(cfg.get("config"), dict):
        raise DataError(f"{path} holds a dummy policy saved by another rl4rec (no settings in policy.json); "
                        "train it again")
    try:
        config = PolicyConfig.from_dict(cfg["config"])
    except ConfigError as e:
        raise DataError(f"{f} is damaged: its settings are not this rl4rec's ({str(e)[:160]}). {FIX}") from None
    if not 1 <= config.policy.dummy_words <= MAX_WORDS:
        raise DataError(f"{f} is damaged: {config.policy.dummy_words} words a text (1 to {MAX_WORDS}). {FIX}")
    return vocab, config
