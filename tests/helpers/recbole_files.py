"""RecBole atomic files written by tests (``{name}.inter`` / ``{name}.item``)."""

from __future__ import annotations

ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"


def write_recbole(folder, inter_rows, item_rows, name="toy",
                  inter_header="user_id:token\titem_id:token\trating:float\ttimestamp:float",
                  item_header=ITEM_HEADER):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text("\n".join([inter_header, *inter_rows]) + "\n")
    (folder / f"{name}.item").write_text("\n".join([item_header, *item_rows]) + "\n")
    return folder


ITEMS = ["10\tAlpha\t1990\tDrama", "2\tBeta\t1991\tComedy Drama", "7\tGamma\t1992\tunknown", "3\tDelta\t1993\tWar"]
