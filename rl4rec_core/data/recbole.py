"""RecBole atomic files (``NAME.inter`` + ``NAME.item``), the format MovieLens-100k ships in.

An atomic file is tab separated with a ``field:type`` header (types token, token_seq, float,
float_seq). Interactions need ``user_id`` and ``item_id``; with a ``timestamp`` they are ordered by
it per user (stable sort: equal timestamps keep file order), without one the file order is kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from rl4rec_core.data.tables import RawData
from rl4rec_core.data.text_io import DEFAULT_ENCODING, read_text, shown, text_lines
from rl4rec_core.errors import DataError

log = logging.getLogger(__name__)

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
# RecBole datasets name the same text field differently; the prepared table uses one name
COLUMN_ALIASES = {
    "movie_title": "title", "item_name": "title", "name": "title",
    "release_year": "year",
    "class": "genres", "genre": "genres",
    "category": "categories",
}
# fields whose token_seq value is a list of labels, shown comma separated ("Animation, Comedy")
LABEL_FIELDS = ("genres",)


def _header(path: Path, header: str) -> list[str]:
    """Field names of an atomic file's ``field:type`` header line."""
    if not header:
        raise DataError(f"{path} is empty. Fix: a RecBole atomic file starts with a 'field:type' header")
    names = []
    for col in header.split("\t"):
        name, _, typ = col.partition(":")
        if typ not in ATOMIC_TYPES or not name.strip():
            raise DataError(f"{path}:1: header column {shown(col, quote=True)} is not 'field:type' with type in "
                            f"{ATOMIC_TYPES}. Fix: use RecBole's atomic file header, e.g. 'item_id:token'")
        if name in names:
            raise DataError(f"{path}:1: field {shown(name, quote=True)} appears twice in the header. "
                            "Fix: keep one column per field")
        names.append(name)
    return names


def read_atomic_file(path: Path, encoding: str = DEFAULT_ENCODING) -> pd.DataFrame:
    """Read an atomic file into a DataFrame of strings; columns lose their ``:type`` suffix.

    The file is decoded with ``encoding`` (a BOM is dropped). A bad header and rows with the wrong
    number of fields raise :class:`DataError` naming the file and line.
    """
    return _read_atomic(Path(path), encoding)[0]


def _read_atomic(path: Path, encoding: str) -> tuple[pd.DataFrame, list[int]]:
    """The table of :func:`read_atomic_file` and the file line of each of its rows."""
    if not path.is_file():
        raise DataError(f"{path} does not exist. Fix: --source must be a folder with NAME.inter and NAME.item")
    lines = text_lines(read_text(path, encoding, newline=""), newline="")
    names = _header(path, lines.readline().rstrip("\r\n"))
    rows, numbers = [], []
    for lineno, line in enumerate(lines, start=2):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(names):
            raise DataError(f"{path}:{lineno}: {len(fields)} tab-separated fields, the header has "
                            f"{len(names)}. Fix: repair or remove that line")
        rows.append(fields)
        numbers.append(lineno)
    return pd.DataFrame(rows, columns=names, dtype=str), numbers


def _require(df: pd.DataFrame, cols: tuple[str, ...], path: Path) -> None:
    for col in cols:
        if col not in df.columns:
            raise DataError(f"{path}: no {col!r} column (columns: {', '.join(map(shown, df.columns))}). "
                            f"Fix: add it or rename the matching column to '{col}:token'")


def read_items(path: Path, encoding: str = DEFAULT_ENCODING) -> pd.DataFrame:
    items = read_atomic_file(path, encoding)
    _require(items, ("item_id",), path)
    renames: dict[str, str] = {}
    for alias, name in COLUMN_ALIASES.items():  # the first alias present wins; never two columns of one name
        if alias in items.columns and name not in items.columns and name not in renames.values():
            renames[alias] = name
    items = items.rename(columns=renames)
    for col in LABEL_FIELDS:
        if col in items.columns:
            items[col] = items[col].str.split().str.join(", ")
    return items


def read_sequences(path: Path, notes: dict, encoding: str = DEFAULT_ENCODING) -> list[tuple[str, list[str]]]:
    inter, line_numbers = _read_atomic(Path(path), encoding)
    _require(inter, ("user_id", "item_id"), path)
    if "timestamp" in inter.columns:
        ts = pd.to_numeric(inter["timestamp"], errors="coerce")
        if ts.isna().any():
            row = int(ts.isna().to_numpy().argmax())
            raise DataError(f"{path}:{line_numbers[row]}: timestamp "
                            f"{shown(inter['timestamp'].iloc[row], quote=True)} is not a number. "
                            "Fix: use numeric (e.g. Unix) timestamps")
        inter = inter.assign(timestamp=ts).sort_values("timestamp", kind="stable")
        # several items rated in the same second: their order is the file order, not a real order
        sizes = inter.groupby(["user_id", "timestamp"], sort=False).size()
        last_two = inter.groupby("user_id", sort=False)["timestamp"].nth([-2, -1])
        tied_tail = last_two.groupby(inter.loc[last_two.index, "user_id"]).nunique().eq(1)
        notes["timestamp_ties"] = {"groups": int((sizes > 1).sum()),
                                   "interactions": int(sizes[sizes > 1].sum()),
                                   "users_whose_last_two_items_tie": int(tied_tail.sum())}
        notes["order"] = "timestamp (stable: equal timestamps keep file order)"
    else:
        log.warning("%s has no timestamp column: keeping each user's file order", path)
        notes["order"] = "file order (no timestamp column)"
    groups = inter.groupby("user_id", sort=False)["item_id"]
    return [(str(u), s.tolist()) for u, s in groups]


def load_recbole(source: Path, name: str | None = None, encoding: str = DEFAULT_ENCODING) -> RawData:
    """Read ``source/NAME.inter`` and ``source/NAME.item`` (NAME: ``name`` or the only .inter file),
    both decoded with ``encoding`` (a BOM is dropped)."""
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source} is not a folder. Fix: --source must be the folder holding NAME.inter and NAME.item")
    inter_path = source / f"{name}.inter" if name else None
    if inter_path is None or not inter_path.is_file():
        found = sorted(source.glob("*.inter"))
        if len(found) != 1:
            raise DataError(f"{source}: expected one NAME.inter file, found "
                            f"{', '.join(p.name for p in found) or 'none'}. Fix: point --source at one dataset's folder")
        inter_path = found[0]
    item_path = inter_path.with_suffix(".item")
    if not item_path.is_file():
        raise DataError(f"{item_path} is missing. Fix: item text comes from NAME.item beside NAME.inter")
    notes: dict = {}
    sequences = read_sequences(inter_path, notes, encoding)
    return RawData(items=read_items(item_path, encoding), sequences=sequences, source=str(source), fmt="recbole",
                   item_file=str(item_path), sequence_file=str(inter_path), notes=notes)
