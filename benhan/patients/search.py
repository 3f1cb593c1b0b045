"""Patient search: by name without diacritics, MRN, citizen ID, card number or phone."""

from __future__ import annotations

import re

from django.db.models import Q, QuerySet

from benhan.lib.vntext import search_terms
from benhan.patients.models import Patient

MIN_NAME_CHARS = 3
LIMIT = 30


def search(facility_id: int, query: str, limit: int = LIMIT) -> tuple[list[Patient], str]:
    """Return (patients, problem). problem is '' or a reason the query was not run.

    Names: every word of the query must start a word of the name, so
    "nguyen van an" finds "Nguyễn Văn Ân" and "dang" finds "Đặng Thị Hoa".
    Digits and card numbers match identifiers exactly (the phone and MRN also by
    prefix), which the indexes answer at once.
    """
    text = query.strip()
    base = Patient.objects.filter(facility_id=facility_id)
    compact = re.sub(r"[\s.\-]", "", text).upper()
    if re.fullmatch(r"\+?\d{4,15}", compact):
        return _ids(base, compact.lstrip("+"), limit), ""
    if re.fullmatch(r"[A-Z]{2}\d{13}", compact):
        return list(base.filter(insurance_key=compact[-10:])[:limit]), ""
    terms = search_terms(text)
    if sum(len(t) for t in terms) < MIN_NAME_CHARS:
        return [], "short"
    qs = base
    for term in terms:
        qs = qs.filter(name_key__contains=" " + term)
    # No ORDER BY in SQL: a common family name matches a third of the registry and
    # sorting every match costs more than the user gains. Sort the page we show.
    found = list(qs.only(*LIST_FIELDS)[:limit])
    found.sort(key=lambda p: (p.name_key, p.birth_year))
    return found, ""


LIST_FIELDS = (
    "id", "mrn", "full_name", "name_key", "birth_year", "birth_date", "sex", "phone",
    "cccd", "insurance_number", "province_code",
)  # fmt: skip


def _ids(base: QuerySet, digits: str, limit: int) -> list[Patient]:
    if digits.startswith("84") and len(digits) == 11:
        digits = "0" + digits[2:]
    # Ranges rather than LIKE 'x%': a B-tree index answers them on both databases.
    upper = digits + ":"  # ':' sorts right after '9'
    q = Q(mrn__gte=digits, mrn__lt=upper) | Q(phone__gte=digits, phone__lt=upper)
    if len(digits) == 12:
        q |= Q(cccd=digits)
    if len(digits) == 10:
        q |= Q(insurance_key=digits)
    return list(base.filter(q).only(*LIST_FIELDS)[:limit])
