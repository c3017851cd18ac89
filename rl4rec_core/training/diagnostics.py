"""Per-step diagnostics of GRPO's signal, the ones TRL users look for, from a step's grouped rewards and texts.

* ``frac_zero_spread``: groups whose rewards are all equal. GRPO's advantage is the reward minus its group's
  mean, so such a group teaches nothing; when most groups have no spread the step is mostly wasted (the
  issue that led here: ``alpha = 10`` left a within-user reward std of .011).
* ``reward_std_within``: the mean over groups of the within-group reward std (what GRPO normalises by).
* ``names_candidate``: the share of texts that name one of their user's candidates (the base's top-K shown
  in the prompt), ``names_target``: the share that name the user's target item; a title is named when its
  normalised form (lower case, no year, "Godfather, The" -> "the godfather", punctuation as spaces) appears
  in the normalised text as whole words.
* ``beats_base`` / ``rank_gain``: with the fused scorer, the share of texts that rank the target better than the
  base alone does, and the mean rank gained.

Completion length, entropy and KL come from the policy's update stats (``gen_len``/``gen_tokens``,
``entropy``, ``kl``); :func:`format_diagnostics` puts them on the console line under the trainer's.

Shapes: ``B`` users (groups), ``G`` samples each, texts and rewards ``[B*G]`` grouped per user.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache

import torch

log = logging.getLogger(__name__)

# warn when more than this share of a step's groups have no reward spread ...
ZERO_SPREAD_WARN = 0.5
# ... at most once per this many steps (a run stuck there would otherwise repeat it every step)
WARN_EVERY = 50

_YEAR = re.compile(r"\(\s*\d{4}\s*\)")
_NON_WORD = re.compile(r"[^0-9a-z]+")
_ARTICLE_LAST = re.compile(r"^(.*),\s*(the|a|an|les|la|le|il|el|der|die|das)$")


@lru_cache(maxsize=65536)
def normalise_title(text: str) -> str:
    """``"Godfather, The (1972)"`` -> ``"the godfather"``: lower case, years dropped, a trailing article moved
    to the front (MovieLens writes titles so), anything but letters and digits a single space."""
    t = _YEAR.sub(" ", str(text).lower()).strip()
    m = _ARTICLE_LAST.match(t)
    if m:
        t = f"{m.group(2)} {m.group(1)}"
    return " ".join(_NON_WORD.sub(" ", t).split())


def names(text: str, title: str) -> bool:
    """Whether ``text`` names ``title`` (normalised, as whole words); an empty title is never named."""
    t = normalise_title(title)
    return bool(t) and f" {t} " in f" {normalise_title(text)} "


def group_diagnostics(rewards: torch.Tensor, group_size: int) -> dict[str, float]:
    """``frac_zero_spread`` and ``reward_std_within`` of rewards ``[B*G]`` grouped per user (population std:
    a group of one has no spread)."""
    r = torch.as_tensor(rewards, dtype=torch.float64).reshape(-1, group_size)  # [B, G]
    spread = r.max(dim=1).values - r.min(dim=1).values
    return {
        "frac_zero_spread": float((spread <= 1e-12).double().mean()),
        "reward_std_within": float(r.std(dim=1, unbiased=False).mean()),
    }


def naming_diagnostics(texts: Sequence[str], group_size: int, target_titles: Sequence[str],
                       candidate_titles: Sequence[Sequence[str]] | None = None) -> dict[str, float]:
    """``names_target`` (and ``names_candidate`` when candidates were shown) over texts ``[B*G]``; per user the
    target's title ``[B]`` and the candidates' titles ``[B][K]``."""
    users = [i // group_size for i in range(len(texts))]
    out = {"names_target": _share(names(t, target_titles[u]) for t, u in zip(texts, users))}
    if candidate_titles is not None:
        out["names_candidate"] = _share(any(names(t, c) for c in candidate_titles[u]) for t, u in zip(texts, users))
    return out


def base_diagnostics(ranks: torch.Tensor, base_ranks) -> dict[str, float]:
    """With the fused scorer's ``base_ranks [N]`` (the base's own rank of each target): ``beats_base``, the share
    of texts whose fused rank is better than the base's, and ``rank_gain``, the mean rank gained (base - fused,
    positive = the text helps). Nothing without them."""
    if base_ranks is None:
        return {}
    base = torch.as_tensor(base_ranks).reshape(-1).double().cpu()
    fused = torch.as_tensor(ranks).reshape(-1).double().cpu()
    return {"beats_base": float((fused < base).double().mean()), "rank_gain": float((base - fused).mean())}


def _share(flags) -> float:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else 0.0


class ZeroSpreadWarning:
    """Warns when most groups (> ``ZERO_SPREAD_WARN``) of a step have no reward spread, at most once every
    ``every`` steps."""

    def __init__(self, every: int = WARN_EVERY, threshold: float = ZERO_SPREAD_WARN):
        self.every, self.threshold = every, threshold
        self.last: int | None = None  # step of the last warning

    def check(self, step: int, frac_zero_spread: float) -> bool:
        """Warn (and return True) when the share is over the threshold and no warning came in the last steps."""
        if frac_zero_spread <= self.threshold or (self.last is not None and step - self.last < self.every):
            return False
        self.last = step
        log.warning(
            "step %d: %.0f%% of the groups have rewards that are all equal, so GRPO learns nothing from them; "
            "the text barely moves the ranks (raise --train_gamma, lower the prior's weight, or sample more "
            "diverse texts: --temperature, --group_size)", step, 100 * frac_zero_spread)
        return True


def format_step(step: int, stats: dict) -> str:
    """The original's console line: ``Step     10 | Loss: 0.4876 | Reward: 0.6721 (max: 0.9034, min: 0.4567)``."""
    return (
        f"Step {step:6d} | Loss: {stats['loss']:.4f} | Reward: {stats['avg_reward']:.4f} "
        f"(max: {stats['max_reward']:.4f}, min: {stats['min_reward']:.4f})"
    )


def format_diagnostics(stats: dict) -> str:
    """The diagnostics console line, printed under the step's, e.g.
    ``       zero-spread 25% | within-std 0.0123 | len 8.0 | entropy 2.10 | kl 0.0012 | cand 80% | target 10%``."""
    parts = [f"zero-spread {stats['frac_zero_spread']:.0%}", f"within-std {stats['reward_std_within']:.4f}",
             f"len {stats.get('gen_tokens', stats.get('gen_len', 0.0)):.1f}"]
    if "entropy" in stats:
        parts.append(f"entropy {stats['entropy']:.2f}")
    parts.append(f"kl {stats.get('kl', 0.0):.4f}")
    if "names_candidate" in stats:
        parts.append(f"cand {stats['names_candidate']:.0%}")
    parts.append(f"target {stats['names_target']:.0%}")
    return "       " + " | ".join(parts)
