"""Lines for the discharge payment statement, from the price list and the encounter.

Today the encounter's billable items are: the examination (outpatient visits and
emergencies), bed-days per department stay (admissions), and the drugs prescribed in
the record's prescriptions. Laboratory and imaging orders join when that module does.
"""

from __future__ import annotations

import csv
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from benhan.records.models import PriceItem

SAMPLE = Path(__file__).parent / "data" / "price_list.csv"

# Share of the insurance price the fund pays, by the card's benefit level (3rd character).
BENEFIT_PERCENT = {1: 100, 2: 100, 3: 95, 4: 80, 5: 100}


@transaction.atomic
def ensure_price_list(facility) -> int:
    """Load the sample price list for a facility that has none. Returns items created."""
    if PriceItem.objects.filter(facility=facility).exists():
        return 0
    with SAMPLE.open(encoding="utf-8", newline="") as f:
        items = [
            PriceItem(facility=facility, code=r["code"], kind=r["kind"], group=r["group"],
                      name=r["name"], unit=r["unit"], price=int(r["price"]),
                      insurance_price=int(r["insurance_price"]))
            for r in csv.DictReader(f)
        ]  # fmt: skip
    PriceItem.objects.bulk_create(items)
    return len(items)


def coverage_percent(encounter) -> int:
    from benhan.lib.ids import parse_insurance_card

    patient = encounter.patient
    day = timezone.localtime(encounter.started_at).date()
    if not patient.insurance_number or not patient.insurance_valid_on(day):
        return 0
    card = parse_insurance_card(patient.insurance_number)
    return BENEFIT_PERCENT.get(card.benefit_level or 4, 80)


def days(encounter) -> int:
    end = encounter.ended_at or timezone.now()
    return max(1, (end - encounter.started_at).days)


def charge_lines(encounter) -> list[dict]:
    """Statement lines: group, name, unit, quantity, price, insurance_price."""
    ensure_price_list(encounter.facility)
    prices = {p.code: p for p in PriceItem.objects.filter(facility=encounter.facility,
                                                          is_active=True)}  # fmt: skip
    lines: list[dict] = []

    def add(item: PriceItem | None, quantity: float) -> None:
        if item is not None and quantity > 0:
            lines.append({"group": item.group, "name": item.name, "unit": item.unit,
                          "quantity": quantity, "price": item.price,
                          "insurance_price": item.insurance_price})  # fmt: skip

    if encounter.kind in ("outpatient", "emergency"):
        add(prices.get("KB"), 1)
    if encounter.kind == "inpatient":
        for stay in encounter.stays.select_related("department"):
            end = stay.ended_at or encounter.ended_at or timezone.now()
            nights = max(1, (end - stay.started_at).days)
            add(prices.get(f"GB-{stay.department.code}") or prices.get("GB"), nights)
    drugs = {p.name.casefold(): p for p in prices.values() if p.kind == PriceItem.Kind.DRUG}
    record = getattr(encounter, "record", None)
    if record is not None:
        for doc in record.documents.filter(form_type="prescription"):
            version = doc.current_version()
            data = version.data if version else doc.draft
            for row in parse_table(data.get("drugs", ""), ("name", "strength", "quantity")):
                name = f"{row.get('name', '')} {row.get('strength', '')}".strip().casefold()
                item = drugs.get(name) or drugs.get(row.get("name", "").casefold())
                add(item, _number(row.get("quantity")))
    return lines


def parse_table(text, columns: tuple[str, ...], numeric: tuple[str, ...] = ()) -> list[dict]:
    """'a | b | c' lines -> [{col: value}]; a list already parsed is returned as is."""
    if isinstance(text, list):
        return text
    rows = []
    for line in str(text or "").splitlines():
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split("|")]
        row = dict(zip(columns, cells, strict=False))
        for key in numeric:
            if key in row:
                row[key] = _number(row[key])
        rows.append(row)
    return rows


def format_table(rows: list[dict], columns: tuple[str, ...]) -> str:
    """The inverse of parse_table, for pre-filling the text area."""
    out = []
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c, "")
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            cells.append(str(value))
        out.append(" | ".join(cells))
    return "\n".join(out)


def _number(value) -> float:
    try:
        return float(str(value).replace(",", ".").replace(" ", ""))
    except (TypeError, ValueError):
        return 0.0
