"""Patient search: by name without diacritics, MRN, citizen ID, card number or phone.

Names: every word of the query must start a word of the name, so "nguyen van an"
finds "Nguyễn Văn Ân" and "dang" finds "Đặng Thị Hoa". Each database answers that
with its own index (figures in docs/benchmarks.md):

* SQLite: the FTS5 table patient_name_fts (prefix queries).
* PostgreSQL: first whole words with the full-text index (fast even for the most
  common words); when that finds fewer than a page, the trigram index with word
  prefixes, which finds what the user is still typing.
* Anywhere else, or SQLite without FTS5: LIKE over name_key.
"""

from __future__ import annotations

import re
from functools import cache

from django.db import connection
from django.db.models import QuerySet

from benhan.lib.vntext import search_terms
from benhan.patients.models import Patient

MIN_NAME_CHARS = 3
LIMIT = 30

LIST_FIELDS = (
    "id", "mrn", "full_name", "name_key", "birth_year", "birth_date", "sex", "phone",
    "cccd", "insurance_number", "province_code",
)  # fmt: skip

# Word characters only: anything else in a query word is dropped before it reaches
# a full-text query syntax.
_WORD = re.compile(r"[a-z0-9]+")


def search(facility_id: int, query: str, limit: int = LIMIT) -> tuple[list[Patient], str]:
    """Return (patients, problem). problem is '' or a reason the query was not run."""
    text = query.strip()
    base = Patient.objects.filter(facility_id=facility_id).only(*LIST_FIELDS)
    compact = re.sub(r"[\s.\-]", "", text).upper()
    if re.fullmatch(r"\+?\d{4,15}", compact):
        return _ids(base, compact.lstrip("+"), limit), ""
    if re.fullmatch(r"[A-Z]{2}\d{13}", compact):
        return list(base.filter(insurance_key=compact[-10:])[:limit]), ""
    terms = search_terms(text)
    if sum(len(t) for t in terms) < MIN_NAME_CHARS:
        return [], "short"
    found = _names(base, facility_id, terms, limit)
    # Not sorted in SQL: a common family name matches a third of the registry and
    # sorting every match costs more than the user gains. Sort the page we show.
    found.sort(key=lambda p: (p.name_key, p.birth_year))
    return found, ""


def _names(base: QuerySet, facility_id: int, terms: list[str], limit: int) -> list[Patient]:
    words = [w for t in terms for w in _WORD.findall(t)]
    if connection.vendor == "sqlite" and words and _sqlite_has_fts():
        return _sqlite_fts(facility_id, words, limit)
    if connection.vendor == "postgresql" and words:
        found = _pg_whole_words(base, words, limit)
        if len(found) >= limit:
            return found
        seen = {p.pk for p in found}
        more = [p for p in _like(base, terms, limit) if p.pk not in seen]
        return (found + more)[:limit]
    return _like(base, terms, limit)


def _like(base: QuerySet, terms: list[str], limit: int) -> list[Patient]:
    qs = base
    for term in terms:
        qs = qs.filter(name_key__contains=" " + term)
    return list(qs[:limit])


@cache
def _sqlite_has_fts() -> bool:
    with connection.cursor() as c:
        c.execute("SELECT 1 FROM sqlite_master WHERE name = 'patient_name_fts'")
        return c.fetchone() is not None


def _sqlite_fts(facility_id: int, words: list[str], limit: int) -> list[Patient]:
    match = " ".join(f'"{w}"*' for w in words)  # implicit AND of word prefixes
    cols = ", ".join(f"p.{Patient._meta.get_field(f).column}" for f in LIST_FIELDS)
    # CROSS JOIN fixes the join order: the FTS index first, then patients by rowid,
    # so LIMIT stops the scan early. Column names come from the model.
    sql = (
        f"SELECT {cols} FROM patient_name_fts "  # noqa: S608
        "CROSS JOIN patients_patient p ON p.id = patient_name_fts.rowid "
        "WHERE patient_name_fts MATCH %s AND p.facility_id = %s LIMIT %s"
    )
    return list(Patient.objects.raw(sql, [match, facility_id, limit]))


def _pg_whole_words(base: QuerySet, words: list[str], limit: int) -> list[Patient]:
    tsquery = " & ".join(words)
    return list(
        # extra(): the GIN index is on exactly this expression; SearchVector adds COALESCE.
        base.extra(
            where=["to_tsvector('simple', name_key) @@ to_tsquery('simple', %s)"],
            params=[tsquery],
        )[:limit]
    )


def _ids(base: QuerySet, digits: str, limit: int) -> list[Patient]:
    """One indexed query per identifier, so no planner statistics are needed."""
    if digits.startswith("84") and len(digits) == 11:
        digits = "0" + digits[2:]
    # Ranges rather than LIKE 'x%': a B-tree index answers them on both databases.
    upper = digits + ":"  # ':' sorts right after '9'
    queries = [
        base.filter(mrn__gte=digits, mrn__lt=upper),
        base.filter(phone__gte=digits, phone__lt=upper),
    ]
    if len(digits) == 12:
        queries.append(base.filter(cccd=digits))
    if len(digits) == 10:
        queries.append(base.filter(insurance_key=digits))
    found: dict[int, Patient] = {}
    for qs in queries:
        for p in qs[:limit]:
            found.setdefault(p.pk, p)
    return list(found.values())[:limit]
