"""The registered model of the fused recipe serves what was evaluated: a trained SASRec (a copy in the model), the
gamma of the run's fusion record, the base's candidates in the prompt and the items ranked by
z(SASRec) + gamma * z(cos(text, item)). A real MLflow SQLite store, real all-MiniLM-L6-v2, the tiny dataset."""

from __future__ import annotations

import pytest
import torch

from tasks import registry
from tasks import tracking as mt

NAME = "rl4rec-serving-fused-test"
GAMMA = 0.5


@pytest.fixture(scope="module")
def served(store, tmp_path_factory):
    import mlflow

    from rl4rec_core.checkpoints import save_checkpoint
    from rl4rec_core.data import load_dataset
    from rl4rec_core.embeddings.encoders import make_encoder
    from rl4rec_core.io import write_json
    from rl4rec_core.policy.config import PolicyConfig
    from rl4rec_core.policy.dummy import DummyRecPolicy
    from rl4rec_core.recommenders import ensure_sasrec, load_base
    from rl4rec_core.retrieval.fusion_tuning import fusion_path
    from rl4rec_core.settings import SASRecSettings
    from tests.helpers.embeddings import MODEL, data_dirs, write_embeddings
    from tests.helpers.tiny_recdata import write_tiny_dataset

    root = tmp_path_factory.mktemp("serving-fused")
    with data_dirs(root):
        ds = load_dataset(write_tiny_dataset(root / "data"))
        encoder = make_encoder(MODEL)
        items = encoder.encode([f"{r.title} ({r.year}). Genres: {r.genres}" for r in ds.items.itertuples()])
        write_embeddings(ds.name, items)
        ensure_sasrec(ds, SASRecSettings(sasrec_max_epochs=2, sasrec_hidden=16))
        base = load_base("sasrec", ds)
        write_json(fusion_path(ds.name, "item", MODEL), {"gamma": GAMMA, "base": base.record()})
        fusion = {"base": "sasrec", "num_candidates": 4}
        config = PolicyConfig.from_fields(policy="dummy", seed=0, kl_coef=0.0, prompt_template="candidates")
        policy = DummyRecPolicy.from_item_texts(list(ds.item_titles), config)
        ckpt = save_checkpoint(root / "ckpt" / "checkpoint_final", policy, {"step": 0},
                               {"policy": {"policy": "dummy"}, "run": {"dataset_name": ds.name}, "fusion": fusion,
                                "retrieval": {"emb_model_name": MODEL, "emb_type": "item"}})
        with mt.tracked_run(run_name="serve-fused", experiment="rl4rec-test") as run_id:
            registry.register_model.fn(run_id, str(ckpt), NAME, alias=registry.CHAMPION)
        model = mlflow.pyfunc.load_model(f"models:/{NAME}@{registry.CHAMPION}")
    return model, ds, base, encoder, torch.nn.functional.normalize(torch.as_tensor(items).float(), dim=1)


def test_the_served_model_returns_the_fused_ranking(served):
    from rl4rec_core.retrieval.fusion import fused_scores, history_mask, mask_history

    model, ds, base, encoder, items = served
    titles = list(ds.item_titles)
    history = [3, 7, 12]
    [answer] = [a if isinstance(a, dict) else a.model_dump() for a in model.predict([{"history_ids": history, "k": 5}])]
    # the text is one of the base's top-4 candidates of the history (the dummy picks among them)
    mask = history_mask([history], len(titles))
    base_scores = base.score([history]).float()
    candidates = [titles[i] for i in mask_history(base_scores.clone(), mask).topk(4).indices[0].tolist()]
    assert answer["text"] in candidates
    # the items: z(SASRec) + gamma * z(cos(text, item)), history masked, by hand
    cos = torch.as_tensor(encoder.encode([answer["text"]])).float()
    cos = torch.nn.functional.normalize(cos, dim=1) @ items.T
    expected = mask_history(fused_scores(base_scores, cos, GAMMA, exclude=mask), mask).topk(5).indices[0].tolist()
    assert answer["item_ids"] == expected and not set(expected) & set(history)
    assert answer["titles"] == [titles[i] for i in expected]


def test_the_model_carries_its_base_and_gamma(served):
    import json
    from pathlib import Path

    model = served[0]
    folder = Path(model._model_impl.context.artifacts["catalogue"])
    raw = json.loads((folder / "catalogue.json").read_text())
    assert raw["fusion"]["base"] == "sasrec" and raw["fusion"]["gamma"] == GAMMA and raw["fusion"]["gamma_source"] == "tuned"
    assert (folder / "base" / "weights.pt").is_file() and (folder / "base" / "record.json").is_file()
