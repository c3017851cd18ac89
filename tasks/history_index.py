"""A served user's history, matched against the catalogue: which items to mask, which entries match nothing.

Clients send titles as people write them. The catalogue stores ``Toy Story`` with its year apart (1995),
while the documented request says ``Toy Story (1995)``; a history that matched nothing was not masked, and
the policy's own history came back as its recommendation. So an entry matches:

- its title, ignoring case and runs of spaces;
- or its title and year, ``Title (YYYY)``: the items of that title and year only (``Cape Fear (1962)`` is
  not ``Cape Fear (1991)``); a catalogue without years matches the title alone;
- every item that matches is masked: the catalogue may hold a title twice (ML-100k holds 23 such titles).

Item ids (the catalogue's, as ``item_ids`` in answers) are given apart, in ``history_ids``. An entry that
matches nothing is reported back to the client (``unknown``), never silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_YEAR = re.compile(r"^(?P<title>.*\S)\s*\((?P<year>\d{4})\)\s*$")


def _key(text: str) -> str:
    return " ".join(str(text).split()).casefold()


class HistoryIndex:
    """Titles (and years, where known) of the catalogue's items ``0..N-1``."""

    def __init__(self, titles: Sequence[str], years: Sequence[str | int | None] | None = None):
        self.size = len(titles)
        self.by_title: dict[str, list[int]] = {}
        self.year_of: list[str | None] = [None] * self.size
        for i, title in enumerate(titles):
            self.by_title.setdefault(_key(title), []).append(i)
            year = str(years[i]).strip() if years is not None and years[i] not in (None, "") else None
            self.year_of[i] = year if year and year.isdigit() else None

    def match(self, entry: str) -> list[int]:
        """The items ``entry`` names (empty when none)."""
        found = self.by_title.get(_key(entry))
        if found:
            return list(found)
        dated = _YEAR.match(str(entry))
        if not dated:
            return []
        same_title = self.by_title.get(_key(dated["title"]), [])
        if not any(self.year_of[i] for i in same_title):
            return list(same_title)  # the catalogue keeps no years: the title alone decides
        return [i for i in same_title if self.year_of[i] == dated["year"]]

    def resolve(self, titles: Sequence[str], ids: Sequence[int] = ()) -> tuple[list[int], list[str]]:
        """``(every item to mask, the entries that match nothing)`` for a history of ``ids`` and ``titles``."""
        masked: list[int] = []
        unknown: list[str] = []
        for i in ids:
            if 0 <= i < self.size:
                masked.append(i)
            else:
                unknown.append(str(i))
        for title in titles:
            found = self.match(title)
            masked.extend(found)
            if not found:
                unknown.append(title)
        return list(dict.fromkeys(masked)), unknown
