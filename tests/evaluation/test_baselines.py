"""Popularity and echo baselines and the evaluation helpers on hand-made data with hand-computed ranks."""

import json
import math

import pandas as pd
import pytest
import torch

from rl4rec_core.cli import main as cli_main
from rl4rec_core.data import load_dataset
from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.evaluation.baselines import (
    EchoBaseline,
    PopularityBaseline,
    echo_scores,
    make_baseline,
    popularity_scores,
)
from rl4rec_core.evaluation.ranking import evaluate_scores, format_table, split_ranks, write_metrics
from rl4rec_core.settings import RetrievalSettings

# 5 items, 3 users (item indices, oldest first)
SEQS = [
    [0, 1, 2, 3, 4],  # train history [0,1,2]; valid: [0,1,2] -> 3; test: [0,1,2,3] -> 4
    [1, 2, 0, 3],  # train history [1,2];   valid: [1,2] -> 0;   test: [1,2,0] -> 3
    [2, 1, 4],  # train history [2];     valid: [2] -> 1;     test: [2,1] -> 4
]
# popularity counts over training histories only: item0 1, item1 2, item2 3, item3 0, item4 0
# (items 3 and 4 are only ever validation/test targets, so they must count 0: no leakage)
COUNTS = [1.0, 2.0, 3.0, 0.0, 0.0]


@pytest.fixture
def hand(rl4rec_dirs):
    folder = rl4rec_dirs["data"] / "hand"
    folder.mkdir(parents=True)
    pd.DataFrame(
        [{"item_idx": i, "item_id": str(i + 1), "title": f"Movie {i}", "year": "1995", "genres": "Drama"} for i in range(5)]
    ).to_parquet(folder / "items.parquet", index=False)
    pd.DataFrame([{"user_idx": u, "user_id": str(u + 1), "items": s} for u, s in enumerate(SEQS)]).to_parquet(
        folder / "sequences.parquet", index=False
    )
    (folder / "meta.json").write_text(json.dumps({"name": "hand", "item_text_template": "movielens"}))
    return load_dataset("hand")


def test_popularity_counts_training_histories_only(hand):
    pop = PopularityBaseline.from_dataset(hand)
    assert pop.counts.tolist() == COUNTS
    scores = popularity_scores(hand, hand.split("test"))
    assert scores.shape == (3, 5) and torch.equal(scores[2], torch.tensor(COUNTS))


def test_popularity_test_ranks(hand):
    split = hand.split("test")
    # u0: history {0,1,2,3} masked, only the target 4 is left -> rank 1
    # u1: history {0,1,2} masked; target 3 scores 0, item 4 ties at 0 -> pessimistic rank 2
    # u2: history {1,2} masked; target 4 scores 0; item 0 (1) above, item 3 (0) ties -> rank 3
    assert split_ranks(PopularityBaseline.from_dataset(hand), split).tolist() == [1, 2, 3]
    out = evaluate_scores(PopularityBaseline.from_dataset(hand), split, ks=(1, 2))
    # hit@1 = 1/3; hit@2 = 2/3; ndcg@2 = (1 + 1/log2(3) + 0)/3; mrr = (1 + 1/2 + 1/3)/3 = 11/18
    assert out["hit@1"] == pytest.approx(1 / 3)
    assert out["hit@2"] == pytest.approx(2 / 3)
    assert out["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 3, abs=1e-6)
    assert out["mrr"] == pytest.approx(11 / 18, abs=1e-6)
    assert out["users"] == 3


def test_popularity_valid_ranks(hand):
    # u0: history {0,1,2}; target 3 (0) ties with item 4 (0) -> rank 2
    # u1: history {1,2}; target 0 (1) above items 3, 4 (0) -> rank 1
    # u2: history {2}; target 1 (2) above items 0 (1), 3, 4 (0) -> rank 1
    assert split_ranks(PopularityBaseline.from_dataset(hand), hand.split("valid")).tolist() == [2, 1, 1]


def test_echo_ranks_by_cosine_to_last_item():
    # item vectors (not unit length: the baseline normalises them)
    emb = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [3.0, 4.0]])
    echo = EchoBaseline(emb)
    histories = [[1, 0], [3], []]
    scores = echo.score(histories)
    # last item 0 = (1,0): cosines with items 0..4 = [1, 0, 0.7071, -1, 0.6]
    assert scores[0].tolist() == pytest.approx([1, 0, 1 / math.sqrt(2), -1, 0.6], abs=1e-6)
    # last item 3 = (-1,0): cosines = [-1, 0, -0.7071, 1, -0.6]
    assert scores[1].tolist() == pytest.approx([-1, 0, -1 / math.sqrt(2), 1, -0.6], abs=1e-6)
    # empty history: no signal, all zeros
    assert scores[2].tolist() == [0.0] * 5

    class Split:  # the two fields ranking needs
        pass

    split = Split()
    split.histories, split.targets = histories, torch.tensor([4, 1, 2])
    # u0: items 0,1 masked; item 2 (0.707) > target 4 (0.6) > item 3 -> rank 2
    # u1: item 3 masked; target 1 scores 0, items 0,2,4 negative -> rank 1
    # u2: all five items tie at 0 -> pessimistic rank 5
    assert split_ranks(echo, split).tolist() == [2, 1, 5]
    assert split_ranks(scores, split, batch_size=1).tolist() == [2, 1, 5]


def test_echo_uses_the_stored_embeddings(hand):
    emb = torch.eye(5)
    # one-hot items: each user's last history item scores 1 with itself and 0 elsewhere
    s = echo_scores(hand, hand.split("test"), item_embeddings=emb)
    assert s.shape == (3, 5)
    assert s[0].tolist() == [0, 0, 0, 1, 0] and s[2].tolist() == [0, 1, 0, 0, 0]


def test_batching_does_not_change_results(hand):
    split = hand.split("test")
    pop = PopularityBaseline.from_dataset(hand)
    full = evaluate_scores(popularity_scores(hand, split), split)
    assert evaluate_scores(pop, split, batch_size=1) == full
    assert evaluate_scores(pop, split, batch_size=2) == full


def test_bad_inputs(hand):
    split = hand.split("test")
    with pytest.raises(ConfigError, match="unknown baseline 'bpr'"):
        make_baseline("bpr", hand, RetrievalSettings())
    with pytest.raises(DataError, match="NaN"):
        evaluate_scores(torch.full((3, 5), float("nan")), split)
    with pytest.raises(DataError, match=r"scores must be \[users=3, items\]"):
        evaluate_scores(torch.zeros(2, 5), split)
    with pytest.raises(ConfigError, match="--ks"):
        evaluate_scores(torch.zeros(3, 5), split, ks=(0,))
    with pytest.raises(ConfigError, match="batch_size"):
        evaluate_scores(torch.zeros(3, 5), split, batch_size=0)
    with pytest.raises(DataError, match="outside"):
        PopularityBaseline([[7]], num_items=5)
    with pytest.raises(DataError, match="non-empty"):
        EchoBaseline(torch.zeros(0, 4))


def test_table_and_json(tmp_path):
    rows = {"popularity": {"mrr": 0.04, "hit@10": 0.0838, "ndcg@10": 0.0432, "users": 943}, "echo": {"hit@10": 0.05, "ndcg@10": 0.03, "mrr": 0.031, "users": 943}}
    table = format_table(rows).splitlines()
    assert table[0].split() == ["method", "hit@10", "ndcg@10", "mrr", "users"]
    assert table[2].split() == ["popularity", "0.0838", "0.0432", "0.0400", "943"]
    assert len({len(line) for line in table}) == 1  # aligned: every line equally wide
    path = write_metrics(tmp_path / "m.json", rows, dataset="ml-100k", split="test")
    saved = json.loads(path.read_text())
    assert saved["results"] == rows and saved["dataset"] == "ml-100k"


def test_cli_evaluate(hand, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    assert cli_main(["evaluate", "--dataset", "hand", "--baseline", "popularity", "--ks", "1", "2", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "popularity" in printed and "hit@1" in printed
    saved = json.loads(out.read_text())
    assert saved["results"]["popularity"]["mrr"] == pytest.approx(11 / 18, abs=1e-6)
    assert saved["split"] == "test" and saved["ks"] == [1, 2]
    # echo needs the embedding file: a clear error naming the command, exit code 2
    assert cli_main(["evaluate", "--dataset", "hand", "--baseline", "echo"]) == 2
    assert "rl4rec embed --dataset hand" in capsys.readouterr().err
    assert cli_main(["evaluate", "--dataset", "hand", "--baselines"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert cli_main(["evaluate", "--dataset", "hand", "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert cli_main(["evaluate", "--dataset", "nope", "--baseline", "popularity"]) == 2
    assert "rl4rec data prepare --dataset nope" in capsys.readouterr().err
