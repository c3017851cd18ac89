"""A tiny dataset in the Amazon layout (``sequential_data.txt`` + ``meta.json``, rl4rec_core/data/amazon.py),
written as raw files and prepared by the real loader: the second dataset of the several-dataset tests,
beside the MovieLens titles of tiny_recdata.py."""

from __future__ import annotations

import json

import numpy as np

# (title, brand, categories) of beauty products, grouped so that users stay inside one group
PRODUCTS = {
    "lips": [("Rose Lip Balm", "Acme", "Beauty, Lips"), ("Cherry Lip Gloss", "Glow", "Beauty, Lips"),
             ("Matte Lipstick Red", "Acme", "Beauty, Lips"), ("Lip Scrub Sugar", "Pure", "Beauty, Lips"),
             ("Tinted Lip Oil", "Glow", "Beauty, Lips"), ("Lip Liner Nude", "Acme", "Beauty, Lips")],
    "hair": [("Argan Shampoo", "Pure", "Beauty, Hair"), ("Coconut Conditioner", "Pure", "Beauty, Hair"),
             ("Hair Mask Repair", "Silk", "Beauty, Hair"), ("Dry Shampoo Spray", "Silk", "Beauty, Hair"),
             ("Curl Cream", "Pure", "Beauty, Hair"), ("Heat Protect Serum", "Silk", "Beauty, Hair")],
    "nails": [("Nail File Glass", "Acme", "Beauty, Nails"), ("Cuticle Oil", "Glow", "Beauty, Nails"),
              ("Top Coat Gel", "Acme", "Beauty, Nails"), ("Nail Polish Coral", "Glow", "Beauty, Nails"),
              ("Base Coat Strong", "Acme", "Beauty, Nails"), ("Polish Remover Pads", "Pure", "Beauty, Nails")],
}


def write_amazon_raw(folder, users_per_group: int = 6, seed: int = 1):
    """Raw Amazon-layout files in ``folder``: users of 5-6 products of one group, oldest first."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    meta, groups = {}, {}
    for group, products in PRODUCTS.items():
        groups[group] = []
        for title, brand, cats in products:
            asin = f"B{len(meta) + 100}"
            meta[asin] = {"title": title, "brand": brand, "categories": cats}
            groups[group].append(asin)
    lines = []
    for group, asins in groups.items():
        for _ in range(users_per_group):
            seq = rng.permutation(asins)[: rng.integers(5, 7)].tolist()
            lines.append(f"a{len(lines)} " + " ".join(seq))
    (folder / "sequential_data.txt").write_text("\n".join(lines) + "\n")
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def prepare_tiny_amazon(tmp_path, name: str = "tiny-beauty") -> str:
    """Write the raw files under ``tmp_path`` and prepare them as ``name`` in ``data_dir()``."""
    from rl4rec_core.data import prepare_dataset

    prepare_dataset(name, source=write_amazon_raw(tmp_path / f"raw-{name}"), fmt="amazon")
    return name


def make_multi_service(datasets, encoder, **fields):
    """A real ``RetrievalService`` holding every dataset's item texts, embedded by ``encoder``; ``fields`` are
    retrieval settings."""
    from rl4rec_core.retrieval import RetrievalService
    from rl4rec_core.settings import RetrievalSettings

    emb = {ds.name: encoder.encode(ds.item_texts()) for ds in datasets}
    return RetrievalService(RetrievalSettings(emb_model_name=encoder.model_name, **fields), encoder=encoder,
                            embeddings=emb)
