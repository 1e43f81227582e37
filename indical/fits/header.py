"""FITS headers without astropy: reading the cards of plain image files and writing
images, following the FITS Standard 4.0 (sections 4.1-4.3, the CONTINUE long-string
convention and ESO's HIERARCH keywords).

Why this exists: `indical master` and the library's sweep are short processes, and importing
astropy.io.fits (which pulls in astropy.units) costs 0.3-0.4 s, as long as combining 32 frames
of 8 Mpixel takes. Plain FITS files, which is what capture programs write, are read and
masters written here; compressed or gzipped files still go through astropy (`rawio`).

`Header` is an ordered list of cards with case-insensitive lookup by keyword, the parts of
astropy's `Header` interface indical uses: `get`, `[]`, `in`, assignment of a value or a
(value, comment) pair, `add_history`, `add_comment`, `pop`, `cards`. Values read as astropy
reads them: `bool` for T/F, `int`, `float` (D exponents too), `str` without trailing blanks,
`None` for an undefined value; a value that is none of these stays its raw text."""

from __future__ import annotations

import unicodedata

import os
import re
from typing import TYPE_CHECKING, Any, BinaryIO, Iterable, Iterator, NamedTuple

if TYPE_CHECKING:
    import numpy as np

BLOCK = 2880
CARD = 80
_COMMENTARY = frozenset({"COMMENT", "HISTORY", ""})
_KEYWORD = re.compile(r"^[A-Z0-9_-]{0,8}$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([EeDd][+-]?\d+)?$")


class Card(NamedTuple):
    """One header card. `keyword` is as stored (upper case; 'HIERARCH ...' kept whole)."""

    keyword: str
    value: Any
    comment: str = ""


class HeaderError(ValueError):
    """A header that can't be read or a value that can't be written; says which card."""


def _lookup_key(keyword: str) -> str:
    key = keyword.strip().upper()
    if key.startswith("HIERARCH "):
        key = key[len("HIERARCH "):].strip()
    return key


class Header:
    """An ordered FITS header (see the module docstring)."""

    def __init__(self, cards: Iterable[Card | tuple] = ()) -> None:
        self._cards: list[Card] = []
        self._index: dict[str, int] = {}  # lookup key -> position of its first card
        for card in cards:
            self.append(Card(*card))

    # -- reading -----------------------------------------------------------------------------
    @property
    def cards(self) -> list[Card]:
        return list(self._cards)

    def __len__(self) -> int:
        return len(self._cards)

    def __iter__(self) -> Iterator[str]:
        return (c.keyword for c in self._cards)

    def keys(self) -> list[str]:
        return [c.keyword for c in self._cards]

    def __contains__(self, keyword: object) -> bool:
        if not isinstance(keyword, str):
            return False
        key = _lookup_key(keyword)
        if key in _COMMENTARY:   # HISTORY and COMMENT cards are not indexed: there may be many
            return any(_lookup_key(c.keyword) == key for c in self._cards)
        return key in self._index

    def __getitem__(self, keyword: str) -> Any:
        key = _lookup_key(keyword)
        if key in _COMMENTARY:
            return [c.value for c in self._cards if _lookup_key(c.keyword) == key]
        try:
            return self._cards[self._index[key]].value
        except KeyError:
            raise KeyError(f"keyword {keyword!r} not found") from None

    def get(self, keyword: str, default: Any = None) -> Any:
        return self[keyword] if keyword in self else default

    def comment(self, keyword: str) -> str:
        return self._cards[self._index[_lookup_key(keyword)]].comment

    # -- changing ----------------------------------------------------------------------------
    def append(self, card: Card | tuple) -> None:
        card = Card(*card)
        keyword = card.keyword.strip().upper()
        card = card._replace(keyword=keyword, comment=card.comment or "")
        key = _lookup_key(keyword)
        if key not in _COMMENTARY and key in self._index:
            self._cards[self._index[key]] = card
            return
        if key not in _COMMENTARY:
            self._index[key] = len(self._cards)
        self._cards.append(card)

    def __setitem__(self, keyword: str, value: Any) -> None:
        comment = ""
        if isinstance(value, tuple):
            value, comment = value
        elif keyword in self:
            comment = self.comment(keyword)
        self.append(Card(keyword, value, comment))

    def pop(self, keyword: str, default: Any = None) -> Any:
        key = _lookup_key(keyword)
        if key not in self._index:
            return default
        value = self._cards.pop(self._index[key]).value
        self._reindex()
        return value

    def _reindex(self) -> None:
        self._index = {}
        for i, c in enumerate(self._cards):
            key = _lookup_key(c.keyword)
            if key not in _COMMENTARY:
                self._index.setdefault(key, i)

    def add_history(self, text: str) -> None:
        self._cards.append(Card("HISTORY", str(text), ""))

    def add_comment(self, text: str) -> None:
        self._cards.append(Card("COMMENT", str(text), ""))

    def copy(self) -> "Header":
        return Header(self._cards)

    def __repr__(self) -> str:
        return "\n".join(format_card(c)[0].rstrip() for c in self._cards)

    # -- bytes ---------------------------------------------------------------------------------
    def tobytes(self) -> bytes:
        """The header as FITS blocks: every card, END, blank-padded to a multiple of 2880."""
        lines = [line for card in self._cards for line in format_card(card)]
        lines.append("END".ljust(CARD))
        text = "".join(lines)
        text += " " * (-len(text) % BLOCK)
        return text.encode("ascii")


# -- parsing -----------------------------------------------------------------------------------
_AFTER_STRING = re.compile(r"\s*(/.*)?$", re.DOTALL)


def _parse_string(text: str) -> tuple[str, str]:
    """A quoted FITS string at text[0] == "'": (the text between the quotes as written, with
    quotes still doubled and trailing blanks kept; the rest of the field after the closing
    quote, blank or a comment). A doubled quote stands for one quote. Some writers split a
    doubled quote across CONTINUE cards, so a piece need not be a valid string on its own:
    then the closing quote is the first one followed only by blanks or a comment."""
    i = 1
    n = len(text)
    while i < n:
        if text[i] == "'":
            if i + 1 < n and text[i + 1] == "'":
                i += 2
                continue
            if _AFTER_STRING.match(text, i + 1):
                return text[1:i], text[i + 1:]
            break
        i += 1
    for j in range(1, n):
        if text[j] == "'" and _AFTER_STRING.match(text, j + 1):
            return text[1:j], text[j + 1:]
    raise HeaderError("string value without its closing quote")


def _split_comment(rest: str) -> str:
    rest = rest.strip()
    return rest[1:].strip() if rest.startswith("/") else rest


def _parse_scalar(token: str) -> Any:
    if token == "":
        return None
    if token == "T":
        return True
    if token == "F":
        return False
    if _INT.match(token):
        return int(token)
    if _FLOAT.match(token):
        return float(token.replace("D", "E").replace("d", "e"))
    if token.startswith("(") and token.endswith(")"):
        parts = token[1:-1].split(",")
        if len(parts) == 2:
            try:
                return complex(float(parts[0].replace("D", "E")), float(parts[1].replace("D", "E")))
            except ValueError:
                pass
    return token  # not a FITS value; kept as written, as astropy does after its warning


class _Raw(NamedTuple):
    card: Card
    raw: str | None  # a string value as written (quotes doubled), for CONTINUE joining


def _parse_line(line: str) -> _Raw:
    keyword = line[:8].rstrip().upper()
    if keyword.startswith("HIERARCH") and "=" in line:
        name, _, field = line.partition("=")
        keyword = " ".join(name.split()).upper()
    elif keyword == "CONTINUE":
        body = line[8:].lstrip()
        if body.startswith("'"):
            raw, rest = _parse_string(body)
            return _Raw(Card(keyword, raw.replace("''", "'"), _split_comment(rest)), raw)
        return _Raw(Card(keyword, body.rstrip(), ""), None)
    elif keyword in _COMMENTARY or line[8:9] != "=":
        return _Raw(Card(keyword, line[8:].rstrip(), ""), None)
    else:
        field = line[9:]
    body = field.lstrip()
    if body.startswith("'"):
        raw, rest = _parse_string(body)
        return _Raw(Card(keyword, _utf8(raw.rstrip().replace("''", "'")), _split_comment(rest)),
                     raw)
    token, _, comment = body.partition("/")
    return _Raw(Card(keyword, _parse_scalar(token.strip()), comment.strip()), None)


def parse_card(line: str) -> Card:
    """One 80-character card. Raises HeaderError for a broken string value."""
    return _parse_line(line).card


def parse_header(data: bytes, *, where: str = "header") -> Header:
    """Cards up to END from whole 2880-byte blocks (the END card must be in `data`). A string
    ending in '&' continues in the CONTINUE cards that follow (joined as written, then the
    doubled quotes undone, so a pair split across two cards reads right)."""
    text = data.decode("latin-1")
    cards: list[Card] = []
    pending: list[str] | None = None  # raw pieces of a long string being continued
    comments: list[str] = []

    def finish() -> None:
        nonlocal pending
        if pending is not None:
            joined = _utf8("".join(pending).rstrip().replace("''", "'"))
            cards[-1] = cards[-1]._replace(value=joined, comment=" ".join(c for c in comments if c))
            pending = None

    for start in range(0, len(text), CARD):
        line = text[start:start + CARD].ljust(CARD)
        if line[:8].rstrip() == "END" and not line[8:].strip():
            finish()
            return Header(cards)
        try:
            parsed = _parse_line(line)
        except HeaderError as exc:
            raise HeaderError(f"{where}, card {start // CARD + 1} ({line[:8].strip()}): {exc}") from None
        card = parsed.card
        if card.keyword == "CONTINUE":
            if pending is not None and parsed.raw is not None:
                piece = pending[-1]
                if piece.rstrip().endswith("&"):
                    pending[-1] = piece.rstrip()[:-1]
                    pending.append(parsed.raw)
                    comments.append(card.comment)
                    continue
            continue  # a stray CONTINUE carries no keyword of its own
        finish()
        cards.append(card)
        if parsed.raw is not None and parsed.raw.rstrip().endswith("&"):
            pending = [parsed.raw]
            comments = [card.comment]
    raise HeaderError(f"{where}: no END card")


# -- formatting --------------------------------------------------------------------------------
# Letters filter names are written with, spelled the way ASCII-only programs spell them.
_GREEK = {"α": "a", "β": "b", "γ": "g", "δ": "d", "ε": "e", "η": "h", "θ": "th", "λ": "l",
          "μ": "u", "ν": "n", "π": "pi", "σ": "s", "τ": "t", "φ": "ph", "χ": "ch", "ω": "w",
          "Α": "A", "Β": "B", "Γ": "G", "Δ": "D", "Ω": "W", "°": "deg", "µ": "u"}


def _ascii(text: str) -> str:
    """FITS headers hold printable ASCII only: accents are dropped and Greek letters spelled
    as ASCII-only programs spell them ('Hα' -> 'Ha', 'Hβ' -> 'Hb'); anything else becomes '?'."""
    out = []
    for ch in str(text):
        if " " <= ch <= "~":
            out.append(ch)
        elif ch in _GREEK:
            out.append(_GREEK[ch])
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch)
                           if " " <= c <= "~")
            out.append(base or "?")
    return "".join(out)


def _utf8(text: str) -> str:
    """A string read byte for byte (latin-1) as the UTF-8 it was written in, when it is valid
    UTF-8: capture programs write 'Hα' that way. Anything else stays as read."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def _float_text(keyword: str, value: float) -> str:
    """Shortest text that reads back as the same float, FITS style: '1.5E-05', '2.0'."""
    if value != value or value in (float("inf"), float("-inf")):
        raise HeaderError(f"{keyword}: {value} can't be written in a FITS header")
    text = repr(value).upper()  # may run past column 30 (free format): exactness first
    mantissa, _, exponent = text.partition("E")
    if "." not in mantissa:
        mantissa += ".0"
    if not exponent:
        return mantissa
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}E{sign}{exponent.lstrip('+-').zfill(2)}"


def format_value(keyword: str, value: Any) -> str:
    """The value field as FITS writes it (numbers right-aligned to column 30)."""
    if value is None:
        return ""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    if isinstance(value, bool):
        return ("T" if value else "F").rjust(20)
    if isinstance(value, int):
        return str(value).rjust(20)
    if isinstance(value, float):
        return _float_text(keyword, value).rjust(20)
    if isinstance(value, str):
        quoted = "'" + _ascii(value).replace("'", "''").ljust(8) + "'"
        return quoted.ljust(20)
    raise HeaderError(f"{keyword}: a {type(value).__name__} can't be written in a FITS header")


def _long_string(keyword: str, value: str, comment: str, prefix: str) -> list[str]:
    """A string longer than one card: pieces ending in '&' over CONTINUE cards."""
    text = _ascii(value)
    pieces: list[str] = []
    room = 67  # 80 - 10 (keyword and '= ') - 2 quotes - 1 ampersand
    while text:
        take = room
        piece = text[:take]
        # never split a doubled quote: count quotes so the escaped form fits
        while len(piece.replace("'", "''")) > room:
            take -= 1
            piece = text[:take]
        pieces.append(piece)
        text = text[take:]
    lines = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        body = "'" + piece.replace("'", "''") + ("" if last else "&") + "'"
        head = prefix if i == 0 else "CONTINUE  "
        line = head + body
        if last and comment:
            line += " / " + _ascii(comment)
        lines.append(line[:CARD].ljust(CARD))
    return lines


def format_card(card: Card) -> list[str]:
    """A card as one or more 80-character lines."""
    keyword = card.keyword.strip().upper()
    if keyword in ("COMMENT", "HISTORY", ""):
        text = _ascii(card.value if card.value is not None else "")
        chunks = [text[i:i + 72] for i in range(0, len(text), 72)] or [""]
        return [(keyword.ljust(8) + chunk).ljust(CARD) for chunk in chunks]
    if _KEYWORD.match(keyword):
        prefix = keyword.ljust(8) + "= "
    else:
        name = keyword[len("HIERARCH "):] if keyword.startswith("HIERARCH ") else keyword
        prefix = f"HIERARCH {_ascii(name)} = "
    if isinstance(card.value, str) and len(format_value(keyword, card.value)) + len(prefix) > CARD:
        return _long_string(keyword, card.value, card.comment, prefix)
    line = prefix + format_value(keyword, card.value)
    if card.comment:
        line += " / " + _ascii(card.comment)
    return [line[:CARD].ljust(CARD)]  # a comment that does not fit is cut


# -- images ------------------------------------------------------------------------------------
_WRITE_BITPIX = {"f4": -32, "f8": -64, "i2": 16, "i4": 32, "u1": 8}


def write_image(fh: BinaryIO, data: "np.ndarray", header: Header) -> None:
    """Write a primary HDU: the mandatory cards for `data` (float32/64, int16/32 or uint8,
    2-D), then `header`'s other cards, then the data big-endian, padded to 2880 bytes.
    Cards describing the array layout or integer scaling in `header` are replaced."""
    import numpy as np

    kind = data.dtype.kind + str(data.dtype.itemsize)
    if kind not in _WRITE_BITPIX or data.ndim != 2:
        raise HeaderError(f"can't write a {data.ndim}-D {data.dtype} image")
    out = Header([Card("SIMPLE", True, "conforms to FITS standard"),
                  Card("BITPIX", _WRITE_BITPIX[kind], "array data type"),
                  Card("NAXIS", 2, "number of array dimensions"),
                  Card("NAXIS1", int(data.shape[1])),
                  Card("NAXIS2", int(data.shape[0]))])
    layout = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE",
              "END"}
    for card in header.cards:
        if _lookup_key(card.keyword) not in layout:
            out.append(card)
    fh.write(out.tobytes())
    big = data.dtype.newbyteorder(">")
    for row in range(0, data.shape[0], 256):  # a few MB at a time: no second whole copy
        block = np.ascontiguousarray(data[row:row + 256]).astype(big, copy=False)
        fh.write(block.data)
    nbytes = data.size * data.dtype.itemsize
    fh.write(b"\0" * (-nbytes % BLOCK))


MAX_HEADER_BLOCKS = 1000  # a header longer than this is not a header (2.9 MB of cards)


def read_header_at(fh: BinaryIO, offset: int, *, where: str) -> tuple[Header, int]:
    """The header starting at byte `offset` of an open file, and the offset where its data
    begins. Raises EOFError when the file ends exactly at `offset` (no more HDUs), HeaderError
    (starting with `where`) when the header is cut short, has no END or a broken card."""
    fh.seek(offset)
    blocks = bytearray()
    while True:
        block = fh.read(BLOCK)
        if len(block) < BLOCK:
            if not blocks and not block:
                raise EOFError
            raise HeaderError(f"{where}: truncated: it ends inside a header")
        blocks += block
        # END is a card of its own: check only the new block's cards
        for i in range(len(blocks) - BLOCK, len(blocks), CARD):
            if blocks[i:i + 3] == b"END" and not blocks[i + 3:i + CARD].strip():
                return parse_header(bytes(blocks[:i + CARD]), where=where), offset + len(blocks)
        if len(blocks) >= MAX_HEADER_BLOCKS * BLOCK:
            raise HeaderError(f"{where}: no END card in the first {MAX_HEADER_BLOCKS} header "
                              "blocks")


def read_primary_header(path: str | os.PathLike) -> Header:
    """The primary header of a plain FITS file. Raises HeaderError (or OSError) naming the
    file when it is not FITS or its header is cut short."""
    with open(path, "rb") as fh:
        if fh.read(9) != b"SIMPLE  =":
            raise HeaderError(f"{os.fspath(path)}: not a FITS file")
        try:
            return read_header_at(fh, 0, where=os.fspath(path))[0]
        except EOFError:
            raise HeaderError(f"{os.fspath(path)}: empty") from None
