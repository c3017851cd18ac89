"""Raw text files read with a stated encoding: a file that does not decode is a ``DataError`` naming
``file:line`` and the ``--encoding`` flag, never a ``UnicodeDecodeError``; a byte-order mark is dropped.

Every loader reads its files through :func:`read_text` (the whole file, then decoded), and quotes file
content in its messages through :func:`shown`, so an error stays one readable line whatever the file holds.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

from rl4rec_core.errors import DataError
from rl4rec_core.settings import DEFAULT_ENCODING

BOM = "\ufeff"
_SHOWN_CHARS = 40


def _decode_error(path: Path, data: bytes, encoding: str, err: UnicodeDecodeError) -> DataError:
    line = data[:err.start].decode(encoding, errors="replace").count("\n") + 1
    bad = data[err.start:err.end]
    hint = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "latin-1"
    return DataError(f"{path}:{line}: bytes {bad!r} at offset {err.start} are not valid {encoding} ({err.reason}). "
                     f"Fix: save the file as {encoding}, or pass the encoding it uses with --encoding "
                     f"(e.g. --encoding {hint})")


def _check_utf16(path: Path, text: str, encoding: str) -> None:
    """UTF-16 without a byte-order mark decodes as UTF-8 (a NUL after each ASCII letter), and the loaders
    then report a wrong cause (a missing header field). Every other character a NUL says what it is."""
    head = text[:4096]
    if not head or head.count("\x00") * 3 < len(head) or encoding.replace("_", "-").lower().startswith("utf-16"):
        return
    order = "utf-16-le" if head[1::2].count("\x00") >= head[0::2].count("\x00") else "utf-16-be"
    raise DataError(f"{path} is UTF-16 (every other byte is 0), not {encoding}. Fix: pass --encoding {order}, or "
                    f"save the file as {encoding}")


def read_text(path: Path, encoding: str = DEFAULT_ENCODING, gzipped: bool = False, newline: str | None = None) -> str:
    """The decoded text of ``path`` (gunzipped first when ``gzipped``), without a leading BOM.

    ``newline`` as in ``open``: ``None`` turns ``\\r\\n`` and ``\\r`` into ``\\n``; ``""`` keeps them.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path} ({e.strerror or e}). Fix: check the path and its permissions") from None
    if gzipped:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path} is not a complete gzip file ({shown(str(e))}). Fix: download it again, "
                            "or unzip it and pass the plain file") from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise _decode_error(path, data, encoding, e) from None
    except UnicodeError as e:  # a codec that fails without saying where (punycode, idna)
        raise DataError(f"{path} does not decode as {encoding} ({shown(str(e))}). Fix: pass the encoding the file "
                        f"uses with --encoding (utf-8, latin-1, cp1252, utf-16)") from None
    text = text.removeprefix(BOM)
    _check_utf16(path, text, encoding)
    return text if newline == "" else io.StringIO(text, newline=newline).read()


def text_lines(text: str, newline: str | None = None) -> io.StringIO:
    """Iterate ``text`` line by line exactly as a file opened with ``newline`` would."""
    return io.StringIO(text, newline=newline)


def shown(value: object, quote: bool = False) -> str:
    """``value`` for an error message: as is when short and printable (unless ``quote``), else quoted
    with ``repr`` and cut, so a message stays one short line whatever the file holds."""
    text = str(value)
    if not quote and len(text) <= _SHOWN_CHARS and text.isprintable():
        return text
    quoted = repr(text)
    if len(quoted) <= _SHOWN_CHARS + 2:
        return quoted
    return f"{quoted[:_SHOWN_CHARS]}... ({len(text):,} characters)"
