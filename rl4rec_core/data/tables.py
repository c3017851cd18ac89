"""From raw loader output to the prepared tables: validation, counted drops and stable indices.

Every loader (ML-100k, RecBole atomic files, Amazon/Yelp) produces a :class:`RawData`; this module is
the one place that decides what is kept, so all formats get the same checks and the same drop
accounting in ``meta.json``.

Index order (stable across runs and machines):
- items: when every item id is an integer, by numeric id (ML-100k: index = id - 1); otherwise in
  order of first appearance in the item table (metadata file order);
- users: the same rule over user ids (numeric, else order of first appearance in the interactions).
Only items that occur in a kept sequence enter the catalogue (Amazon metadata files list far more
products than the 5-core interactions use); the rest are counted as ``items_without_interactions``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from rl4rec_core.data.text_io import shown
from rl4rec_core.errors import ConfigError, DataError
from rl4rec_core.settings import UNKNOWN_ITEM_POLICIES

log = logging.getLogger(__name__)

MIN_ITEMS_PER_USER = 3  # leave-one-out needs a train target, a validation target and a test target
# above this share of unknown item ids the files almost surely use different id spaces
MAX_UNKNOWN_SHARE = 0.5


@dataclass
class RawData:
    """What a loader read, before validation.

    items: one row per item, column ``item_id`` (str) plus string text columns (``title`` at least),
        in file order. sequences: ``(user_id, [item_id, ...])`` oldest first, one entry per user.
    """

    items: pd.DataFrame
    sequences: list[tuple[str, list[str]]]
    source: str
    fmt: str
    item_file: str
    sequence_file: str
    drops: dict[str, int] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)


@dataclass
class PreparedTables:
    items: pd.DataFrame  # item_idx, item_id, title, <text columns>
    sequences: pd.DataFrame  # user_idx, user_id, items (list of item_idx)
    drops: dict[str, int]

    @property
    def num_interactions(self) -> int:
        return int(self.sequences["items"].map(len).sum())


def _stable_order(ids: list[str]) -> list[str]:
    """Numeric order when all ids are integers, else first-appearance order (ids are unique)."""
    try:
        numeric = [int(i) for i in ids]
    except ValueError:
        return list(ids)
    return [i for _, i in sorted(zip(numeric, ids))]


def _check_items(raw: RawData) -> pd.DataFrame:
    items = raw.items
    for col in ("item_id", "title"):
        if col not in items.columns:
            raise DataError(
                f"{raw.item_file}: no {col!r} column (columns: {', '.join(map(shown, items.columns))}). "
                f"Fix: add the column or rename the matching one to {col!r}"
            )
    if "item_idx" in items.columns:
        raise DataError(f"{raw.item_file}: a column is named 'item_idx', the name of the index the prepared "
                        "table adds. Fix: rename that column")
    if items.empty:
        raise DataError(f"{raw.item_file}: no items. Fix: point --source/--meta at the item metadata")
    ids = items["item_id"].astype(str)
    if (ids.str.strip() == "").any():
        raise DataError(f"{raw.item_file}: {int((ids.str.strip() == '').sum())} item(s) have an empty id. "
                        "Fix: give every item an id")
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise DataError(
            f"{raw.item_file}: {len(dup)} item id(s) appear more than once, e.g. {', '.join(map(shown, dup[:5]))}. "
            "Fix: keep one metadata record per item"
        )
    items = items.assign(item_id=ids)
    for col in items.columns:
        values = items[col].dropna().astype(str)
        bad = values[values.str.contains("\x00", regex=False)]
        if len(bad):
            row = items.loc[bad.index[0], "item_id"]
            raise DataError(f"{raw.item_file}: the {shown(col)} of item {shown(row, quote=True)} holds a NUL byte "
                            f"(\\x00), which no text has; it would be stored in the catalogue. Fix: remove it")
    return items


def _check_user_ids(raw: RawData) -> None:
    """A NUL byte in a user or item id would make another user (or an unknown item) of the same person."""
    for user, seq in raw.sequences:
        for what, value in (("user id", user), *(("item id", i) for i in seq)):
            if "\x00" in value:
                raise DataError(f"{raw.sequence_file}: the {what} {shown(value, quote=True)} holds a NUL byte "
                                f"(\\x00), which no id has. Fix: remove it")


def _drop_unknown(raw: RawData, known: set[str], policy: str) -> list[tuple[str, list[str]]]:
    total = sum(len(s) for _, s in raw.sequences)
    unknown: dict[str, int] = {}
    kept = []
    for user, seq in raw.sequences:
        good = [i for i in seq if i in known]
        if len(good) != len(seq):
            for i in seq:
                if i not in known:
                    unknown[i] = unknown.get(i, 0) + 1
        kept.append((user, good))
    n = sum(unknown.values())
    if n:
        examples = ", ".join(map(shown, list(unknown)[:5]))
        where = f"{n:,} of {total:,} interactions in {raw.sequence_file} use item ids missing from {raw.item_file}"
        if policy == "error":
            raise DataError(f"{where} (e.g. {examples}). Fix: complete the item metadata, "
                            "or pass --unknown-items drop to drop those interactions")
        if n > MAX_UNKNOWN_SHARE * total:
            raise DataError(f"{where} (e.g. {examples}): the two files seem to use different item ids. "
                            "Fix: use an item metadata file keyed by the same ids as the sequences")
        log.warning("dropping %s (%d distinct ids, e.g. %s)", where, len(unknown), examples)
        raw.drops["unknown_item_interactions"] = n
    return kept


def build_tables(raw: RawData, unknown_items: str = "drop") -> PreparedTables:
    """Validate ``raw`` and turn it into the prepared tables (see the module docstring for the rules)."""
    if unknown_items not in UNKNOWN_ITEM_POLICIES:
        raise ConfigError(f"unknown_items={unknown_items!r}; use one of {UNKNOWN_ITEM_POLICIES}")
    items = _check_items(raw)
    _check_user_ids(raw)
    if not raw.sequences:
        raise DataError(f"{raw.sequence_file}: no interactions. Fix: check the file is the right one and not empty")
    users = [u for u, _ in raw.sequences]
    if len(set(users)) != len(users):
        dup = pd.Series(users)[pd.Series(users).duplicated()].unique()
        raise DataError(f"{raw.sequence_file}: user(s) {', '.join(map(shown, dup[:5]))} have more than one sequence. "
                        "Fix: one line (one sequence) per user")

    seqs = _drop_unknown(raw, set(items["item_id"]), unknown_items)
    short = [(u, s) for u, s in seqs if len(s) < MIN_ITEMS_PER_USER]
    if short:
        raw.drops["users_with_fewer_than_3_items"] = len(short)
        raw.drops["interactions_of_those_users"] = sum(len(s) for _, s in short)
        log.warning("dropping %d user(s) with fewer than %d items (%d interactions)", len(short),
                    MIN_ITEMS_PER_USER, raw.drops["interactions_of_those_users"])
    seqs = [(u, s) for u, s in seqs if len(s) >= MIN_ITEMS_PER_USER]
    if not seqs:
        raise DataError(
            f"{raw.sequence_file}: no user has {MIN_ITEMS_PER_USER} or more known items after validation "
            f"(drops: {raw.drops}). Fix: leave-one-out needs at least {MIN_ITEMS_PER_USER} items per user"
        )

    used = {i for _, s in seqs for i in s}
    unused = int((~items["item_id"].isin(used)).sum())
    if unused:
        raw.drops["items_without_interactions"] = unused
        log.info("leaving out %d item(s) that no kept user interacted with", unused)
    items = items[items["item_id"].isin(used)]
    order = _stable_order(items["item_id"].tolist())
    items = items.set_index("item_id").loc[order].reset_index()
    items.insert(0, "item_idx", range(len(items)))
    index_of = dict(zip(items["item_id"], items["item_idx"]))

    by_user = dict(seqs)
    user_order = _stable_order(list(by_user))
    sequences = pd.DataFrame({
        "user_idx": range(len(user_order)),
        "user_id": user_order,
        "items": [[index_of[i] for i in by_user[u]] for u in user_order],
    })
    text_cols = ["title"] + [c for c in items.columns if c not in ("item_idx", "item_id", "title")]
    items = items[["item_idx", "item_id", *text_cols]].copy()
    items[text_cols] = items[text_cols].fillna("").astype(str)
    return PreparedTables(items=items, sequences=sequences, drops=dict(raw.drops))
