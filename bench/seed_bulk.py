"""Fill a benchmark database with N synthetic patients, fast.

    .venv/bin/python bench/seed_bulk.py --patients 100000                # SQLite, /tmp/bench-sqlite
    BENHAN_DB=postgres BENHAN_DB_NAME=benhan_bench \\
        .venv/bin/python bench/seed_bulk.py --patients 1000000            # PostgreSQL, COPY

Names are realistic Vietnamese names with diacritics (family names weighted as in
the population: Nguyễn ~31 %, Trần 11 %, Lê 9.5 %, ...), with middle and given names
by sex, birth years, phones, unique CCCD-shaped 12-digit numbers and 10-digit
social-insurance keys. A share of the patients (default 20 %) get encounters
(two on average, each with its department stay and a coded diagnosis), so the
patient page has something to show.

The rows go in with bulk_create on SQLite and with COPY (psycopg's cursor.copy) on
PostgreSQL; name_key and insurance_key are computed here because neither path calls
Patient.save(). The schema comes from `migrate`, name-search indexes included
(patients.0003). On SQLite its triggers fill the FTS5 table patient_name_fts row by
row during bulk_create, as for any registration. On PostgreSQL every secondary index
of the patient table (B-tree, trigram and full-text alike: whatever pg_indexes lists
that backs no constraint) is dropped during the load and re-created afterwards from
its own definition. Then the planner statistics are refreshed, as `benhan demo` does
after seeding: benhan.core.db.analyze().

Also creates one facility, its departments and two users (see bench/_common.py):
bench_records (records officer, reads every patient) and bench_doctor (doctor in
every clinical department).

--reset starts from an empty database: it deletes the SQLite file, or drops and
re-creates the PostgreSQL database (never `test`).
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common

# --- Name data ---------------------------------------------------------------------
# Family names with their approximate share of the population (percent). The long
# tail shares the remainder.
FAMILY = [
    ("Nguyễn", 31.0), ("Trần", 11.0), ("Lê", 9.5), ("Phạm", 7.0), ("Hoàng", 2.8),
    ("Huỳnh", 2.2), ("Phan", 4.5), ("Vũ", 2.2), ("Võ", 1.8), ("Đặng", 2.0), ("Bùi", 2.0),
    ("Đỗ", 1.4), ("Hồ", 1.3), ("Ngô", 1.3), ("Dương", 1.0), ("Lý", 0.5),
]  # fmt: skip
FAMILY_TAIL = [
    "Đào", "Đoàn", "Vương", "Trịnh", "Trương", "Lâm", "Mai", "Lương", "Đinh", "Tạ", "Hà",
    "Cao", "Quách", "Thái", "Tô", "Châu", "Kiều", "La", "Phùng", "Lưu", "Tăng", "Triệu",
    "Khúc", "Lã", "Mạc", "Nghiêm", "Quan", "Tôn", "Ông", "Âu", "Diệp", "Giang", "Kim",
    "Lạc", "Thân", "Tiêu", "Ninh", "Chu", "Từ", "Đàm", "Bạch", "Hứa", "Lại", "Nông", "Lò",
    "Hầu", "Ma", "Văn", "Doãn", "Khổng", "Mẫn", "Phí", "Tống", "Viên", "Yên", "Ung",
    "Bế", "Hoàng Phủ", "Tôn Nữ", "Sầm", "Cù", "Đồng", "Mông", "Thạch", "Sơn", "Danh",
]  # fmt: skip

MIDDLE_M = [
    ("Văn", 30), ("Hữu", 6), ("Đức", 7), ("Minh", 8), ("Quốc", 5), ("Thanh", 5), ("Công", 4),
    ("Xuân", 3), ("Đình", 4), ("Ngọc", 3), ("Quang", 4), ("Gia", 3), ("Hoàng", 3), ("Anh", 3),
    ("Tuấn", 2), ("Trọng", 2), ("Thành", 2), ("Bá", 2), ("Duy", 3), ("Tiến", 2), ("Mạnh", 1),
    ("Nhật", 2), ("Bảo", 2), ("Trung", 2), ("Khánh", 1), ("Hoài", 1), ("Thế", 2), ("Chí", 1),
    ("Hải", 1), ("Phúc", 1),
]  # fmt: skip
MIDDLE_F = [
    ("Thị", 40), ("Ngọc", 7), ("Thu", 5), ("Thanh", 5), ("Minh", 3), ("Thùy", 3),
    ("Phương", 3), ("Kim", 3), ("Hồng", 3), ("Mỹ", 2), ("Bảo", 2), ("Khánh", 2), ("Hoài", 1),
    ("Diệu", 1), ("Bích", 2), ("Tuyết", 1), ("Quỳnh", 1), ("Ánh", 1), ("Hải", 1), ("Lan", 1),
    ("Thảo", 1), ("Như", 2), ("Cẩm", 1), ("Hương", 1), ("Yến", 1),
]  # fmt: skip
# A second middle name for some women: "Nguyễn Thị Thu Hà".
MIDDLE2_F = ["Thu", "Ngọc", "Kim", "Thanh", "Minh", "Hồng", "Bích", "Thùy", "Mỹ", "Phương"]

# Given names, most common first; weights fall off with rank (Zipf-like).
GIVEN_M = [
    "An", "Anh", "Bảo", "Bình", "Cường", "Công", "Chiến", "Đạt", "Định", "Đông", "Dũng", "Duy",
    "Dương", "Giang", "Hải", "Hào", "Hiếu", "Hiển", "Hòa", "Hoàng", "Huy", "Hùng", "Hưng",
    "Khang", "Khánh", "Khôi", "Kiên", "Lâm", "Long", "Lộc", "Luân", "Minh", "Nam", "Nghĩa",
    "Nhân", "Phát", "Phong", "Phúc", "Phương", "Quân", "Quang", "Quý", "Sang", "Sơn", "Tài",
    "Tâm", "Tân", "Thắng", "Thành", "Thiện", "Thịnh", "Thông", "Tiến", "Toàn", "Trí", "Trung",
    "Trường", "Tú", "Tuấn", "Tùng", "Việt", "Vinh", "Vũ", "Hậu", "Lực", "Tín", "Châu", "Đức",
    "Hiệp", "Khoa", "Lợi", "Mạnh", "Nguyên", "Nhật", "Quyết", "Sĩ", "Thạch", "Thuận", "Tiệp",
    "Tuệ", "Vĩnh", "Vương", "Xuân", "Kha", "Khiêm", "Triết", "Cảnh", "Chính", "Doanh", "Đoàn",
    "Hãn", "Khải", "Lập", "Ngạn", "Phong", "Quảng", "Thái", "Uy", "Võ", "Ý",
]  # fmt: skip
GIVEN_F = [
    "Anh", "Linh", "Hương", "Trang", "Hà", "Lan", "Mai", "Ngọc", "Hoa", "Thảo", "Hằng",
    "Huyền", "Phương", "Thủy", "Nhung", "Dung", "Yến", "Hạnh", "Hiền", "Nga", "Thu", "Vân",
    "Loan", "Oanh", "Tâm", "Châu", "Chi", "Giang", "Hồng", "Huệ", "Hường", "Liên", "Ly", "My",
    "Ngân", "Nhi", "Quyên", "Quỳnh", "Thanh", "Thắm", "Thúy", "Thư", "Trâm", "Trinh", "Tuyết",
    "Uyên", "Vi", "Vy", "Xuân", "An", "Ánh", "Bích", "Diệp", "Duyên", "Hân", "Hạ", "Hải",
    "Khánh", "Lam", "Lệ", "Nhàn", "Như", "Phượng", "Sen", "Tiên", "Tú", "Uyển", "Thoa", "Thơm",
    "Tươi", "Xoan", "Đào", "Cúc", "Gấm", "Lài", "Lụa", "Mơ", "Nụ", "Thêu", "Nhạn", "Quế",
    "Sương", "Thục", "Vinh", "Kiều", "Diễm", "Hảo", "Nguyệt", "Trúc", "Khuê",
]  # fmt: skip

# Rare given names, a handful of patients each: the "rare name" queries find them.
GIVEN_RARE = [
    "Khuyến", "Thưởng", "Ngữ", "Lịch", "Dĩnh", "Hoành", "Chuyên", "Thiều", "Quỹ", "Ngoạn",
    "Kỷ", "Thoại", "Triều", "Mẫn", "Nghiệp", "Trác", "Quýnh", "Tường", "Huấn", "Khởi", "Phiệt",
    "Điểm", "Cừ", "Nhuận", "Tẩm", "Dụ", "Thỉnh", "Chử", "Liêm", "Bổng",
]  # fmt: skip

STREETS = [
    "Lê Lợi", "Trần Hưng Đạo", "Nguyễn Trãi", "Hai Bà Trưng", "Lý Thường Kiệt", "Quang Trung",
    "Hùng Vương", "Phan Chu Trinh", "Điện Biên Phủ", "Nguyễn Huệ", "Cách Mạng Tháng Tám",
    "Võ Thị Sáu", "Lê Duẩn", "Bà Triệu", "Ngô Quyền", "Hoàng Diệu", "Nguyễn Du",
]  # fmt: skip
OCCUPATIONS = [
    "Nông dân", "Công nhân", "Giáo viên", "Buôn bán", "Học sinh", "Hưu trí", "Nội trợ",
    "Lái xe", "Kỹ sư", "Viên chức", "Lao động tự do", "Sinh viên", "Trẻ em", "Ngư dân",
]  # fmt: skip
RELATIONS = ["Vợ", "Chồng", "Con", "Mẹ", "Bố", "Anh", "Chị", "Em"]
PHONE_PREFIXES = [
    "032", "033", "034", "035", "036", "037", "038", "039", "070", "076", "077", "078",
    "079", "081", "082", "083", "084", "085", "086", "088", "089", "090", "091", "093",
    "094", "096", "097", "098", "056", "058", "059",
]  # fmt: skip
INSURANCE_CATEGORIES = ["GD", "HT", "TE", "DN", "HS", "CN", "BT", "NO", "HC", "XN", "CK", "SV"]
REASONS = [
    "Sốt, ho 3 ngày", "Đau bụng vùng thượng vị", "Tăng huyết áp, tái khám", "Đau đầu, chóng mặt",
    "Khó thở khi gắng sức", "Tiêu chảy 2 ngày", "Đau khớp gối", "Khám sức khỏe định kỳ",
    "Đái tháo đường, tái khám", "Đau ngực trái", "Sốt cao, phát ban", "Chấn thương cẳng tay",
    "Ho kéo dài", "Đau lưng", "Mệt mỏi, ăn kém", "Viêm họng", "Đau bụng hố chậu phải",
]  # fmt: skip
COMMON_ICD = [
    "J06.9", "I10", "E11.9", "K29.7", "J18.9", "A09", "M54.5", "K35.8", "J20.9", "N39.0",
    "R50.9", "I20.9", "K21.9", "M17.9", "J45.9", "E78.5", "S52.5", "B34.9", "R51", "K59.0",
]  # fmt: skip
DEPARTMENTS = [
    # code, name, has_beds, role in the generator
    ("KKB", "Khoa Khám bệnh", False, "outpatient"),
    ("HSCC", "Khoa Hồi sức cấp cứu", True, "emergency"),
    ("NOI", "Khoa Nội tổng hợp", True, "inpatient"),
    ("NGOAI", "Khoa Ngoại tổng hợp", True, "inpatient"),
    ("NHI", "Khoa Nhi", True, "inpatient"),
    ("SAN", "Khoa Phụ sản", True, "inpatient"),
]


def zipf_weights(n: int, s: float) -> list[float]:
    return [1 / (rank**s) for rank in range(1, n + 1)]


def cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


FAMILY_NAMES = [n for n, _ in FAMILY] + FAMILY_TAIL
_rest = 100 - sum(w for _, w in FAMILY)
FAMILY_CW = cumulative(
    [w for _, w in FAMILY] + [x * _rest / sum(zipf_weights(len(FAMILY_TAIL), 0.5))
                              for x in zipf_weights(len(FAMILY_TAIL), 0.5)]
)  # fmt: skip
MIDDLE_M_NAMES, MIDDLE_M_CW = [n for n, _ in MIDDLE_M], cumulative([w for _, w in MIDDLE_M])
MIDDLE_F_NAMES, MIDDLE_F_CW = [n for n, _ in MIDDLE_F], cumulative([w for _, w in MIDDLE_F])
GIVEN_M_CW = cumulative(zipf_weights(len(GIVEN_M), 0.6))
GIVEN_F_CW = cumulative(zipf_weights(len(GIVEN_F), 0.6))


@lru_cache(maxsize=200_000)
def name_key(full_name: str) -> str:
    from benhan.lib.vntext import search_key

    return search_key(full_name)


# --- Generators ------------------------------------------------------------------------


class Generator:
    def __init__(self, seed: int, today: date):
        self.rng = random.Random(seed)
        self.today = today
        self.cccd_seen: set[int] = set()
        self.insurance_seen: set[int] = set()
        self.mrn_seq: dict[int, int] = {}
        from benhan.lib.regions import ID_PROVINCE_CODES, PROVINCES

        self.id_provinces = list(ID_PROVINCE_CODES)
        self.provinces = list(PROVINCES)

    def name(self, sex: str) -> str:
        r = self.rng
        family = r.choices(FAMILY_NAMES, cum_weights=FAMILY_CW)[0]
        if r.random() < 0.0015:
            given = r.choice(GIVEN_RARE)
        elif sex == "M":
            given = r.choices(GIVEN_M, cum_weights=GIVEN_M_CW)[0]
        else:
            given = r.choices(GIVEN_F, cum_weights=GIVEN_F_CW)[0]
        if sex == "M":
            middle = r.choices(MIDDLE_M_NAMES, cum_weights=MIDDLE_M_CW)[0]
        else:
            middle = r.choices(MIDDLE_F_NAMES, cum_weights=MIDDLE_F_CW)[0]
            if middle == "Thị" and r.random() < 0.25:
                middle += " " + r.choice(MIDDLE2_F)
        if r.random() < 0.03:  # no middle name
            return f"{family} {given}"
        return f"{family} {middle} {given}"

    def phone(self) -> str:
        return self.rng.choice(PHONE_PREFIXES) + f"{self.rng.randrange(10_000_000):07d}"

    def cccd(self, birth_year: int, sex: str) -> str:
        r = self.rng
        century = (birth_year // 100 - 19) * 2 + (1 if sex == "F" else 0)
        while True:
            number = (
                f"{r.choice(self.id_provinces)}{century}{birth_year % 100:02d}"
                f"{r.randrange(1_000_000):06d}"
            )
            value = int(number)
            if value not in self.cccd_seen:
                self.cccd_seen.add(value)
                return number

    def insurance(self, age: int) -> str:
        r = self.rng
        while True:
            key = r.randrange(1_000_000_000, 10_000_000_000)
            if key not in self.insurance_seen:
                self.insurance_seen.add(key)
                break
        if age < 6:
            category, level = "TE", 1
        elif age >= 60 and r.random() < 0.6:
            category, level = "HT", 2
        else:
            category, level = r.choice(INSURANCE_CATEGORIES), r.choice((2, 3, 4))
        return f"{category}{level}{r.choice(self.id_provinces)[1:]}{key}"

    def patient(self, pk: int, facility_id: int, user_id: int) -> dict:
        r = self.rng
        sex = "M" if r.random() < 0.48 else "F"
        full_name = self.name(sex)
        age = min(int(r.triangular(0, 100, 35)), 99)
        birth_year = self.today.year - age
        birth_date = None
        if r.random() < 0.6:
            birth_date = date(birth_year, 1, 1) + timedelta(days=r.randrange(365))
        created = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(
            seconds=r.randrange(int((self.today - date(2015, 1, 1)).total_seconds()) - 86400)
        )
        yy = created.year % 100
        seq = self.mrn_seq.get(yy, 0) + 1
        self.mrn_seq[yy] = seq
        cccd = self.cccd(birth_year, sex) if r.random() < (0.95 if age >= 14 else 0.3) else None
        insurance_number = self.insurance(age) if r.random() < 0.85 else ""
        valid_from = valid_to = None
        if insurance_number:
            valid_from = date(self.today.year, 1, 1)
            valid_to = date(self.today.year, 12, 31) if r.random() < 0.9 else date(2024, 12, 31)
        has_contact = r.random() < 0.7
        return {
            "id": pk,
            "facility_id": facility_id,
            "mrn": f"{yy:02d}{seq:06d}",
            "full_name": full_name,
            "name_key": name_key(full_name),
            "birth_year": birth_year,
            "birth_date": birth_date,
            "sex": sex,
            "cccd": cccd,
            "insurance_number": insurance_number,
            "insurance_key": insurance_number[-10:],
            "insurance_valid_from": valid_from,
            "insurance_valid_to": valid_to,
            "insurance_facility_code": f"{r.choice(self.id_provinces)[1:]}0{r.randrange(10, 99)}"
            if insurance_number
            else "",
            "phone": self.phone() if r.random() < 0.9 else "",
            "address": (
                f"Số {r.randrange(1, 400)}, đường {r.choice(STREETS)}"
                if r.random() < 0.6
                else f"Thôn {r.randrange(1, 15)}"
            ),
            "province_code": r.choice(self.provinces),
            "commune_code": f"{r.randrange(100, 32000):05d}",
            "ethnicity": "01" if r.random() < 0.86 else f"{r.randrange(2, 55):02d}",
            "occupation": "Trẻ em" if age < 6 else r.choice(OCCUPATIONS),
            "emergency_name": self.name("F" if sex == "M" else "M") if has_contact else "",
            "emergency_relation": r.choice(RELATIONS) if has_contact else "",
            "emergency_phone": self.phone() if has_contact else "",
            "created_at": created,
            "created_by_id": user_id,
            "updated_at": created,
        }


PATIENT_FIELDS = [
    "id", "facility_id", "mrn", "full_name", "name_key", "birth_year", "birth_date", "sex",
    "cccd", "insurance_number", "insurance_key", "insurance_valid_from", "insurance_valid_to",
    "insurance_facility_code", "phone", "address", "province_code", "commune_code",
    "ethnicity", "occupation", "emergency_name", "emergency_relation", "emergency_phone",
    "created_at", "created_by_id", "updated_at",
]  # fmt: skip
ENCOUNTER_FIELDS = [
    "id", "facility_id", "patient_id", "kind", "status", "department_id", "attending_id",
    "started_at", "ended_at", "reason", "source_id", "discharge_outcome", "discharge_type",
    "discharge_note", "created_by_id",
]  # fmt: skip
STAY_FIELDS = [
    "id", "encounter_id", "department_id", "started_at", "ended_at", "attending_id", "note"
]  # fmt: skip
DIAGNOSIS_FIELDS = [
    "id", "encounter_id", "code_id", "is_main", "recorded_at", "recorded_by_id",
    "retired_at", "retired_by_id",
]  # fmt: skip


class Loader:
    """Writes rows (dicts keyed by attname) with bulk_create or COPY."""

    def __init__(self, method: str, batch: int):
        from django.db import connection

        self.method = method
        self.batch = batch
        self.connection = connection

    def write(self, model, fields: list[str], rows: list[dict]) -> None:
        if not rows:
            return
        if self.method == "copy":
            self._copy(model, fields, rows)
        else:
            objs = [model(**row) for row in rows]
            model.objects.bulk_create(objs, batch_size=self.batch)

    def _copy(self, model, fields: list[str], rows: list[dict]) -> None:
        columns = ", ".join(model._meta.get_field(f).column for f in fields)
        sql = f"COPY {model._meta.db_table} ({columns}) FROM STDIN"
        self.connection.ensure_connection()
        raw = self.connection.connection
        with raw.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row([row[f] for f in fields])


# --- Encounters ---------------------------------------------------------------------


class EncounterMaker:
    """About two encounters for a share of the patients, with stays and diagnoses.

    A handful are today's open visits and current inpatients, so the worklist has a
    realistic size (about 150 today, 150 in the wards).
    """

    def __init__(self, gen: Generator, ctx: dict, n_patients: int, share: float, per: float):
        self.r = gen.rng
        self.ctx = ctx
        self.share = share
        self.per = per
        self.next_encounter = ctx["next_ids"]["encounter"]
        self.next_stay = ctx["next_ids"]["stay"]
        self.next_diagnosis = ctx["next_ids"]["diagnosis"]
        self.now = datetime.now(UTC).replace(microsecond=0)
        expected = max(1.0, n_patients * share * per)
        self.p_today = min(1.0, 150 / expected)
        self.p_ward = min(1.0, 150 / expected)

    def for_patient(self, patient: dict, out: dict[str, list]) -> None:
        r = self.r
        if r.random() >= self.share:
            return
        count = max(1, round(r.gauss(self.per, 0.6)))
        for i in range(count):
            last = i == count - 1
            roll = r.random()
            kind = "outpatient" if roll < 0.7 else ("emergency" if roll < 0.8 else "inpatient")
            dept = self.r.choice(self.ctx["departments"][kind])
            start = self.now - timedelta(seconds=r.randrange(86400, 3 * 365 * 86400))
            status, end = "finished", None
            if last and kind != "inpatient" and r.random() < self.p_today:
                start = self.now - timedelta(minutes=r.randrange(5, 360))
                status = "open"
            elif last and kind == "inpatient" and r.random() < self.p_ward:
                start = self.now - timedelta(hours=r.randrange(3, 24 * 14))
                status = "open"
            if status == "finished":
                hours = r.randrange(24, 24 * 12) if kind == "inpatient" else r.randrange(1, 5)
                end = start + timedelta(hours=hours)
            eid = self.next_encounter
            self.next_encounter += 1
            doctor = self.ctx["doctor_id"]
            out["encounters"].append(
                {
                    "id": eid,
                    "facility_id": patient["facility_id"],
                    "patient_id": patient["id"],
                    "kind": kind,
                    "status": status,
                    "department_id": dept,
                    "attending_id": doctor,
                    "started_at": start,
                    "ended_at": end,
                    "reason": r.choice(REASONS),
                    "source_id": None,
                    "discharge_outcome": r.choice("12") if end and kind == "inpatient" else "",
                    "discharge_type": "1" if end and kind == "inpatient" else "",
                    "discharge_note": "",
                    "created_by_id": doctor,
                }
            )
            out["stays"].append(
                {
                    "id": self.next_stay,
                    "encounter_id": eid,
                    "department_id": dept,
                    "started_at": start,
                    "ended_at": end,
                    "attending_id": doctor,
                    "note": "",
                }
            )
            self.next_stay += 1
            if status == "finished" or r.random() < 0.5:
                codes = [r.choice(self.ctx["icd"])]
                if r.random() < 0.35:
                    codes.append(r.choice(self.ctx["icd"]))
                for j, code in enumerate(codes):
                    out["diagnoses"].append(
                        {
                            "id": self.next_diagnosis,
                            "encounter_id": eid,
                            "code_id": code,
                            "is_main": j == 0,
                            "recorded_at": start + timedelta(minutes=30),
                            "recorded_by_id": doctor,
                            "retired_at": None,
                            "retired_by_id": None,
                        }
                    )
                    self.next_diagnosis += 1


# --- Database set-up --------------------------------------------------------------------


def reset_database() -> None:
    if common.label() == "postgres":
        import psycopg

        name = os.environ["BENHAN_DB_NAME"]
        common.progress(f"dropping and re-creating PostgreSQL database {name}")
        with psycopg.connect(
            host=os.environ.get("BENHAN_DB_HOST", "127.0.0.1"),
            port=os.environ.get("BENHAN_DB_PORT", "5432"),
            user=os.environ.get("BENHAN_DB_USER", "postgres"),
            password=os.environ.get("BENHAN_DB_PASSWORD", ""),
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    else:
        from django.conf import settings

        path = Path(settings.DATABASES["default"]["NAME"])
        common.progress(f"deleting {path}")
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)


def make_facility() -> dict:
    from benhan.accounts.models import Department, Facility, Role, User
    from benhan.encounters.models import Icd10Code

    facility, _ = Facility.objects.get_or_create(
        code="79999",
        defaults={
            "name": "Trung tâm Y tế Bệnh Án Benchmark",
            "address": "1 Lê Lợi",
            "province_code": "79",
        },
    )
    departments: dict[str, list[int]] = {"outpatient": [], "emergency": [], "inpatient": []}
    dept_ids = []
    for code, name, beds, kind in DEPARTMENTS:
        dept, _ = Department.objects.get_or_create(
            facility=facility, code=code, defaults={"name": name, "has_beds": beds}
        )
        departments[kind].append(dept.pk)
        dept_ids.append(dept.pk)
    users = {}
    for username, full_name, role in (
        (common.RECORDS_USER, "Lưu Thị Hồ Sơ", Role.RECORDS_OFFICER),
        (common.DOCTOR_USER, "BS. Nguyễn Văn Khám", Role.DOCTOR),
    ):
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(
                username, password=common.PASSWORD, full_name=full_name, role=role,
                facility=facility,
            )  # fmt: skip
        if role == Role.DOCTOR:
            user.departments.set(dept_ids)
        users[role] = user.pk
    existing = set(Icd10Code.objects.filter(code__in=COMMON_ICD).values_list("code", flat=True))
    icd = [c for c in COMMON_ICD if c in existing]
    if len(icd) < 5:
        icd = list(Icd10Code.objects.values_list("code", flat=True)[:200])
    return {
        "facility_id": facility.pk,
        "departments": departments,
        "records_id": users[Role.RECORDS_OFFICER],
        "doctor_id": users[Role.DOCTOR],
        "icd": icd,
    }


def next_ids() -> dict[str, int]:
    from django.db.models import Max

    from benhan.encounters.models import Diagnosis, Encounter, Stay
    from benhan.patients.models import Patient

    def nxt(model) -> int:
        return (model.objects.aggregate(m=Max("id"))["m"] or 0) + 1

    return {
        "patient": nxt(Patient),
        "encounter": nxt(Encounter),
        "stay": nxt(Stay),
        "diagnosis": nxt(Diagnosis),
    }


def pg_drop_secondary_indexes(table: str) -> list[str]:
    """Drop the table's indexes that back no constraint; return their definitions.

    Read from pg_indexes, so an index a later migration adds (patient_name_key_tsv)
    is dropped and re-created like the others, with no list to keep up to date.
    """
    from django.db import connection

    with connection.cursor() as c:
        c.execute(
            """
            SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.tablename = %s AND i.indexname NOT IN (
                SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)
            """,
            [table, table],
        )
        found = c.fetchall()
        for name, _ in found:
            c.execute(f'DROP INDEX "{name}"')
    return [d for _, d in found]


def pg_finish(defs: list[str], tables: list[str]) -> None:
    from django.db import connection

    with connection.cursor() as c:
        c.execute("SET maintenance_work_mem = '1GB'")
        for d in defs:
            t = time.perf_counter()
            c.execute(d)
            common.progress(f"  {d.split(' ON ')[0]}  {time.perf_counter() - t:.1f} s")
        for table in tables:
            c.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - model tables
                f"coalesce((SELECT max(id) FROM {table}), 1))"
            )


def set_counters(facility_id: int, mrn_seq: dict[int, int]) -> None:
    """Keep the MRN counters past the generated numbers, so registrations still work."""
    from benhan.accounts.models import Counter

    for yy, seq in mrn_seq.items():
        counter, _ = Counter.objects.get_or_create(facility_id=facility_id, name=f"mrn-{yy:02d}")
        if counter.value < seq:
            counter.value = seq
            counter.save(update_fields=["value"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--encounter-share", type=float, default=0.2,
                        help="share of patients that get encounters (default 0.2)")  # fmt: skip
    parser.add_argument("--encounters-per", type=float, default=2.0,
                        help="mean encounters per such patient (default 2)")  # fmt: skip
    parser.add_argument("--chunk", type=int, default=50_000, help="rows generated at a time")
    parser.add_argument("--batch", type=int, default=2_000, help="bulk_create batch size")
    parser.add_argument("--method", choices=["auto", "bulk", "copy"], default="auto")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--reset", action="store_true", help="start from an empty database")
    parser.add_argument("--append", action="store_true",
                        help="add patients to a database that already has some")  # fmt: skip
    args = parser.parse_args()

    common.bench_env()
    sys.path.insert(0, str(common.ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from benhan.core.db import analyze
    from benhan.encounters.models import Diagnosis, Encounter, Stay
    from benhan.patients.models import Patient

    db = common.label()
    method = args.method
    if method == "auto":
        method = "copy" if db == "postgres" else "bulk"
    if method == "copy" and db != "postgres":
        sys.exit("--method copy needs PostgreSQL")
    where = (
        f"PostgreSQL {os.environ['BENHAN_DB_NAME']}"
        if db == "postgres"
        else connection.settings_dict["NAME"]
    )
    common.progress(f"seeding {args.patients:,} patients into {where} with {method}")

    if args.reset:
        reset_database()
        connection.close()
    t0 = time.perf_counter()
    common.progress("migrate")
    call_command("migrate", verbosity=0)
    existing = Patient.objects.count()
    if existing and not args.append:
        sys.exit(
            f"the database already has {existing:,} patients; use --reset or --append "
            "(or another BENHAN_DATA_DIR / BENHAN_DB_NAME)"
        )
    ctx = make_facility()
    ctx["next_ids"] = next_ids()
    today = datetime.now(UTC).date()
    gen = Generator(args.seed + existing, today)
    enc = EncounterMaker(gen, ctx, args.patients, args.encounter_share, args.encounters_per)
    loader = Loader(method, args.batch)

    index_defs: list[str] = []
    if db == "postgres":
        index_defs = pg_drop_secondary_indexes(Patient._meta.db_table)
        names = [d.split(" ON ")[0].split()[-1] for d in index_defs]
        common.progress(f"dropped {len(names)} patient indexes for the load: {', '.join(names)}")
    totals = {"patients": 0, "encounters": 0, "stays": 0, "diagnoses": 0}
    pk = ctx["next_ids"]["patient"]
    t_load = time.perf_counter()
    try:
        done = 0
        while done < args.patients:
            n = min(args.chunk, args.patients - done)
            patients = []
            out: dict[str, list] = {"encounters": [], "stays": [], "diagnoses": []}
            for _ in range(n):
                p = gen.patient(pk, ctx["facility_id"], ctx["records_id"])
                pk += 1
                patients.append(p)
                enc.for_patient(p, out)
            with transaction.atomic():
                loader.write(Patient, PATIENT_FIELDS, patients)
                loader.write(Encounter, ENCOUNTER_FIELDS, out["encounters"])
                loader.write(Stay, STAY_FIELDS, out["stays"])
                loader.write(Diagnosis, DIAGNOSIS_FIELDS, out["diagnoses"])
            done += n
            totals["patients"] += n
            for k in ("encounters", "stays", "diagnoses"):
                totals[k] += len(out[k])
            elapsed = time.perf_counter() - t_load
            rate = done / elapsed
            eta = (args.patients - done) / rate
            common.progress(
                f"patients {done:,}/{args.patients:,} ({100 * done / args.patients:.0f} %), "
                f"encounters {totals['encounters']:,}; {rate:,.0f} patients/s, "
                f"about {eta:.0f} s left"
            )
    finally:
        if db == "postgres":
            common.progress("rebuilding indexes")
            pg_finish(
                index_defs,
                [m._meta.db_table for m in (Patient, Encounter, Stay, Diagnosis)],
            )
    load_s = time.perf_counter() - t_load
    set_counters(ctx["facility_id"], gen.mrn_seq)
    t = time.perf_counter()
    analyze()  # as `benhan demo` does after seeding; migrate ran it on empty tables
    common.progress(f"benhan.core.db.analyze() {time.perf_counter() - t:.1f} s")
    if db == "sqlite":
        with connection.cursor() as c:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    total_s = time.perf_counter() - t0
    size = ""
    if db == "sqlite":
        size_mb = Path(connection.settings_dict["NAME"]).stat().st_size / 1e6
        size = f"{size_mb:,.0f} MB"
    else:
        with connection.cursor() as c:
            c.execute("SELECT pg_database_size(current_database())")
            size = f"{c.fetchone()[0] / 1e6:,.0f} MB"
    rows = [
        ["patients", totals["patients"]],
        ["encounters", totals["encounters"]],
        ["stays", totals["stays"]],
        ["diagnoses", totals["diagnoses"]],
        ["patients in database", Patient.objects.count()],
        ["load time (s)", round(load_s, 1)],
        ["total time incl. migrate, indexes (s)", round(total_s, 1)],
        ["patients/s", round(totals["patients"] / load_s)],
        ["database size", size],
    ]
    common.print_table(["seed", "value"], rows, title=f"Seeded {where} ({db}, {method})")
    print(f"\nusers: {common.RECORDS_USER} / {common.DOCTOR_USER}, password {common.PASSWORD}")
    common.save_result(
        f"seed_bulk-{db}",
        {
            "patients": args.patients,
            "method": method,
            "totals": totals,
            "load_seconds": load_s,
            "total_seconds": total_s,
            "size": size,
        },
    )


if __name__ == "__main__":
    main()
