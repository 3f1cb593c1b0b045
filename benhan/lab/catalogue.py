"""The starting test catalogue (data/catalogue.csv), loaded per facility, and the
reference-range and critical-limit rules that interpret a value."""

from __future__ import annotations

import csv
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.db import transaction

from benhan.lab.models import LabTest, PanelMember, ReferenceRange

CATALOGUE = Path(__file__).resolve().parent / "data" / "catalogue.csv"

_RANGE = re.compile(
    r"^\s*(?:(?P<lo>-?[\d.]+)\s*-\s*(?P<hi>-?[\d.]+)|<\s*(?P<lt>[\d.]+)|>\s*(?P<gt>[\d.]+))\s*$"
)


@transaction.atomic
def load_catalogue(facility, path: Path = CATALOGUE) -> int:
    """Create or update the facility's catalogue from the CSV. Returns the rows read.

    Existing tests keep their id (orders point at them); their ranges are replaced by
    the file's only when the file gives ranges.
    """
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    tests = {}
    for i, row in enumerate(rows):
        test, _ = LabTest.objects.update_or_create(
            facility=facility,
            code=row["code"],
            defaults={
                "name": row["name"], "kind": row["kind"], "loinc": row["loinc"],
                "unit": row["unit"], "specimen_type": row["specimen"],
                "price": int(row["price"] or 0), "decimals": int(row["decimals"] or 0),
                "critical_low": _dec(row["critical_low"]),
                "critical_high": _dec(row["critical_high"]),
                "is_panel": bool(row["panel_of"]), "sort_order": (i + 1) * 10,
                "needs_verifier": row.get("needs_verifier", "") == "1",
            },
        )  # fmt: skip
        tests[test.code] = test
        if row["ranges"]:
            test.ranges.all().delete()
            ReferenceRange.objects.bulk_create(parse_ranges(test, row["ranges"]))
    for row in rows:
        if row["panel_of"]:
            panel = tests[row["code"]]
            PanelMember.objects.filter(panel=panel).delete()
            PanelMember.objects.bulk_create(
                PanelMember(panel=panel, test=tests[c], position=n)
                for n, c in enumerate(row["panel_of"].split())
            )
    return len(rows)


def parse_ranges(test: LabTest, spec: str) -> list[ReferenceRange]:
    """ "M:62-120;F:53-100;<6570d:27-62" → ranges. "Âm tính" → a text range."""
    out = []
    for part in spec.split(";"):
        sex, age_max, text = "", None, part.strip()
        head, sep, rest = text.partition(":")
        if sep and head in ("M", "F"):
            sex, text = head, rest
        elif sep and head.startswith("<") and head.endswith("d"):
            age_max, text = int(head[1:-1]), rest
        m = _RANGE.match(text)
        if m is None:
            out.append(ReferenceRange(test=test, sex=sex, age_max_days=age_max, text=text))
            continue
        lo, hi = m["lo"] or m["gt"], m["hi"] or m["lt"]
        out.append(ReferenceRange(test=test, sex=sex, age_max_days=age_max,
                                  low=_dec(lo), high=_dec(hi)))  # fmt: skip
    return out


def _dec(v: str | None) -> Decimal | None:
    if v is None or str(v).strip() == "":
        return None
    try:
        return Decimal(str(v).strip().replace(",", "."))
    except InvalidOperation:
        return None


def range_for(test: LabTest, sex: str, birth: date | None, on: date,
              ranges: list[ReferenceRange] | None = None) -> ReferenceRange | None:  # fmt: skip
    """The most specific range for a patient: by sex and age when the test has them."""
    age_days = (on - birth).days if birth else None
    best, score = None, -1
    for r in ranges if ranges is not None else test.ranges.all():
        if r.sex and r.sex != sex:
            continue
        if r.age_max_days is not None and (age_days is None or age_days >= r.age_max_days):
            continue
        if age_days is not None and age_days < r.age_min_days:
            continue
        s = (2 if r.sex else 0) + (1 if r.age_max_days is not None or r.age_min_days else 0)
        if s > score:
            best, score = r, s
    return best


_NUMBER = re.compile(r"^\s*(?P<cmp><=|>=|<|>)?\s*(?P<num>[-+]?\d+(?:[.,]\d+)?)\s*$")


def parse_value(value: str) -> tuple[Decimal | None, str]:
    """ "12.3" → (12.3, ""); "<0.5" → (0.5, "<"); "Positive" → (None, "")."""
    m = _NUMBER.match(value or "")
    if not m:
        return None, ""
    return Decimal(m["num"].replace(",", ".")), m["cmp"] or ""


def interpret(test: LabTest | None, rng: ReferenceRange | None, number: Decimal | None,
              comparator: str) -> tuple[str, bool]:  # fmt: skip
    """("L"|"H"|"", critical) from the catalogue's limits. A value given as "<x" is only
    flagged low when even x is below the range (and ">x" high likewise)."""
    if test is None or number is None:
        return "", False
    flag = ""
    if rng is not None:
        if rng.low is not None and number < rng.low and comparator not in (">", ">="):
            flag = "L"
        elif rng.high is not None and number > rng.high and comparator not in ("<", "<="):
            flag = "H"
    critical = (
        test.critical_low is not None
        and number < test.critical_low
        and comparator not in (">", ">=")
    ) or (
        test.critical_high is not None
        and number > test.critical_high
        and comparator not in ("<", "<=")
    )
    return flag, critical
