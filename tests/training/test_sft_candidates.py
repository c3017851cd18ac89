"""SFT for the candidates prompt (fusion.base set): positions whose target is among the base's top-K of the
history before them, the target's title as the answer, and how many positions that leaves said."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from rl4rec_core.data.dataset import Dataset
from rl4rec_core.errors import ConfigError
from rl4rec_core.settings import groups_of
from rl4rec_core.training.sft import SFTConfig, SFTTrainer, build_sft_policy, candidate_examples, run_sft

pytestmark = pytest.mark.usefixtures("one_thread")


def _dataset(seqs: list[list[int]], num_items: int) -> Dataset:
    items = pd.DataFrame({"item_idx": range(num_items), "title": [f"Item {i}" for i in range(num_items)]})
    return Dataset("toy", None, items, pd.DataFrame({"user_idx": range(len(seqs)), "items": seqs}), {})


def next_two(histories):
    """A base that ranks the two items after the last one first: ``[B, 2]``."""
    return torch.tensor([[(h[-1] + 1) % 20, (h[-1] + 2) % 20] for h in histories])


def test_only_positions_whose_target_is_a_candidate_of_the_history_before_it():
    # user 0: 0 1 2 5 | v t -> positions (0 -> 1) hit, (0 1 -> 2) hit, (0 1 2 -> 5) miss
    # user 1: 3 5 6 | v t   -> (3 -> 5) hit (second candidate), (3 5 -> 6) hit
    ds = _dataset([[0, 1, 2, 5, 18, 19], [3, 5, 6, 16, 17]], 20)
    seen = []
    examples, positions = candidate_examples(ds, lambda hs: seen.extend(hs) or next_two(hs), batch_size=2)
    assert positions == 5 and len(seen) == 5
    assert examples == [([0], 1, [1, 2]), ([0, 1], 2, [2, 3]), ([3], 5, [4, 5]), ([3, 5], 6, [6, 7])]
    assert all(a not in (18, 19, 16, 17) for _, a, _ in examples)  # validation and test never answers
    # the prompt shows the last item only, the base saw the whole history; k keeps the first candidate
    cut, _ = candidate_examples(ds, next_two, max_history=1, k=1)
    assert cut == [([0], 1, [1]), ([1], 2, [2]), ([5], 6, [6])]


def test_sft_with_a_base_learns_titles_from_the_candidates_prompt(tiny, tiny_lm, tmp_path, capsys):
    fields = dict(dataset_name=tiny.name, policy_model=tiny_lm, sft_steps=4, sft_batch_size=4,
                  checkpoint_dir=str(tmp_path / "sft"), base="sasrec", num_candidates=5)
    cfg = SFTConfig(**groups_of(fields, ("run", "policy", "recipe", "trainer", "fusion")), progress=False)
    with pytest.raises(ConfigError, match="no trained SASRec.*rl4rec sasrec --dataset_name") as e:
        run_sft(cfg, dataset=tiny)  # no SASRec trained: one line before the model loads, naming the fix
    assert "\n" not in str(e.value) and not (tmp_path / "sft").exists()

    def genre_base(histories):  # the 5 items after the last one (the tiny set's items are grouped by genre)
        return torch.tensor([[(h[-1] + j) % tiny.num_items for j in range(1, 6)] for h in histories])

    trainer = SFTTrainer(cfg, build_sft_policy(cfg), tiny, candidates=genre_base)
    out = capsys.readouterr().out
    assert f"SFT: {len(trainer.examples)} of {trainer.positions} training positions have their target among the 5 " \
           f"candidates" in out and 0 < len(trainer.examples) < trainer.positions
    rollout = trainer.encode(trainer.examples[:3])
    for prompt, text, (h, a, cands) in zip(rollout.prompts, rollout.texts, trainer.examples[:3]):
        assert text == tiny.item_titles[a] and a in cands  # the answer is the target's title, a candidate
        assert all(f"{j}. {tiny.item_titles[c]}" in prompt for j, c in enumerate(cands, 1))
    summary = trainer.train()
    assert summary["steps"] == 4 and summary["positions"] == trainer.positions
