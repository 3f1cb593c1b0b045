"""Vietnamese text helpers: search keys without diacritics, tidy names."""

from __future__ import annotations

import re
import unicodedata

# Decomposition strips tone marks and hats but not the stroke of đ/Đ, which is a
# separate letter in Unicode: map it explicitly.
_STROKES = str.maketrans({"đ": "d", "Đ": "D"})
_SPACES = re.compile(r"\s+")


def unaccent(text: str) -> str:
    """'Nguyễn Văn Đặng' -> 'Nguyen Van Dang'."""
    decomposed = unicodedata.normalize("NFD", text.translate(_STROKES))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def search_key(text: str) -> str:
    """Lowercase, unaccented, single-spaced words, with a leading space.

    The leading space lets a word-prefix match be a plain substring match
    (`' an'` finds 'an' and 'anh' at the start of any word), which both SQLite's
    LIKE and PostgreSQL's trigram index handle.
    """
    words = _SPACES.split(unaccent(text).lower().strip())
    return " " + " ".join(w for w in words if w)


def search_terms(query: str) -> list[str]:
    """The words of a search query in search-key form."""
    return [w for w in search_key(query).split(" ") if w]


def tidy_name(text: str) -> str:
    """NFC-normalised, single-spaced name. Keeps the capitalisation the user typed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


# Letters (any script, with combining marks), spaces, and the punctuation that
# real names use. Anything else (angle brackets, digits, quotes) is refused.
_NAME_CHARS = re.compile(r"^[^\W\d_]+(?:[ '\-.][^\W\d_]+)*\.?$")


def is_plausible_name(text: str) -> bool:
    return bool(_NAME_CHARS.match(text))
