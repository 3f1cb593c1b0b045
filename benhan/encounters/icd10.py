"""The ICD-10 code list: loading the shipped list, importing Vietnamese titles, searching."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from django.db import transaction

from benhan.encounters.models import Icd10Code
from benhan.lib.vntext import search_key, search_terms

SHIPPED = Path(__file__).parent / "data" / "icd10_who.csv"


def load_shipped(progress: Callable[[int], None] | None = None) -> int:
    """Create or update codes from the shipped WHO list. Keeps imported Vietnamese titles."""
    with SHIPPED.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    existing = {c.code: c for c in Icd10Code.objects.all()}
    new, changed = [], []
    for row in rows:
        code = existing.get(row["code"])
        if code is None:
            code = Icd10Code(code=row["code"], title_en=row["title_en"], chapter=row["chapter"])
            code.search_key = search_key(f"{code.code} {code.title_en}")
            new.append(code)
        elif code.title_en != row["title_en"] or code.chapter != row["chapter"]:
            code.title_en, code.chapter = row["title_en"], row["chapter"]
            code.search_key = search_key(f"{code.code} {code.title_vi} {code.title_en}")
            changed.append(code)
    with transaction.atomic():
        Icd10Code.objects.bulk_create(new, batch_size=2000)
        Icd10Code.objects.bulk_update(
            changed, ["title_en", "chapter", "search_key"], batch_size=2000
        )
    if progress:
        progress(len(rows))
    return len(new) + len(changed)


def import_vietnamese(path: Path) -> tuple[int, list[str]]:
    """Set Vietnamese titles from a CSV of the Ministry's list (QĐ 4469/QĐ-BYT).

    The file needs a column with the code and one with the Vietnamese title; the
    usual headers of the Ministry's spreadsheet saved as CSV are recognised.
    Returns (titles set, codes in the file that are not in the list).
    """
    with path.open(encoding="utf-8-sig", newline="") as f:
        sample = f.read(4096)
        f.seek(0)
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        reader = csv.DictReader(f, dialect=dialect)
        code_col = _pick(reader.fieldnames or [], CODE_HEADERS)
        title_col = _pick(reader.fieldnames or [], TITLE_HEADERS)
        rows = [
            (r[code_col].strip().upper(), r[title_col].strip()) for r in reader if r.get(code_col)
        ]
    codes = {c.code: c for c in Icd10Code.objects.all()}
    updated, unknown = [], []
    for raw, title in rows:
        code = codes.get(raw) or codes.get(_dotted(raw))
        if code is None:
            unknown.append(raw)
            continue
        if title and code.title_vi != title:
            code.title_vi = title
            code.search_key = search_key(f"{code.code} {code.title_vi} {code.title_en}")
            updated.append(code)
    with transaction.atomic():
        Icd10Code.objects.bulk_update(updated, ["title_vi", "search_key"], batch_size=2000)
    return len(updated), unknown


CODE_HEADERS = ("ma", "mã", "ma benh", "mã bệnh", "ma icd", "mã icd", "ma_benh", "code")
TITLE_HEADERS = (
    "ten benh",
    "tên bệnh",
    "ten",
    "tên",
    "ten_benh",
    "title_vi",
    "ten tieng viet",
    "tên tiếng việt",
)


def _pick(headers: list[str], wanted: tuple[str, ...]) -> str:
    lowered = {h.strip().lower(): h for h in headers}
    for w in wanted:
        if w in lowered:
            return lowered[w]
    raise ValueError(f"none of the columns {headers} is one of {wanted}")


def _dotted(code: str) -> str:
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 and "." not in code else code


def search_codes(query: str, limit: int = 20) -> list[Icd10Code]:
    """By code prefix ('e11', 'E11.9') or by words of the title, without diacritics."""
    q = query.strip().upper()
    if len(q) >= 2 and q[0].isalpha() and q[1:2].isdigit():
        code = _dotted(q.replace(" ", ""))
        return list(Icd10Code.objects.filter(code__startswith=code)[:limit])
    qs = Icd10Code.objects.all()
    for term in search_terms(query):
        qs = qs.filter(search_key__contains=" " + term)
    return list(qs[:limit])
