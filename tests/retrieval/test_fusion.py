"""The fused scorer: z-scores by hand, the service's candidates, fused ranks and rewards, tuning gamma, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rl4rec_core import metrics
from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.retrieval import RetrievalService
from rl4rec_core.retrieval.base_channel import BaseScorer, EchoPriorBase, load_base_channel
from rl4rec_core.retrieval.fusion import fused_scores, history_mask, zscore
from rl4rec_core.retrieval.fusion_tuning import fusion_path, read_fusion_record, tune_gamma
from rl4rec_core.retrieval.hybrid import HybridWeights, TunedRetrieval
from rl4rec_core.settings import UNTUNED_GAMMA, FusionSettings, RetrievalSettings

S2, S01, S002 = math.sqrt(2), math.sqrt(0.1), math.sqrt(0.02)

# six items on the unit circle, 30 degrees apart; "east" is item 0's direction, "north" item 3's
ANGLES = [0, 30, 60, 90, 120, 150]
ITEMS = torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in ANGLES])
COUNTS = [5, 0, 1, 2, 3, 4]


class LookupEncoder:
    """Fixed vectors for fixed texts: every score is computable by hand."""

    model_name = short_name = "lookup"
    backend = "test"
    dim = 2
    VECTORS = {"east": [1.0, 0.0], "north": [0.0, 1.0], "west": [-1.0, 0.0]}

    def encode(self, texts, batch_size=64, progress=False):
        return torch.tensor([self.VECTORS[t] for t in texts])


def make(fusion=None, bases=None, tuned=True, **retrieval):
    """A service over ``ITEMS`` with an echo+prior base (``beta`` 0.1, ``m`` 1) unless ``bases`` replace it."""
    weights = TunedRetrieval("hand", HybridWeights(beta=0.1, history_m=1), COUNTS)
    return RetrievalService(RetrievalSettings(emb_model_name="lookup", **retrieval), encoder=LookupEncoder(),
                            embeddings={"hand": ITEMS.clone()}, tuned={"hand": weights} if tuned else None,
                            fusion=fusion if fusion is not None else FusionSettings(base="echo+prior"), bases=bases)


def echo_prior() -> EchoPriorBase:
    return EchoPriorBase(torch.nn.functional.normalize(ITEMS, dim=1), COUNTS, beta=0.1, history_m=1)


# ---------------------------------------------------------------------------- the maths, by hand


def test_fused_score_of_a_2x5_example_by_hand():
    base = torch.tensor([[1.0, 2, 3, 4, 5], [5.0, 5, 5, 5, 5]])
    cos = torch.tensor([[0.5, 0, 0, 0, -0.5], [0.1, 0.2, 0.3, 0.4, 0.5]])
    # row 0: base mean 3, std sqrt(2); cos mean 0, std sqrt(0.1). Row 1: base has no spread (std 1, z = 0);
    # cos mean 0.3, std sqrt(0.02)
    z_base = torch.tensor([[-2 / S2, -1 / S2, 0, 1 / S2, 2 / S2], [0.0] * 5])
    z_cos = torch.tensor([[0.5 / S01, 0, 0, 0, -0.5 / S01], [-0.2 / S002, -0.1 / S002, 0, 0.1 / S002, 0.2 / S002]])
    expected = z_base + 0.5 * z_cos
    assert torch.allclose(fused_scores(base, cos, 0.5), expected, atol=1e-5)
    bias = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4])
    assert torch.allclose(fused_scores(base, cos, 0.5, bias=bias), expected + bias, atol=1e-5)
    # gamma 0 is the base's z-score alone, bit for bit
    assert torch.equal(fused_scores(base, cos, 0.0), zscore(base))


def test_zscore_leaves_the_history_out_of_mean_and_std():
    scores = torch.tensor([[1.0, 2, 3, 4, 100]])
    exclude = history_mask([[4]], 5)
    # mean 2.5 and std sqrt(1.25) of items 0..3; item 4 keeps a finite score on the same scale
    expected = (scores - 2.5) / math.sqrt(1.25)
    assert torch.allclose(zscore(scores, exclude), expected, atol=1e-5)
    unmasked = zscore(scores)
    assert not torch.allclose(unmasked, expected)
    # the target is never masked: it stays rankable when it is in the history
    assert history_mask([[4, 1]], 5, targets=torch.tensor([4])).tolist() == [[False, True, False, False, False]]


# ---------------------------------------------------------------------------- the service


def test_candidates_are_the_bases_top_k_without_the_history_and_ignore_targets():
    svc = make()
    histories = [[0], [3, 4], [], [5, 0, 1]]
    cands = svc.candidates("hand", histories, k=3)
    assert cands.shape == (4, 3) and cands.dtype == torch.long
    base = echo_prior().score(histories)
    for row, h in enumerate(histories):
        assert not set(cands[row].tolist()) & set(h)
        order = sorted((i for i in range(6) if i not in h), key=lambda i: (-float(base[row, i]), i))
        assert cands[row].tolist() == order[:3]
    # the default K is the settings'; no target enters the call, and rewards on other targets change nothing
    svc.compute_rewards(["east"] * 4, "hand", [2, 2, 2, 2], histories, scorer="fused")
    again = svc.compute_rewards(["east"] * 4, "hand", [1, 5, 0, 3], histories, scorer="fused")
    assert again.ranks.shape == (4,)
    assert torch.equal(svc.candidates("hand", histories, k=3), cands)
    assert make(FusionSettings(base="echo+prior", num_candidates=2)).candidates("hand", histories).shape == (4, 2)


def test_candidates_break_ties_by_the_smaller_index():
    class Flat:
        def score(self, histories):
            return torch.zeros(len(histories), 6)

        def record(self):
            return {"base": "flat"}

    svc = make(bases={"hand": Flat()})
    assert svc.candidates("hand", [[1, 0], []], k=3).tolist() == [[2, 3, 4], [0, 1, 2]]


def test_gamma_zero_ranks_are_the_bases_ranks():
    svc = make()
    texts, targets, histories = ["east", "north", "west", "east"], [1, 2, 4, 0], [[0], [3, 4], [], [5, 0, 1]]
    out = svc.compute_rewards(texts, "hand", targets, histories, reward="mrr", scorer="fused", gamma=0.0)
    expected = metrics.target_ranks(echo_prior().score(histories), torch.tensor(targets), histories)
    assert out.ranks.tolist() == out.base_ranks.tolist() == expected.tolist()
    assert out.scorer == "fused(base=echo+prior, gamma=0)"
    # with the text weighed in the ranks are those of the fused matrix, target unmasked in its own history
    fused = svc.compute_rewards(texts, "hand", targets, histories, reward="mrr", scorer="fused", gamma=2.0)
    cos = torch.nn.functional.normalize(LookupEncoder().encode(texts), dim=1) @ ITEMS.T
    matrix = fused_scores(echo_prior().score(histories), cos, 2.0, exclude=history_mask(histories, 6))
    assert fused.ranks.tolist() == metrics.target_ranks(matrix, torch.tensor(targets), histories).tolist()
    assert torch.allclose(fused.rewards, 1.0 / fused.ranks.float())
    # the fused top-k: history masked, best first, consistent with the same matrix
    idx, s = svc.top_k(texts, "hand", k=2, histories=histories, scorer="fused", gamma=2.0)
    masked = matrix.masked_fill(history_mask(histories, 6), float("-inf"))
    assert torch.allclose(s, masked.sort(dim=1, descending=True, stable=True).values[:, :2])
    assert not any(set(row) & set(h) for row, h in zip(idx.tolist(), histories))


def test_reward_over_base_is_the_gain_over_the_base_alone():
    svc = make(FusionSettings(base="echo+prior", reward_over_base=True))
    texts, targets, histories = ["east", "north", "west", "north"], [1, 3, 4, 5], [[0], [2], [], [5, 4]]
    out = svc.compute_rewards(texts, "hand", targets, histories, reward="mrr", scorer="fused", gamma=3.0)
    assert torch.allclose(out.rewards, 1.0 / out.ranks.float() - 1.0 / out.base_ranks.float())
    assert (out.ranks != out.base_ranks).any()  # the text moved some target
    # sampled negatives: the same items for both, so the gain compares like with like
    neg = svc.compute_rewards(texts, "hand", targets, histories, reward="mrr", scorer="fused", gamma=3.0,
                              num_negatives=2, seed=0)
    assert ((neg.ranks >= 1) & (neg.ranks <= 3)).all()
    assert torch.allclose(neg.rewards, 1.0 / neg.ranks.float() - 1.0 / neg.base_ranks.float())


def test_info_holds_the_fusion_record_and_the_base_in_the_scoring_record():
    svc = make()
    info = svc.info()
    assert info["fusion"]["hand"]["base"] == "echo+prior"
    assert info["fusion"]["hand"]["gamma"] == UNTUNED_GAMMA and info["fusion"]["hand"]["gamma_source"] == "untuned"
    # what a resumed run compares (training/resume.scoring_of reads info()["scoring"])
    assert info["scoring"]["hand"]["fusion_base"] == echo_prior().record()
    plain = RetrievalService(RetrievalSettings(emb_model_name="lookup"), encoder=LookupEncoder(),
                             embeddings={"hand": ITEMS.clone()})
    assert plain.info()["fusion"] == {} and "fusion_base" not in plain.info()["scoring"]["hand"]
    assert make(FusionSettings(base="echo+prior", gamma=0.3)).info()["fusion"]["hand"]["gamma"] == 0.3


def test_tune_gamma_picks_the_smallest_best_gamma_and_writes_the_record(rl4rec_dirs):
    svc = make()
    # the base alone ranks the targets below the items next to the history; the text points at them
    texts, targets, histories = ["east", "north", "west"], [0, 3, 5], [[2], [5], [1]]
    grid = (10.0, 0.0, 0.5, 1.0, 2.0, 5.0, 8.0)
    ranks = svc.fused_grid_ranks(texts, "hand", targets, histories, sorted(grid))
    ndcg = [float(metrics.ndcg_at_k(r, 10).mean()) for r in ranks]
    best = max(ndcg)
    expected = sorted(grid)[ndcg.index(best)]  # the first best in ascending order
    assert torch.equal(svc.fused_grid_ranks(texts, "hand", targets, histories, grid)[0], ranks[-1])  # 10.0 first
    assert ndcg[0] < best and ndcg.count(best) > 1  # the case needs the text, and the tie rule decides
    record = tune_gamma(svc, "hand", texts, targets, histories, grid=grid, text_source="hand-written")
    assert record["gamma"] == expected
    path = fusion_path("hand", "item", "lookup")
    assert record["path"] == str(path) and path.is_file()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # written through atomic_path
    saved, _ = read_fusion_record(path)
    assert saved["gamma"] == expected and saved["base"] == echo_prior().record()
    assert [row["ndcg@10"] for row in saved["validation"]["by_gamma"]] == pytest.approx(ndcg)
    assert saved["grid"] == sorted(grid) and saved["text_source"] == "hand-written"
    # the service serves with it now, and a new one reads it
    assert svc.info()["fusion"]["hand"]["gamma"] == expected
    fresh = make()
    assert fresh.info()["fusion"]["hand"]["gamma_source"] == "tuned"
    assert fresh.info()["fusion"]["hand"]["gamma"] == expected
    # the settings' gamma wins over the file
    assert make(FusionSettings(base="echo+prior", gamma=0.2)).info()["fusion"]["hand"]["gamma"] == 0.2
    # a broken file is one line naming it
    path.write_text("{not json")
    with pytest.raises(DataError, match="not a valid fusion record") as e:
        make()
    assert "\n" not in str(e.value)


def test_an_injected_base_serves_the_fused_scorer():
    class Table:
        """A base recommender that always prefers the higher index."""

        def score(self, histories):
            return torch.arange(6, dtype=torch.float32).repeat(len(histories), 1)

        def record(self):
            return {"base": "table"}

    svc = make(FusionSettings(), bases={"hand": Table()})  # base none in the settings: the injected one serves
    assert isinstance(Table(), BaseScorer)
    assert svc.candidates("hand", [[5]], k=2).tolist() == [[4, 3]]
    out = svc.compute_rewards(["east"], "hand", [0], [[5]], reward="mrr", scorer="fused", gamma=0.0)
    assert out.ranks.tolist() == [5] and out.scorer == "fused(base=table, gamma=0)"


def one_line(excinfo) -> str:
    assert "\n" not in str(excinfo.value)
    return str(excinfo.value)


def test_bad_input_gets_one_line():
    svc = make()
    with pytest.raises(ValueError, match="needs histories") as e:
        svc.compute_rewards(["east"], "hand", [0], scorer="fused")
    one_line(e)
    with pytest.raises(ValueError, match="needs histories"):
        svc.top_k(["east"], "hand", k=2, scorer="fused")
    with pytest.raises(ValueError, match="positive integer") as e:
        svc.candidates("hand", [[0]], k=0)
    one_line(e)
    with pytest.raises(ValueError, match="do not fit"):
        svc.candidates("hand", [[0, 1, 2, 3]], k=3)
    with pytest.raises(ConfigError, match=">= 0") as e:
        svc.compute_rewards(["east"], "hand", [0], [[1]], scorer="fused", gamma=-0.5)
    one_line(e)
    with pytest.raises(ConfigError, match="gamma grid|each gamma"):
        tune_gamma(svc, "hand", ["east"], [0], [[1]], grid=(0.0, -1.0))
    with pytest.raises(ValueError, match="fused score only"):
        svc.compute_rewards(["east"], "hand", [0], [[1]], gamma=0.5)
    with pytest.raises(ConfigError, match="num_candidates"):
        FusionSettings(num_candidates=0)
    with pytest.raises(ConfigError, match="gamma"):
        FusionSettings(gamma=-1.0)
    plain = RetrievalService(RetrievalSettings(emb_model_name="lookup"), encoder=LookupEncoder(),
                             embeddings={"hand": ITEMS.clone()})
    with pytest.raises(ValueError, match="needs a base recommender") as e:
        plain.candidates("hand", [[0]], k=2)
    one_line(e)
    # the service is still serving after every refusal
    assert svc.compute_rewards(["east"], "hand", [0], [[1]], scorer="fused").ranks.shape == (1,)


def test_sasrec_without_a_checkpoint_is_one_config_error(rl4rec_dirs):
    from tests.helpers.tiny_recdata import write_tiny_dataset

    write_tiny_dataset(rl4rec_dirs["data"], "tiny")
    with pytest.raises(ConfigError, match="sasrec") as e:
        load_base_channel(FusionSettings(base="sasrec"), "tiny")
    one_line(e)
    with pytest.raises(ConfigError, match="sasrec"):
        make(FusionSettings(base="sasrec"))
    assert load_base_channel(FusionSettings(), "tiny") is None


def test_echo_prior_without_tuned_weights_takes_the_prepared_datasets_counts(rl4rec_dirs):
    from rl4rec_core.data import load_dataset
    from rl4rec_core.retrieval.hybrid import train_counts
    from tests.helpers.tiny_recdata import write_tiny_dataset

    ds = load_dataset(write_tiny_dataset(rl4rec_dirs["data"], "tiny"))
    items = torch.nn.functional.normalize(torch.randn(ds.num_items, 2, generator=torch.Generator().manual_seed(0)), dim=1)
    base = load_base_channel(FusionSettings(base="echo+prior"), "tiny", item_emb=items)
    expected = EchoPriorBase(items, train_counts(ds.train_histories(), ds.num_items), **{
        k: v for k, v in HybridWeights().to_dict().items() if k != "alpha"})
    assert base.record() == expected.record()
    with pytest.raises(ConfigError, match="prepared dataset") as e:
        load_base_channel(FusionSettings(base="echo+prior"), "absent", item_emb=items)
    one_line(e)


def test_changing_test_targets_changes_no_validation_candidate(rl4rec_dirs):
    """The candidates of validation come from validation histories and the training counts: the test targets
    (each user's last item) never reach them."""
    import pandas as pd

    from rl4rec_core.data import load_dataset
    from tests.helpers.tiny_recdata import WordVectorEncoder, write_tiny_dataset

    name = write_tiny_dataset(rl4rec_dirs["data"], "leak")

    def valid_candidates():
        ds = load_dataset(name)
        items = WordVectorEncoder().encode(ds.item_texts())
        svc = RetrievalService(RetrievalSettings(emb_model_name=WordVectorEncoder.model_name),
                               encoder=WordVectorEncoder(), embeddings={name: items},
                               fusion=FusionSettings(base="echo+prior", num_candidates=4))
        return ds.split("valid"), svc.candidates(name, ds.split("valid").histories)

    valid, before = valid_candidates()
    test_before = load_dataset(name).split("test").targets
    path = rl4rec_dirs["data"] / name / "sequences.parquet"
    seqs = pd.read_parquet(path)
    seqs["items"] = [list(s[:-1]) + [(int(s[-1]) + 5) % 24] for s in seqs["items"]]  # other test targets
    seqs.to_parquet(path, index=False)
    valid_after, after = valid_candidates()
    assert not torch.equal(load_dataset(name).split("test").targets, test_before)
    assert valid_after.histories == valid.histories and torch.equal(valid_after.targets, valid.targets)
    assert torch.equal(before, after)
