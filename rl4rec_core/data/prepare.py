"""``prepare_dataset``: pick a loader, validate, write items/sequences Parquet + meta.json atomically."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rl4rec_core.data.amazon import SEQUENCE_FILE, load_amazon
from rl4rec_core.data.item_text import template_name, template_text
from rl4rec_core.data.movielens import load_ml100k
from rl4rec_core.data.recbole import load_recbole
from rl4rec_core.data.tables import MIN_ITEMS_PER_USER, PreparedTables, RawData, build_tables
from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.io import atomic_dir
from rl4rec_core.paths import dataset_dir
from rl4rec_core.settings import DEFAULT_ENCODING, FORMATS, ML_100K, check_encoding

log = logging.getLogger(__name__)

BUILTIN = (ML_100K,)  # datasets that need no --source
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def detect_format(name: str, source: Path | None) -> str:
    if source is None:
        if name in BUILTIN:
            return name
        raise ConfigError(f"dataset {name!r} needs --source (a folder with {SEQUENCE_FILE} + item metadata, "
                          f"or NAME.inter + NAME.item); only {', '.join(BUILTIN)} is fetched automatically")
    if not source.exists():
        raise DataError(f"--source {source} does not exist. Fix: give the dataset's folder or file")
    if source.is_file():
        if source.name == SEQUENCE_FILE or source.suffix == ".txt":
            return "amazon"
        if source.suffix in (".inter", ".item"):
            raise ConfigError(f"--source {source}: give the folder holding the .inter and .item files")
    elif (source / SEQUENCE_FILE).is_file():
        return "amazon"
    elif any(source.glob("*.inter")):
        return ML_100K if name == ML_100K else "recbole"
    raise DataError(f"cannot tell the format of {source}: expected {SEQUENCE_FILE} (+ item metadata JSON) or "
                    "NAME.inter + NAME.item. Fix: point --source at such a folder, or pass --format")


def load_raw(name: str, source: Path | None, fmt: str, meta: Path | None,
             encoding: str = DEFAULT_ENCODING) -> RawData:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(name, source)
    if fmt == ML_100K:
        return load_ml100k(source, encoding)
    if source is None:
        raise ConfigError(f"--format {fmt} needs --source")
    if fmt == "recbole":
        return load_recbole(source, name, encoding)
    return load_amazon(source, meta, encoding)


def _write(tables: PreparedTables, folder: Path) -> None:
    text_cols = [c for c in tables.items.columns if c not in ("item_idx", "item_id")]
    items_schema = pa.schema([("item_idx", pa.int64()), ("item_id", pa.string()),
                              *[(c, pa.string()) for c in text_cols]])
    seq_schema = pa.schema([("user_idx", pa.int64()), ("user_id", pa.string()),
                            ("items", pa.list_(pa.int64()))])
    pq.write_table(pa.Table.from_pandas(tables.items, schema=items_schema, preserve_index=False),
                   folder / "items.parquet")
    pq.write_table(pa.Table.from_pandas(tables.sequences, schema=seq_schema, preserve_index=False),
                   folder / "sequences.parquet")


def read_meta(name: str) -> dict | None:
    path = dataset_dir(name) / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else None


def prepare_dataset(name: str, source: str | Path | None = None, fmt: str = "auto",
                    meta: str | Path | None = None, force: bool = False,
                    unknown_items: str = "drop", encoding: str = DEFAULT_ENCODING) -> Path:
    """Write ``data_dir()/{name}/{items,sequences}.parquet`` and ``meta.json``; return the folder.

    An already prepared dataset is reused unless ``force`` (a different ``source`` than the one it
    was prepared from is an error, so stale data is never used by accident). The raw files are
    decoded with ``encoding`` (a leading byte-order mark is dropped); ``meta.json`` records any
    encoding other than UTF-8.
    """
    if not _NAME.fullmatch(name):
        raise ConfigError(f"dataset name {name!r}: use letters, digits, '.', '_' or '-' (it becomes a folder name)")
    codec = check_encoding(encoding)
    source = Path(source).expanduser() if source else None
    folder = dataset_dir(name)
    existing = read_meta(name)
    if existing and not force:
        if source is not None and existing.get("source_path") != str(source.resolve()):
            raise ConfigError(f"{folder} was prepared from {existing.get('source')}, not {source}. "
                              "Fix: pass --force to rebuild it, or use another --dataset name")
        log.info("%s is already prepared in %s; reusing it (--force rebuilds)", name, folder)
        return folder

    raw = load_raw(name, source, fmt, Path(meta).expanduser() if meta else None, encoding)
    tables = build_tables(raw, unknown_items=unknown_items)
    info = {
        "dataset": name,
        "format": raw.fmt,
        "source": raw.source,
        "source_path": str(source.resolve()) if source else None,
        "item_file": raw.item_file,
        "sequence_file": raw.sequence_file,
        "counts": {"users": len(tables.sequences), "items": len(tables.items),
                   "interactions": tables.num_interactions},
        "dropped": tables.drops,
        "min_items_per_user": MIN_ITEMS_PER_USER,
        "item_text_template": template_name("auto", list(tables.items.columns)),
        "item_text_format": template_text("auto", list(tables.items.columns)),
        "item_index_order": "numeric item id when all ids are integers, else first appearance in the item file",
        "user_index_order": "numeric user id when all ids are integers, else first appearance",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **raw.notes,
        **({} if codec == "utf-8" else {"encoding": codec}),
    }
    if tables.sequences.empty or tables.items.empty:  # build_tables guards this; never write empty tables
        raise DataError(f"{name}: nothing left to write after validation")
    with atomic_dir(folder) as tmp:
        _write(tables, tmp)
        (tmp / "meta.json").write_text(json.dumps(info, indent=2) + "\n")
    log.info("prepared %s in %s", name, folder)
    return folder
