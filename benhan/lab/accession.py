"""Accession numbers: YYMMDD + a 4-digit daily sequence + a Luhn check digit.

11 digits, e.g. 26112700017: short enough for every analyzer's specimen id field and a
50 mm Code128 label, sortable by day, unique per facility (a database constraint, and
the sequence comes from the facility's Counter, safe under concurrency). The check
digit catches a mistyped digit and most swapped pairs when a number is keyed in by hand.
"""

from __future__ import annotations

from django.utils import timezone

from benhan.accounts.models import Counter


def luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # the rightmost digit of the payload is doubled
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def is_valid(accession: str) -> bool:
    a = accession.strip()
    return len(a) == 11 and a.isdigit() and luhn_digit(a[:-1]) == a[-1]


def next_accession(facility) -> str:
    day = timezone.localdate().strftime("%y%m%d")
    seq = Counter.next_value(facility, f"accession-{day}")
    if seq > 9999:
        raise OverflowError("more than 9,999 specimens in one day")
    payload = f"{day}{seq:04d}"
    return payload + luhn_digit(payload)
