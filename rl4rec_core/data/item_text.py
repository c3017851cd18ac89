"""Item text: what the embedder reads for each item and what prompts show of a user's history.

A template is a name (``movielens``, ``amazon``, ``title``), ``auto`` (chosen from the item
table's columns) or a format string with ``{field}`` placeholders over item columns. Text inside
``[...]`` is kept only when every field in it is non-empty, so a missing year or brand leaves no
"()" or "Brand: ." behind; write ``[[`` / ``]]`` for literal brackets.
"""

from __future__ import annotations

import logging
import math
import string
from collections.abc import Sequence

import pandas as pd

from rl4rec_core.errors import ConfigError

log = logging.getLogger(__name__)

TEMPLATES = {
    "movielens": "{title}[ ({year})][. Genres: {genres}]",
    "amazon": "{title}[. Brand: {brand}][. Categories: {categories}][. {description}]",
    "title": "{title}",
}
# long product descriptions would drown the title in the embedding and blow up prompts
FIELD_LIMITS = {"description": 300}
_FORMATTER = string.Formatter()


def choose_template(columns: Sequence[str]) -> str:
    """The template name ``auto`` stands for, given an item table's columns."""
    cols = set(columns)
    if {"year", "genres"} <= cols:
        return "movielens"
    if cols & {"brand", "categories", "description"}:
        return "amazon"
    return "title"


def template_text(template: str, columns: Sequence[str] | None = None) -> str:
    """The format string behind ``template`` (what an embedding sidecar hashes).

    ``auto`` needs ``columns`` to know what it resolves to.
    """
    if template == "auto":
        if columns is None:
            raise ConfigError("template 'auto' depends on the item columns; pass columns= or a template name")
        template = choose_template(columns)
    if template in TEMPLATES:
        return TEMPLATES[template]
    if "{" not in template:
        raise ConfigError(f"unknown item text template {template!r}. Fix: use one of "
                          f"{', '.join(['auto', *TEMPLATES])} or a format string such as '{{title}} by {{brand}}'")
    return template


def template_name(template: str, columns: Sequence[str]) -> str:
    """``auto`` resolved to a name; other names and format strings unchanged."""
    return choose_template(columns) if template == "auto" else template


def _sections(fmt: str) -> list[tuple[bool, str]]:
    """Split ``fmt`` into (optional, text) parts at single ``[``/``]``; ``[[``/``]]`` are literals."""
    parts, buf, optional, i = [], [], False, 0
    while i < len(fmt):
        ch = fmt[i]
        if ch in "[]" and fmt[i + 1:i + 2] == ch:
            buf.append(ch)
            i += 2
            continue
        if ch == "[" and not optional or ch == "]" and optional:
            parts.append((optional, "".join(buf)))
            buf, optional = [], ch == "["
        elif ch in "[]":
            raise ConfigError(f"template {fmt!r}: unbalanced '{ch}'. Fix: optional parts are [ ... ] "
                              "without nesting; write [[ or ]] for a literal bracket")
        else:
            buf.append(ch)
        i += 1
    if optional:
        raise ConfigError(f"template {fmt!r}: '[' is never closed. Fix: close the optional part with ']'")
    parts.append((False, "".join(buf)))
    return [p for p in parts if p[1]]


def _parse(fmt: str) -> list[tuple[bool, list[tuple[str, str | None]]]]:
    try:
        return [(opt, [(lit, name) for lit, name, _, _ in _FORMATTER.parse(text)])
                for opt, text in _sections(fmt)]
    except ValueError as e:
        raise ConfigError(f"template {fmt!r} is not a valid format string ({e}). Fix: use {{field}} placeholders") from None


def _value(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    return str(v).strip()


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(" ,;:.") + "…"


def _render(parsed, row: dict[str, str]) -> str:
    out = ""
    for optional, pieces in parsed:
        fields = [name for _, name in pieces if name]
        if optional and any(not row[f] for f in fields):
            continue
        for lit, name in pieces:
            if lit.startswith(".") and out.endswith((".", "!", "?", "…")):
                lit = lit[1:]  # "Mr. Bean." + ". Genres" must not become "Bean.. Genres"
            out += lit + (row[name] if name else "")
    return out.strip().lstrip(".,;: ").strip()


def render_item_texts(items_df: pd.DataFrame, template: str = "auto") -> list[str]:
    """One text per row of ``items_df`` (item-index order); empty results fall back to the item id."""
    fmt = template_text(template, list(items_df.columns))
    parsed = _parse(fmt)
    names = {name for _, pieces in parsed for _, name in pieces if name}
    missing = sorted(n for n in names if n not in items_df.columns)
    if missing:
        raise ConfigError(f"item text template {fmt!r} uses {', '.join(missing)}, which the item table lacks "
                          f"(columns: {', '.join(map(str, items_df.columns))}). Fix: choose another template")
    cols = {n: [_truncate(_value(v), FIELD_LIMITS[n]) if n in FIELD_LIMITS else _value(v)
                for v in items_df[n].tolist()] for n in names}
    ids = items_df["item_id"].tolist() if "item_id" in items_df.columns else list(range(len(items_df)))
    texts, empty = [], 0
    for i in range(len(items_df)):
        text = _render(parsed, {n: cols[n][i] for n in names})
        if not text:
            empty += 1
            text = f"Item {ids[i]}"
        texts.append(text)
    if empty:
        log.warning("%d item(s) have no text under template %r; using 'Item <id>' for them", empty, fmt)
    return texts
