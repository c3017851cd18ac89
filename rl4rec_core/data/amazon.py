"""The Amazon (Beauty/Sports/Toys) and Yelp layout used by the original project.

- ``sequential_data.txt``: one user per line, ``user item1 item2 ... itemN``, already oldest first.
- item metadata, either one JSON object mapping item id -> record, a JSON array of records, or JSON
  lines (one record per line, optionally gzipped, Python-literal lines of the 2014 Amazon dumps
  accepted) whose id is ``asin``, ``item_id`` or ``business_id`` (Yelp).
Record fields used: ``title`` (Yelp: ``name``), ``brand``, ``categories``/``category`` (a string,
a list, or a list of lists: flattened, de-duplicated) and ``description`` (a string or list).
"""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

from rl4rec_core.data.tables import RawData
from rl4rec_core.data.text_io import DEFAULT_ENCODING, read_text, shown, text_lines
from rl4rec_core.errors import DataError

log = logging.getLogger(__name__)

SEQUENCE_FILE = "sequential_data.txt"
META_CANDIDATES = ("meta.json", "meta.jsonl", "meta.json.gz", "meta.jsonl.gz", "item_meta.json",
                   "metadata.json", "items.json", "items.jsonl")
ID_FIELDS = ("asin", "item_id", "business_id")
TEXT_FIELDS = ("title", "brand", "categories", "description")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")


def read_sequences(path: Path, drops: dict[str, int], encoding: str = DEFAULT_ENCODING) -> list[tuple[str, list[str]]]:
    if not path.is_file():
        raise DataError(f"{path} does not exist. Fix: --source must be {SEQUENCE_FILE} or the folder holding it")
    seqs = []
    blank = 0
    for line in text_lines(read_text(path, encoding)):
        tokens = line.split()
        if not tokens:
            blank += 1
            continue
        seqs.append((tokens[0], tokens[1:]))
    if blank:
        drops["blank_lines"] = blank
    return seqs


def _clean(text: str) -> str:
    # tags become spaces ("a<br>b" -> "a b"); "balm</b>." must not end up as "balm ."
    return _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACE.sub(" ", _TAG.sub(" ", text))).strip()


def _flatten(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    return [_clean(str(value))]


def _categories(value: Any) -> str:
    if isinstance(value, str):
        return _clean(value)  # Yelp: already "Restaurants, Pizza"
    return ", ".join(dict.fromkeys(c for c in _flatten(value) if c))


def _record_fields(rec: dict) -> dict[str, str]:
    title = rec.get("title") if rec.get("title") is not None else rec.get("name")
    cats = rec.get("categories") if rec.get("categories") is not None else rec.get("category")
    return {
        "title": " ".join(_flatten(title)),
        "brand": " ".join(_flatten(rec.get("brand"))),
        "categories": _categories(cats),
        "description": " ".join(d for d in _flatten(rec.get("description")) if d),
    }


# what a malformed line can raise in json.loads / ast.literal_eval (unhashable keys, deep nesting, huge ints)
_PARSE_ERRORS = (ValueError, SyntaxError, TypeError, RecursionError, MemoryError)


def _parse_line(line: str, where: str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        pass
    try:  # the 2014 Amazon metadata dumps are Python dict literals, not JSON
        return ast.literal_eval(line)
    except _PARSE_ERRORS:
        raise DataError(f"{where}: not a JSON record: {shown(line)}. Fix: repair that line or use "
                        "JSON lines / one JSON object") from None


def _document(text: str) -> dict | list | None:
    """The file as one JSON object or array; ``None`` when it is something else (JSON lines)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, (dict, list)) else None


def _identified(where: str, key: Any, rec: Any) -> tuple[str, Any, dict]:
    if not isinstance(rec, dict):
        raise DataError(f"{where} is a {type(rec).__name__}, not an object. "
                        "Fix: each item's metadata must be a JSON object")
    if key is None:
        key = next((rec[f] for f in ID_FIELDS if rec.get(f) is not None), None)
        if key is None:
            raise DataError(f"{where} has no id field ({', '.join(ID_FIELDS)}). "
                            "Fix: add the item id to every record")
    return where, key, rec


def _read_records(path: Path, encoding: str) -> list[tuple[str, Any, dict]]:
    """``(where, item id, record)`` per record; ``where`` is ``file:line: record n`` for JSON lines."""
    text = read_text(path, encoding, gzipped=path.suffix == ".gz")
    if not text.strip():
        raise DataError(f"{path} is empty. Fix: point --meta at the item metadata file")
    doc = _document(text)
    if isinstance(doc, dict) and not any(k in doc for k in ID_FIELDS):
        found = [(f"{path}: record {n}", k, v) for n, (k, v) in enumerate(doc.items(), 1)]  # {item_id: record}
    elif doc is not None:
        found = [(f"{path}: record {n}", None, r) for n, r in enumerate(doc if isinstance(doc, list) else [doc], 1)]
    else:
        found = []
        for lineno, line in enumerate(text.split("\n"), 1):
            if line.strip():
                found.append((f"{path}:{lineno}: record {len(found) + 1}", None, _parse_line(line, f"{path}:{lineno}")))
    return [_identified(where, key, rec) for where, key, rec in found]


def read_item_metadata(path: Path, encoding: str = DEFAULT_ENCODING) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path} does not exist. Fix: pass the item metadata JSON with --meta")
    rows = []
    for where, key, rec in _read_records(path, encoding):
        try:
            rows.append({"item_id": str(key), **_record_fields(rec)})
        except RecursionError:
            raise DataError(f"{where} nests lists or objects too deeply to read. Fix: flatten that record") from None
    return pd.DataFrame(rows, columns=["item_id", *TEXT_FIELDS], dtype=str)


def find_metadata(folder: Path) -> Path:
    for name in META_CANDIDATES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("meta*.json*"))
    if len(found) == 1:
        return found[0]
    raise DataError(f"no item metadata in {folder} (looked for {', '.join(META_CANDIDATES)}, meta*.json*). "
                    "Fix: pass the item metadata JSON with --meta")


def load_amazon(source: Path, meta: Path | None = None, encoding: str = DEFAULT_ENCODING) -> RawData:
    """Read ``sequential_data.txt`` (``source`` is the file or its folder) and the item metadata, both
    decoded with ``encoding`` (a BOM is dropped)."""
    source = Path(source)
    seq_path = source / SEQUENCE_FILE if source.is_dir() else source
    meta_path = Path(meta) if meta else find_metadata(seq_path.parent)
    drops: dict[str, int] = {}
    sequences = read_sequences(seq_path, drops, encoding)
    items = read_item_metadata(meta_path, encoding)
    return RawData(items=items, sequences=sequences, source=str(source), fmt="amazon",
                   item_file=str(meta_path), sequence_file=str(seq_path), drops=drops,
                   notes={"order": f"file order of {SEQUENCE_FILE} (already time-ordered)"})
