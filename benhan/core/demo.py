"""The demo clinic: a district medical centre with staff, patients and four months of work.

`seed()` builds it through the same write actions the pages use, so every patient
and encounter has its audit event and the hash chain stays valid. The data come
from `random.Random(seed)`: the same seed gives the same clinic, relative to the
day it is run (encounters cover the four months before now, some are today's).

Everything is invented. Names, citizen IDs and card numbers are shaped like real
ones and pass the same checks as typed input (benhan.lib.ids), and every ICD-10
code used is checked against the loaded code list.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from benhan.accounts.models import Department, Facility, Role, User
from benhan.audit.chain import Actor, append
from benhan.core import demo_records
from benhan.encounters import actions as enc_actions
from benhan.encounters.models import (
    DischargeOutcome,
    DischargeType,
    Encounter,
    EncounterKind,
    Icd10Code,
)
from benhan.lib import ids
from benhan.patients.actions import do_register_patient
from benhan.patients.models import Patient, Sex

Progress = Callable[[str, int, int], None]

# --- The facility --------------------------------------------------------------------

FACILITY_CODE = "38012"
FACILITY_NAME = "Trung tâm Y tế khu vực Yên Hòa"
FACILITY_ADDRESS = "Số 18 đường Lê Lợi, xã Yên Hòa, tỉnh Thanh Hóa"
FACILITY_PHONE = "02373 851 226"
PROVINCE = "38"  # Thanh Hóa, in the new 34-province list
# Shared by every demo account and printed after seeding: a demo, not a secret.
PASSWORD = "benhan-demo-2026"  # noqa: S105
DEFAULT_PATIENTS = 500
DEFAULT_ENCOUNTERS = 1000
DEFAULT_SEED = 42
DEFAULT_RECORDS = demo_records.DEFAULT_RECORDS
SIGNING_PIN = demo_records.SIGNING_PIN
# Encounters reach this far back.
HISTORY_DAYS = 120

_K = Department.Kind


@dataclass(frozen=True)
class DepartmentSpec:
    code: str
    name: str
    kind: str
    has_beds: bool


DEPARTMENTS = (
    DepartmentSpec("KKB", "Khoa Khám bệnh", _K.CLINICAL, False),
    DepartmentSpec("HSCC", "Khoa Hồi sức cấp cứu", _K.CLINICAL, True),
    DepartmentSpec("NOI", "Khoa Nội", _K.CLINICAL, True),
    DepartmentSpec("NGOAI", "Khoa Ngoại", _K.CLINICAL, True),
    DepartmentSpec("SAN", "Khoa Sản", _K.CLINICAL, True),
    DepartmentSpec("NHI", "Khoa Nhi", _K.CLINICAL, True),
    DepartmentSpec("XN", "Khoa Xét nghiệm – Chẩn đoán hình ảnh", _K.PARACLINICAL, False),
    DepartmentSpec("KHTH", "Phòng Kế hoạch tổng hợp", _K.ADMINISTRATIVE, False),
)


@dataclass(frozen=True)
class StaffSpec:
    username: str
    full_name: str
    role: str
    title: str
    certificate: str
    departments: tuple[str, ...]


_R = Role
STAFF = (
    StaffSpec("admin", "Trịnh Quốc Tuấn", _R.ADMIN, "KS", "", ("KHTH",)),
    StaffSpec("bs.kb", "Nguyễn Văn Thành", _R.DOCTOR, "BSCKI", "001872/TH-CCHN", ("KKB",)),
    StaffSpec("bs.kb2", "Lê Thị Hồng Nhung", _R.DOCTOR, "BS", "004315/TH-CCHN", ("KKB",)),
    StaffSpec("bs.noi", "Lê Đình Phúc", _R.DOCTOR, "BSCKI", "001245/TH-CCHN", ("NOI",)),
    StaffSpec("bs.noi2", "Phạm Thu Trang", _R.DOCTOR, "ThS.BS", "003987/TH-CCHN", ("NOI",)),
    StaffSpec("bs.ngoai", "Trần Quang Dũng", _R.DOCTOR, "BSCKII", "000956/TH-CCHN", ("NGOAI",)),
    StaffSpec("bs.san", "Hoàng Thị Mai Anh", _R.DOCTOR, "BSCKI", "002214/TH-CCHN", ("SAN",)),
    StaffSpec("bs.nhi", "Đỗ Minh Khoa", _R.DOCTOR, "ThS.BS", "003561/TH-CCHN", ("NHI",)),
    StaffSpec("bs.cc", "Vũ Hoàng Long", _R.DOCTOR, "BS", "004790/TH-CCHN", ("HSCC",)),
    # Heads of department where the demo has one ward doctor: they sign "TRƯỞNG KHOA".
    StaffSpec("bs.cc2", "Lương Văn Hải", _R.DOCTOR, "BSCKII", "000811/TH-CCHN", ("HSCC",)),
    StaffSpec("bs.ngoai2", "Cao Xuân Thắng", _R.DOCTOR, "BSCKII", "000734/TH-CCHN", ("NGOAI",)),
    StaffSpec("bs.san2", "Đinh Thị Thu Hiền", _R.DOCTOR, "BSCKII", "001023/TH-CCHN", ("SAN",)),
    StaffSpec("bs.nhi2", "Quách Thị Hương", _R.DOCTOR, "BSCKI", "001388/TH-CCHN", ("NHI",)),
    StaffSpec("dd.kb", "Nguyễn Thị Lan", _R.NURSE, "CNĐD", "005128/TH-CCHN", ("KKB",)),
    StaffSpec("dd.noi", "Mai Thị Hoa", _R.NURSE, "ĐD", "005403/TH-CCHN", ("NOI",)),
    StaffSpec("dd.ngoai", "Bùi Văn Hiếu", _R.NURSE, "CNĐD", "005677/TH-CCHN", ("NGOAI",)),
    StaffSpec("hs.san", "Lê Thị Thu Hà", _R.NURSE, "NHS", "005891/TH-CCHN", ("SAN",)),
    StaffSpec("dd.nhi", "Phạm Thị Ngọc Ánh", _R.NURSE, "ĐD", "006032/TH-CCHN", ("NHI",)),
    StaffSpec("dd.cc", "Đặng Văn Toàn", _R.NURSE, "CNĐD", "006154/TH-CCHN", ("HSCC",)),
    StaffSpec("ktv.xn", "Trịnh Thị Thu Hằng", _R.LAB_TECH, "CNXN", "006418/TH-CCHN", ("XN",)),
    StaffSpec("ktv.cdha", "Ngô Văn Cường", _R.LAB_TECH, "KTV", "006502/TH-CCHN", ("XN",)),
    StaffSpec("khth", "Lê Thị Phương", _R.RECORDS_OFFICER, "CN", "", ("KHTH",)),
    StaffSpec("tiepdon", "Nguyễn Thị Hà My", _R.RECEPTIONIST, "", "", ("KKB",)),
    StaffSpec("tiepdon2", "Hoàng Văn Nam", _R.RECEPTIONIST, "", "", ("KKB",)),
)

# Who does what in the generated encounters.
_DOCTORS = {
    "KKB": ("bs.kb", "bs.kb2"),
    "HSCC": ("bs.cc",),
    "NOI": ("bs.noi", "bs.noi2"),
    "NGOAI": ("bs.ngoai",),
    "SAN": ("bs.san",),
    "NHI": ("bs.nhi",),
}
_RECEPTIONISTS = ("tiepdon", "tiepdon2")
# Heads of department (trưởng khoa), who countersign discharge papers. When the head is
# the attending doctor, another doctor of the department signs for them.
HEADS = {
    "KKB": "bs.kb",
    "HSCC": "bs.cc2",
    "NOI": "bs.noi",
    "NGOAI": "bs.ngoai2",
    "SAN": "bs.san2",
    "NHI": "bs.nhi2",
}

# --- Names ------------------------------------------------------------------------

_FAMILY_KINH = {
    "Nguyễn": 30, "Lê": 12, "Trần": 9, "Phạm": 7, "Hoàng": 4, "Trịnh": 3, "Vũ": 3,
    "Bùi": 2.5, "Đỗ": 2.5, "Đặng": 2, "Phan": 2, "Mai": 1.5, "Ngô": 1.5, "Đinh": 1.5,
    "Hà": 1.2, "Hồ": 1, "Dương": 1, "Lương": 1, "Cao": 1, "Đào": 1, "Võ": 1, "Đoàn": 0.8,
    "Lý": 0.5, "Tống": 0.5, "Vương": 0.4, "Lại": 0.4, "Huỳnh": 0.3, "Mạc": 0.3,
    "Nghiêm": 0.3, "Thiều": 0.3,
}  # fmt: skip
_FAMILY_MUONG = {"Bùi": 40, "Hà": 15, "Quách": 12, "Đinh": 12, "Phạm": 10, "Trương": 6, "Cao": 5}
_FAMILY_THAI = {"Lò": 20, "Lường": 15, "Hà": 15, "Cầm": 12, "Vi": 10, "Lương": 10, "Ngân": 8}
_FAMILY_HMONG = {"Giàng": 25, "Thào": 25, "Vàng": 20, "Sùng": 15, "Lầu": 15}
_FAMILY_DAO = {"Triệu": 30, "Bàn": 25, "Đặng": 20, "Lý": 15, "Phùng": 10}

# (middle names with weights, given names) by sex and generation.
_GIVEN = {
    ("M", "old"): (
        {"Văn": 75, "Đình": 6, "Hữu": 5, "Xuân": 4, "Đức": 4, "Ngọc": 3, "Quang": 3},
        "Hùng Dũng Thắng Lợi Bình Hòa Thành Sơn Hải Tâm Minh Quang Chiến Thọ Khang Tiến "
        "Tuấn Cường Phúc Lộc Thuận Đông Lâm Hưng Toàn Vinh Nghĩa Quý",
    ),
    ("M", "mid"): (
        {"Văn": 45, "Đức": 10, "Minh": 8, "Hữu": 6, "Quang": 6, "Xuân": 5, "Tiến": 4,
         "Mạnh": 4, "Thanh": 4, "Ngọc": 3, "Trọng": 3, "Công": 3, "Duy": 3},
        "Tuấn Hùng Dũng Nam Long Hải Sơn Thắng Cường Hưng Quân Huy Trung Kiên Tùng Việt "
        "Hiếu Đạt Nghĩa Tài Thịnh Phong Thành Hoàng Lâm Khánh Tú Chung Quyết",
    ),
    ("M", "young"): (
        {"Minh": 15, "Đức": 12, "Gia": 10, "Bảo": 10, "Văn": 12, "Anh": 6, "Hoàng": 6,
         "Quang": 6, "Đăng": 5, "Nhật": 5, "Hải": 5, "Trung": 4, "Tuấn": 4},
        "An Khôi Bảo Minh Phúc Lâm Nam Huy Khang Quân Hưng Long Phong Duy Kiên Vũ "
        "Hiếu Trí Thành Sơn Đức Khoa Tùng Dương",
    ),
    ("F", "old"): (
        {"Thị": 90, "Ngọc": 4, "Thu": 3, "Kim": 3},
        "Lan Hoa Hồng Thơm Nụ Xuân Tuyết Hường Cúc Đào Mận Lý Hạnh Liên Hương Nga Loan "
        "Yến Thủy Vân Mai Tâm Hằng Bình Sen Lụa Chiên Thoa",
    ),
    ("F", "mid"): (
        {"Thị": 55, "Ngọc": 7, "Thu": 6, "Thanh": 6, "Minh": 4, "Hồng": 4, "Phương": 4,
         "Thùy": 4, "Kim": 3, "Bích": 3, "Hải": 2, "Diệu": 2},
        "Hương Linh Trang Hà Thảo Ngọc Nhung Hằng Huyền Yến Phương Thủy Hạnh Dung Nga "
        "Oanh Hiền Vân Anh Giang Quỳnh Thu Lan Hoa Mai Nhàn Duyên Tâm Loan",
    ),
    ("F", "young"): (
        {"Ngọc": 12, "Khánh": 10, "Bảo": 10, "Minh": 8, "Thị": 12, "Thu": 6, "Phương": 6,
         "Gia": 6, "Hà": 5, "Tuệ": 5, "Quỳnh": 5, "Diệu": 4, "Hải": 4, "An": 4},
        "Anh Linh Vy My Nhi An Ngọc Hân Thư Chi Trang Hà Ngân Giang Thảo Quỳnh Diệp "
        "Châu Nhiên Uyên Trâm Mai Hương Hằng",
    ),
}  # fmt: skip
_HMONG_GIVEN = {"M": "Páo Dình Sình Chứ Tủa Pó Chống Dua", "F": "Mỷ Say Pằng Dợ Chú Máy Sua"}

# --- Places -------------------------------------------------------------------------

_TOWN_COMMUNE = "15610"
_RURAL_COMMUNES = ("15613", "15616", "15619", "15622", "15625", "15628", "15631", "15634")
_HILL_COMMUNES = ("15637", "15640")  # where most Mường and Thái patients live
_STREETS = ("Lê Lợi", "Trần Phú", "Quang Trung", "Lê Hoàn", "Bà Triệu", "Nguyễn Trãi")
_VILLAGES = (
    "Thôn Đông", "Thôn Trung", "Thôn Nam", "Thôn Bắc", "Thôn Yên Lạc", "Thôn Phú Xá",
    "Thôn Đồng Tâm", "Thôn Tiến Thịnh", "Thôn Quang Trung", "Xóm Mới", "Làng Bái",
    "Thôn Kim Sơn", "Thôn Tân Lập", "Thôn Hợp Thành", "Thôn Yên Trung", "Thôn Thượng",
)  # fmt: skip
_HILL_VILLAGES = ("Bản Lặn", "Bản Khà", "Bản Mướp", "Bản Na Tao", "Làng Bìn", "Làng Trung Sơn")
# Registered primary-care facilities: this centre, or a commune health station.
_STATIONS = ("38105", "38106", "38107", "38108", "38109", "38110", "38111", "38112")
# Mobile prefixes (Viettel, VinaPhone, MobiFone, Vietnamobile).
_PHONE_PREFIXES = (
    "032", "033", "034", "035", "036", "037", "038", "039", "086", "096", "097", "098",
    "081", "082", "083", "084", "085", "088", "091", "094",
    "070", "076", "077", "078", "079", "089", "090", "093", "056", "058", "092",
)  # fmt: skip
# Where citizen IDs were first issued: mostly here, some neighbours and big cities.
_CCCD_PROVINCES = {"038": 86, "040": 3, "037": 2, "036": 2, "017": 2, "001": 3, "079": 2}

# --- Clinical content ----------------------------------------------------------------

OP, ER, ADM = "op", "er", "adm"


@dataclass(frozen=True)
class Condition:
    """A kind of case: where it is seen, why, how it is coded, how long it takes."""

    setting: str  # OP outpatient in KKB, ER emergency in HSCC, ADM inpatient admission
    reasons: tuple[str, ...]
    main: tuple[str, ...]
    secondary: tuple[str, ...] = ()
    weight: float = 1.0
    ages: tuple[int, int] = (0, 120)
    sex: str = ""
    # Admissions: the visit it starts from ("KKB", "HSCC" or "" for direct) and the
    # departments it passes through, in order.
    via: str = "KKB"
    path: tuple[str, ...] = ()
    los: tuple[int, int] = (0, 0)  # length of stay in days
    severe: bool = False  # may be referred to the provincial hospital, rarely die
    referral: float = 0.0  # chance of referral (emergency visits and severe admissions)
    obstetric: bool = False  # at most one per woman


def _c(*args, **kw) -> Condition:
    return Condition(*args, **kw)


CONDITIONS: tuple[Condition, ...] = (
    # Outpatient visits, Khoa Khám bệnh.
    _c(OP, ("Ho, sốt 3 ngày", "Sổ mũi, ho, sốt nhẹ 2 ngày", "Đau họng, ho khan"),
       ("J06.9", "J02.9", "J03.9", "J20.9"), weight=14),
    _c(OP, ("Tiêu chảy 2 ngày", "Đi ngoài phân lỏng nhiều lần, nôn"),
       ("A09.9", "A09.0", "A08.4"), ("E86",), weight=4),
    _c(OP, ("Sốt 4 ngày, đau mỏi người", "Sốt cao, đau đầu, đau mỏi cơ"),
       ("A97.0", "R50.9", "B34.9"), weight=4),
    _c(OP, ("Sốt, nổi bọng nước ở tay chân, loét miệng", "Sốt, nổi mụn nước toàn thân"),
       ("B08.4", "B01.9"), weight=2, ages=(0, 10)),
    _c(OP, ("Đau tai, sốt", "Chảy mủ tai phải"), ("H66.9",), weight=1, ages=(0, 12)),
    _c(OP, ("Ho, khò khè, thở nhanh",), ("J21.9",), weight=1.5, ages=(0, 2)),
    _c(OP, ("Khó thở, khò khè về đêm",), ("J45.9",), weight=1, ages=(6, 75)),
    _c(OP, ("Khám tăng huyết áp định kỳ", "Tái khám tăng huyết áp, lĩnh thuốc"),
       ("I10",), ("E78.5", "E11.9", "I25.9"), weight=14, ages=(45, 120)),
    _c(OP, ("Khám đái tháo đường định kỳ", "Tái khám đái tháo đường týp 2"),
       ("E11.9",), ("I10", "E78.5"), weight=7, ages=(40, 120)),
    _c(OP, ("Đau đầu, chóng mặt", "Chóng mặt, buồn nôn khi thay đổi tư thế"),
       ("R51", "R42", "H81.1", "G43.9"), ("I10",), weight=4, ages=(18, 120)),
    _c(OP, ("Đau thượng vị, ợ chua", "Đau bụng vùng thượng vị sau ăn",
            "Ợ hơi, nóng rát sau xương ức"),
       ("K29.7", "K21.9", "K30"), weight=7, ages=(15, 120)),
    _c(OP, ("Đau bụng vùng hạ sườn phải",), ("K80.2",), weight=1.5, ages=(30, 90)),
    _c(OP, ("Đau lưng", "Đau thắt lưng lan xuống chân", "Đau khớp gối hai bên, đi lại khó"),
       ("M54.5", "M17.9", "M19.9"), weight=6, ages=(30, 120)),
    _c(OP, ("Tiểu buốt, tiểu rắt", "Tiểu buốt, đau hạ vị"), ("N39.0",), weight=3,
       ages=(15, 120)),
    _c(OP, ("Ho kéo dài, khó thở khi gắng sức", "Ho khạc đờm nhiều năm, khó thở tăng"),
       ("J44.9", "J42"), weight=2, ages=(45, 120), sex="M"),
    _c(OP, ("Ngứa, nổi mẩn đỏ", "Nổi mề đay toàn thân"), ("L23.9", "L30.9", "L50.9"),
       weight=2),
    _c(OP, ("Đau mắt đỏ, chảy nước mắt",), ("H10.9", "H10.3"), weight=1.5),
    _c(OP, ("Mệt mỏi, da xanh, hoa mắt",), ("D50.9",), weight=1, ages=(15, 80), sex="F"),
    _c(OP, ("Khám thai định kỳ",), ("Z34.9",), weight=3, ages=(18, 42), sex="F",
       obstetric=True),
    _c(OP, ("Ngạt mũi, chảy mũi, đau nhức vùng mặt",), ("J01.9", "J32.9", "J31.0"),
       weight=1.5, ages=(6, 120)),
    _c(OP, ("Khám sức khỏe định kỳ", "Khám sức khỏe"), ("Z00.0",), weight=2, ages=(18, 120)),
    _c(OP, ("Mất ngủ, lo âu kéo dài",), ("F41.9", "F51.0"), weight=0.8, ages=(25, 85)),
    _c(OP, ("Bị chó cắn vào cẳng chân",), ("S81.9",), ("W54",), weight=1),
    # Emergency visits, Khoa Hồi sức cấp cứu, sent home or referred.
    _c(ER, ("Ngã xe máy, xây xát tay chân", "Vết thương chảy máu bàn tay do dao cắt",
            "Ngã cầu thang, rách da đầu"),
       ("T14.1", "S61.9", "S81.9", "S01.9"), weight=4, ages=(3, 90)),
    _c(ER, ("Đau quặn thắt lưng phải lan xuống bẹn",), ("N20.0",), weight=1.5,
       ages=(20, 75)),
    _c(ER, ("Sốt cao 39 độ, quấy khóc",), ("R50.9",), weight=2, ages=(0, 10)),
    _c(ER, ("Đau đầu, huyết áp 190/110 mmHg",), ("I10",), weight=1.5, ages=(45, 120)),
    _c(ER, ("Ngất tại nhà, đã tỉnh",), ("R55",), weight=0.8, ages=(15, 120)),
    _c(ER, ("Nổi mẩn ngứa toàn thân, sưng môi sau ăn hải sản",), ("T78.1", "L50.0"),
       weight=1),
    _c(ER, ("Trẹo chân khi chơi bóng, sưng đau cổ chân",), ("S93.4",), weight=1,
       ages=(10, 60)),
    _c(ER, ("Đau ngực trái dữ dội, vã mồ hôi",), ("I21.9",), ("I10",), weight=0.5,
       ages=(50, 120), referral=1.0),
    # Admissions from Khoa Khám bệnh.
    _c(ADM, ("Ho, sốt, khó thở 5 ngày",), ("J18.9", "J15.9"), ("J44.9", "I10", "E11.9"),
       weight=4, ages=(40, 120), path=("NOI",), los=(5, 10)),
    _c(ADM, ("Đau đầu, chóng mặt, huyết áp cao không kiểm soát",), ("I10", "I11.9"),
       ("E11.9", "E78.5"), weight=2, ages=(40, 120), path=("NOI",), los=(4, 8)),
    _c(ADM, ("Khát nhiều, tiểu nhiều, mệt mỏi, đường huyết cao",), ("E11.9",),
       ("I10", "E78.5"), weight=1.5, ages=(35, 120), path=("NOI",), los=(5, 10)),
    _c(ADM, ("Khó thở tăng, ho khạc đờm đục",), ("J44.1",), ("I10",), weight=2,
       ages=(50, 120), path=("NOI",), los=(6, 12)),
    _c(ADM, ("Sốt 4 ngày, chảy máu chân răng, đau bụng",), ("A97.1",), weight=1,
       ages=(16, 70), path=("NOI",), los=(4, 7)),
    _c(ADM, ("Đau thượng vị dữ dội, nôn nhiều",), ("K29.7", "K25.9", "K26.9"), weight=1.5,
       ages=(16, 120), path=("NOI",), los=(3, 6)),
    _c(ADM, ("Khó thở khi nằm, phù hai chân",), ("I50.9",), ("I10", "I48.9", "E11.9"),
       weight=1, ages=(60, 120), path=("NOI",), los=(6, 12), severe=True, referral=0.15),
    _c(ADM, ("Sốt, rét run, tiểu buốt",), ("N10", "N39.0"), weight=1, ages=(16, 120),
       path=("NOI",), los=(4, 7)),
    _c(ADM, ("Đau bụng hố chậu phải, sốt nhẹ", "Đau bụng quanh rốn lan xuống hố chậu phải"),
       ("K35.8",), weight=2.5, ages=(8, 70), path=("NGOAI",), los=(4, 7)),
    _c(ADM, ("Đau bụng vùng hạ sườn phải, sốt",), ("K80.0", "K81.0"), weight=1,
       ages=(30, 85), path=("NGOAI",), los=(5, 9)),
    _c(ADM, ("Khối phồng vùng bẹn phải",), ("K40.9",), weight=1, ages=(20, 85), sex="M",
       path=("NGOAI",), los=(3, 5)),
    _c(ADM, ("Sưng nóng đỏ đau cẳng chân",), ("L02.4",), ("E11.9",), weight=0.8,
       ages=(16, 120), path=("NGOAI",), los=(4, 8)),
    _c(ADM, ("Đau bụng hạ sườn phải, sốt, vàng da",), ("K80.0",), ("K83.0",), weight=0.5,
       ages=(35, 90), path=("NOI", "NGOAI"), los=(6, 10)),
    _c(ADM, ("Đau bụng, ra máu âm đạo, thai 8 tuần",), ("O20.0",), weight=1, ages=(18, 42),
       sex="F", path=("SAN",), los=(3, 5), obstetric=True),
    _c(ADM, ("Nôn nhiều, mệt, thai 9 tuần",), ("O21.0",), weight=0.7, ages=(18, 40), sex="F",
       path=("SAN",), los=(3, 5), obstetric=True),
    _c(ADM, ("Ho, sốt, thở nhanh 3 ngày",), ("J18.9",), ("E86",), weight=3, ages=(0, 15),
       path=("NHI",), los=(5, 8)),
    _c(ADM, ("Ho, khò khè, bỏ bú",), ("J21.9",), weight=2, ages=(0, 2), path=("NHI",),
       los=(4, 7)),
    _c(ADM, ("Tiêu chảy, nôn nhiều, mệt lả",), ("A09.0", "A08.4"), ("E86",), weight=2,
       ages=(0, 5), path=("NHI",), los=(3, 5)),
    _c(ADM, ("Sốt, loét miệng, nổi bọng nước tay chân, giật mình",), ("B08.4",), weight=1,
       ages=(0, 6), path=("NHI",), los=(4, 7)),
    _c(ADM, ("Sốt 3 ngày, đau bụng, chảy máu cam",), ("A97.1", "A97.0"), weight=0.8,
       ages=(6, 15), path=("NHI",), los=(4, 6)),
    # Direct admissions to Khoa Sản.
    _c(ADM, ("Chuyển dạ, thai 39 tuần", "Đau bụng từng cơn, thai 40 tuần",
             "Ra nước âm đạo, thai 38 tuần"),
       ("O80.0",), ("Z37.0", "O70.0"), weight=3, ages=(18, 42), sex="F", via="",
       path=("SAN",), los=(2, 4), obstetric=True),
    _c(ADM, ("Vết mổ đẻ cũ, thai 39 tuần chuyển dạ",), ("O82.1",), ("O34.2", "Z37.0"),
       weight=1.5, ages=(20, 42), sex="F", via="", path=("SAN",), los=(4, 6),
       obstetric=True),
    # Admissions through Khoa Hồi sức cấp cứu.
    _c(ADM, ("Yếu nửa người phải, nói khó", "Đột ngột liệt nửa người trái, méo miệng"),
       ("I63.9",), ("I10", "E11.9", "E78.5"), weight=2, ages=(55, 120), via="HSCC",
       path=("HSCC", "NOI"), los=(7, 14), severe=True, referral=0.2),
    _c(ADM, ("Khó thở, ho đờm, sốt cao",), ("J18.9",), ("J96.0", "J44.9"), weight=1.5,
       ages=(60, 120), via="HSCC", path=("HSCC", "NOI"), los=(6, 12), severe=True,
       referral=0.1),
    _c(ADM, ("Khó thở dữ dội, khò khè, nói không thành câu",), ("J46",), weight=0.6,
       ages=(16, 90), via="HSCC", path=("HSCC", "NOI"), los=(3, 6)),
    _c(ADM, ("Uống thuốc trừ sâu, nôn, vã mồ hôi",), ("T60.0",), weight=0.6, ages=(16, 70),
       via="HSCC", path=("HSCC",), los=(3, 7), severe=True, referral=0.2),
    _c(ADM, ("Rắn cắn vào bàn chân",), ("T63.0",), weight=0.5, ages=(10, 75), via="HSCC",
       path=("HSCC",), los=(2, 5)),
    _c(ADM, ("Tai nạn giao thông, chấn thương đầu, đau đầu, nôn",), ("S06.0",), ("V29.9",),
       weight=1.5, ages=(15, 75), via="HSCC", path=("HSCC", "NGOAI"), los=(3, 7)),
    _c(ADM, ("Ngã xe máy, đau cổ tay phải", "Ngã chống tay, sưng biến dạng cổ tay"),
       ("S52.5",), ("W19",), weight=1.5, ages=(10, 90), via="HSCC", path=("NGOAI",),
       los=(3, 6)),
    _c(ADM, ("Tai nạn lao động, đau sưng cẳng chân trái",), ("S82.2",), weight=1,
       ages=(18, 65), via="HSCC", path=("NGOAI",), los=(5, 10)),
    _c(ADM, ("Ngã xe đạp, đau vai trái",), ("S42.0",), weight=0.6, ages=(6, 80), via="HSCC",
       path=("NGOAI",), los=(2, 4)),
    _c(ADM, ("Đau bụng, nôn, bí trung đại tiện",), ("K56.7",), weight=0.6, ages=(30, 90),
       via="HSCC", path=("HSCC", "NGOAI"), los=(4, 8)),
    _c(ADM, ("Nôn ra máu, đi ngoài phân đen",), ("K92.2",), ("K25.9", "K70.3"), weight=0.7,
       ages=(30, 90), via="HSCC", path=("HSCC", "NOI"), los=(4, 8), severe=True,
       referral=0.2),
    _c(ADM, ("Đau bụng thượng vị dữ dội lan ra sau lưng, nôn",), ("K85.9",), weight=0.4,
       ages=(25, 80), via="HSCC", path=("HSCC", "NOI"), los=(5, 9), severe=True,
       referral=0.2),
    _c(ADM, ("Đau ngực trái dữ dội, khó thở",), ("I21.9",), ("I10",), weight=0.5,
       ages=(50, 120), via="HSCC", path=("HSCC",), los=(0, 1), severe=True, referral=0.8),
    _c(ADM, ("Co giật, sốt cao",), ("R56.0",), ("J06.9",), weight=1, ages=(0, 5),
       via="HSCC", path=("NHI",), los=(2, 4)),
)  # fmt: skip

_OP_NOTES = (
    "Kê đơn điều trị ngoại trú 5 ngày, tái khám khi có dấu hiệu bất thường.",
    "Kê đơn 7 ngày, hẹn tái khám.",
    "Tư vấn chế độ ăn, vận động; tái khám sau 1 tháng.",
    "Kê đơn 30 ngày, tái khám định kỳ.",
    "",
)
_IP_NOTES = (
    "Ổn định, ra viện. Dùng thuốc theo đơn, tái khám sau 1 tuần.",
    "Ra viện, tái khám sau 2 tuần hoặc khi có dấu hiệu bất thường.",
    "Bệnh ổn định, ra viện.",
)
_REFERRAL_NOTE = "Chuyển tuyến Bệnh viện Đa khoa tỉnh Thanh Hóa."
_DEPT_NAMES = {d.code: d.name for d in DEPARTMENTS}


# --- Generated people --------------------------------------------------------------


@dataclass
class Person:
    fields: dict[str, Any]
    age: int
    sex: str
    birth: date  # the birth date, or 1 January of the birth year
    weight: float  # how often they come
    patient: Patient | None = None
    busy: list[tuple[datetime, datetime]] = field(default_factory=list)
    obstetric: bool = False


def _weighted(rng: random.Random, table: dict[str, float]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def _years_after(day: date, years: int) -> date:
    return _years_before(day, -years)


class PeopleGenerator:
    """Vietnamese patients with consistent, valid identifiers."""

    _AGE_BUCKETS = (
        ((0, 5), 14), ((6, 15), 11), ((16, 30), 12), ((31, 45), 14),
        ((46, 60), 18), ((61, 75), 20), ((76, 85), 8), ((86, 95), 2.5),
    )  # fmt: skip

    def __init__(self, rng: random.Random, today: date):
        self.rng = rng
        self.today = today
        self.cccds: set[str] = set()
        self.insurance_keys: set[str] = set()

    # Names

    def family_name(self, ethnicity: str) -> str:
        table = {
            "06": _FAMILY_MUONG,
            "03": _FAMILY_THAI,
            "08": _FAMILY_HMONG,
            "09": _FAMILY_DAO,
        }.get(ethnicity, _FAMILY_KINH)
        return _weighted(self.rng, table)

    def name(self, sex: str, birth_year: int, ethnicity: str = "01", family: str = "") -> str:
        rng = self.rng
        family = family or self.family_name(ethnicity)
        if ethnicity == "08":
            middle = "A" if sex == "M" else "Thị"
            return f"{family} {middle} {rng.choice(_HMONG_GIVEN[sex].split())}"
        generation = "old" if birth_year < 1970 else "mid" if birth_year < 2000 else "young"
        middles, givens = _GIVEN[(sex, generation)]
        given = rng.choice(givens.split())
        middle = _weighted(rng, middles)
        while middle == given:
            middle = _weighted(rng, middles)
        parts = [family, middle, given]
        # Some younger parents give two middle names: Nguyễn Ngọc Bảo Anh.
        if generation == "young" and middle not in ("Văn", "Thị") and rng.random() < 0.15:
            extra = _weighted(rng, middles)
            if extra not in (middle, given, "Văn", "Thị"):
                parts.insert(2, extra)
        return " ".join(parts)

    # Identifiers

    def phone(self) -> str:
        number = self.rng.choice(_PHONE_PREFIXES) + f"{self.rng.randrange(10**7):07d}"
        return ids.parse_phone(number)

    def cccd(self, birth_year: int, sex: str) -> str:
        province = _weighted(self.rng, _CCCD_PROVINCES)
        century = (birth_year // 100 - 19) * 2 + (0 if sex == Sex.MALE else 1)
        while True:
            number = f"{province}{century}{birth_year % 100:02d}{self.rng.randrange(10**6):06d}"
            if number not in self.cccds:
                break
        cid = ids.parse_cccd(number)
        ids.check_cccd_matches(cid, birth_year, sex)
        self.cccds.add(number)
        return cid.number

    def insurance(self, category: str, level: int, province: str) -> str:
        while True:
            key = province + f"{self.rng.randrange(10**8):08d}"
            if key not in self.insurance_keys:
                break
        self.insurance_keys.add(key)
        return ids.parse_insurance_card(f"{category}{level}{province}{key}").number

    # A person

    def person(self) -> Person:
        rng, today = self.rng, self.today
        lo, hi = rng.choices(
            [b for b, _ in self._AGE_BUCKETS], weights=[w for _, w in self._AGE_BUCKETS]
        )[0]
        age = rng.randint(lo, hi)
        sex = Sex.FEMALE if rng.random() < (0.52 if age >= 16 else 0.48) else Sex.MALE
        # A birthday in the year that gives this age today.
        latest = _years_before(today, age)
        birth = latest - timedelta(days=rng.randrange(365))
        if age == 0:
            birth = today - timedelta(days=rng.randint(7, 360))
        birth_year = birth.year
        year_only = age >= 60 and rng.random() < 0.35
        ethnicity = _weighted(rng, {"01": 84, "06": 9, "03": 5, "08": 1, "24": 0.5, "09": 0.5})
        full_name = self.name(sex, birth_year, ethnicity)
        family = full_name.split(" ", 1)[0]

        occupation = self.occupation(age, sex)
        fields: dict[str, Any] = {
            "full_name": full_name,
            "birth_year": birth_year,
            "birth_date": None if year_only else birth,
            "sex": sex,
            "ethnicity": ethnicity,
            "occupation": occupation,
            "province_code": PROVINCE,
        }
        fields.update(self.address(ethnicity))
        has_cccd = rng.random() < (0.45 if age < 14 else 0.95)
        fields["cccd"] = self.cccd(birth_year, sex) if has_cccd else None
        fields.update(self.card(age, birth, occupation, ethnicity))
        fields.update(self.contacts(age, sex, family, ethnicity))
        if year_only:
            birth = date(birth_year, 1, 1)
        frailty = rng.choice((0.5, 1, 1, 1, 1.5, 2, 2.5))
        age_weight = 1.6 if age < 6 else 0.9 if age < 16 else 0.8 if age < 41 else 1.2
        if age > 60:
            age_weight = 2.0
        return Person(fields, age, sex, birth, weight=frailty * age_weight)

    def occupation(self, age: int, sex: str) -> str:
        rng = self.rng
        if age < 6:
            return "Trẻ em"
        if age < 18:
            return "Học sinh"
        if age < 23 and rng.random() < 0.4:
            return "Sinh viên"
        if age >= 60:
            table = {"Hưu trí": 30, "Nông dân": 45, "Buôn bán": 5}
            if sex == Sex.FEMALE:
                table["Nội trợ"] = 15
            return _weighted(rng, table)
        table = {
            "Nông dân": 35, "Công nhân": 18, "Buôn bán": 10, "Lao động tự do": 12,
            "Giáo viên": 5, "Cán bộ, viên chức": 5,
        }  # fmt: skip
        table.update(
            {"Nội trợ": 5, "Thợ may": 3} if sex == Sex.FEMALE else {"Thợ xây": 4, "Lái xe": 3}
        )
        return _weighted(rng, table)

    def address(self, ethnicity: str) -> dict[str, str]:
        rng = self.rng
        if ethnicity != "01" and rng.random() < 0.7:
            commune, village = rng.choice(_HILL_COMMUNES), rng.choice(_HILL_VILLAGES)
            return {"address": village, "commune_code": commune}
        if rng.random() < 0.25:
            street = rng.choice(_STREETS)
            address = (
                f"Số {rng.randint(1, 180)} đường {street}, khu phố {rng.randint(1, 6)}"
                if rng.random() < 0.7
                else f"Khu phố {rng.randint(1, 6)}"
            )
            return {"address": address, "commune_code": _TOWN_COMMUNE}
        village = rng.choice(_VILLAGES) if rng.random() < 0.6 else f"Thôn {rng.randint(1, 12)}"
        return {"address": village, "commune_code": rng.choice(_RURAL_COMMUNES)}

    def card(self, age: int, birth: date, occupation: str, ethnicity: str) -> dict[str, Any]:
        """A health-insurance card for about 85% of patients, by who they are."""
        rng, today = self.rng, self.today
        minority = ethnicity != "01"
        if age < 6:
            if rng.random() < 0.02:
                return {}
            category, level = "TE", 1
        elif occupation in ("Học sinh", "Sinh viên"):
            if rng.random() < 0.05:
                return {}
            category, level = "HS", 4
        elif occupation == "Hưu trí":
            category, level = "HT", 3
        elif occupation == "Công nhân":
            category, level = "DN", 4
        elif occupation in ("Giáo viên", "Cán bộ, viên chức"):
            category, level = "HC", 4
        else:
            if age >= 80 and rng.random() < 0.7:
                category, level = "BT", 2
            elif minority and rng.random() < 0.6:
                category, level = "DT", 2
            elif age >= 70 and rng.random() < 0.1:
                category, level = "CC", 1
            else:
                if rng.random() < 0.24:
                    return {}
                category, level = rng.choices(
                    (("GD", 4), ("HN", 2), ("CN", 3)), weights=(80, 12, 8)
                )[0]
        province = PROVINCE
        if category == "DN" and rng.random() < 0.1:
            province = rng.choice(("01", "79", "74"))  # a card from an employer elsewhere
        number = self.insurance(category, level, province)
        month_start = date(today.year, today.month, 1)
        if category == "TE":
            valid_from, valid_to = birth, _years_after(birth, 6) - timedelta(days=1)
        elif category in ("HT", "BT", "CC"):
            valid_from = _years_before(month_start, rng.randint(0, 3))
            valid_to = _years_after(valid_from, 5) - timedelta(days=1)
        else:
            back = rng.randint(13, 18) if rng.random() < 0.04 else rng.randint(0, 11)
            y, m = divmod(today.year * 12 + today.month - 1 - back, 12)
            valid_from = date(y, m + 1, 1)
            valid_to = _years_after(valid_from, 1) - timedelta(days=1)
        if province == PROVINCE:
            registered = FACILITY_CODE if rng.random() < 0.55 else rng.choice(_STATIONS)
        else:
            registered = f"{province}{rng.randint(1, 250):03d}"
        return {
            "insurance_number": number,
            "insurance_valid_from": valid_from,
            "insurance_valid_to": valid_to,
            "insurance_facility_code": ids.parse_facility_code(registered),
        }

    def contacts(self, age: int, sex: str, family: str, ethnicity: str) -> dict[str, Any]:
        rng = self.rng
        out: dict[str, Any] = {}
        this_year = self.today.year
        if age < 16:
            if rng.random() < 0.6:
                relation, rel_sex, rel_family = "Mẹ", Sex.FEMALE, ""
            else:
                relation, rel_sex, rel_family = "Bố", Sex.MALE, family
            rel_birth = this_year - age - rng.randint(20, 38)
        elif age < 25 or (age < 45 and rng.random() < 0.15):
            relation, rel_sex = rng.choice((("Mẹ", Sex.FEMALE), ("Bố", Sex.MALE)))
            rel_family = family if rel_sex == Sex.MALE else ""
            rel_birth = this_year - age - rng.randint(20, 38)
        elif age < 60:
            if rng.random() < 0.8:
                relation = "Vợ" if sex == Sex.MALE else "Chồng"
                rel_sex = Sex.FEMALE if sex == Sex.MALE else Sex.MALE
                rel_family = ""
                rel_birth = this_year - age + rng.randint(-6, 3)
            else:
                relation, rel_sex = rng.choice(
                    (("Anh trai", Sex.MALE), ("Chị gái", Sex.FEMALE), ("Em trai", Sex.MALE))
                )
                rel_family = family
                rel_birth = this_year - age + rng.randint(-8, 8)
        else:
            relation, rel_sex = rng.choice((("Con trai", Sex.MALE), ("Con gái", Sex.FEMALE)))
            # A son carries his father's family name; approximate with the patient's.
            rel_family = family if sex == Sex.MALE and rel_sex == Sex.MALE else ""
            rel_birth = this_year - age + rng.randint(20, 35)
        has_contact = age < 16 or rng.random() < 0.8
        if has_contact:
            out["emergency_name"] = self.name(rel_sex, rel_birth, ethnicity, rel_family)
            out["emergency_relation"] = relation
            out["emergency_phone"] = self.phone()
        # Children's numbers are their parents'; many older people have none.
        if age < 14:
            if has_contact and rng.random() < 0.4:
                out["phone"] = out["emergency_phone"]
        elif rng.random() < (0.7 if age >= 70 else 0.93):
            out["phone"] = self.phone()
        return out


# --- Encounter plans ------------------------------------------------------------------


@dataclass
class VisitPlan:
    """One encounter to create: its stays, diagnoses and (if finished) discharge."""

    kind: str
    stays: list[tuple[str, datetime]]  # (department code, arrival)
    reason: str
    main: str | None = None
    secondary: list[str] = field(default_factory=list)
    ended_at: datetime | None = None
    outcome: str = ""
    discharge_type: str = ""
    note: str = ""

    @property
    def started_at(self) -> datetime:
        return self.stays[0][1]


@dataclass
class Episode:
    person: Person
    visits: list[VisitPlan]

    @property
    def start(self) -> datetime:
        return self.visits[0].started_at

    @property
    def end(self) -> datetime | None:
        return self.visits[-1].ended_at


_FAR = timedelta(days=10_000)
_MARGIN = timedelta(hours=12)


class EncounterPlanner:
    """Plans the encounters: history, today's visits and the current inpatients."""

    def __init__(self, rng: random.Random, people: list[Person], now: datetime, codes: set[str]):
        self.rng = rng
        self.people = people
        self.now = now
        self.tz = timezone.get_current_timezone()
        self.today = timezone.localtime(now).date()
        self.conditions = self._usable(codes)
        self.codes = {c for cond in self.conditions for c in (*cond.main, *cond.secondary)}
        self._eligible: dict[int, tuple[list[Person], list[float]]] = {}

    @staticmethod
    def _usable(codes: set[str]) -> list[Condition]:
        """CONDITIONS limited to codes in the loaded ICD-10 list; none without a main code."""
        out = []
        for c in CONDITIONS:
            main = tuple(x for x in c.main if x in codes)
            if not main:
                continue
            secondary = tuple(x for x in c.secondary if x in codes)
            out.append(replace(c, main=main, secondary=secondary))
        return out

    # Time helpers

    def local(self, day: date, hours: float) -> datetime:
        naive = datetime.combine(day, time()) + timedelta(hours=hours)
        return timezone.make_aware(naive, self.tz)

    def clinic_hour(self) -> float:
        if self.rng.random() < 0.7:
            return self.rng.uniform(7.0, 11.5)
        return self.rng.uniform(13.5, 16.5)

    def any_hour(self) -> float:
        # Emergencies come at all hours, more in the day and evening.
        lo, hi = self.rng.choices(((0, 7), (7, 17), (17, 24)), weights=(2, 5, 4))[0]
        return self.rng.uniform(lo, hi)

    def history_day(self, earliest_back: int, outpatient: bool) -> date:
        while True:
            day = self.today - timedelta(days=self.rng.randint(earliest_back, HISTORY_DAYS))
            keep = {5: 0.6, 6: 0.25}.get(day.weekday(), 1.0) if outpatient else 1.0
            if self.rng.random() < keep:
                return day

    def minutes(self, lo: int, hi: int) -> timedelta:
        return timedelta(minutes=self.rng.randint(lo, hi))

    # Patients

    def pick_person(self, cond: Condition, start: datetime, end: datetime | None) -> Person | None:
        key = id(cond)
        if key not in self._eligible:
            lo, hi = cond.ages
            people = [
                p for p in self.people if lo <= p.age <= hi and (not cond.sex or p.sex == cond.sex)
            ]
            self._eligible[key] = (people, [p.weight for p in people])
        people, weights = self._eligible[key]
        if not people:
            return None
        a, b = start - _MARGIN, (end or start + _FAR) + _MARGIN
        for _ in range(25):
            p = self.rng.choices(people, weights=weights)[0]
            if cond.obstetric and p.obstetric:
                continue
            if datetime.combine(p.birth, time(), self.tz) + timedelta(days=1) > start:
                continue
            if any(not (b <= s or e <= a) for s, e in p.busy):
                continue
            return p
        return None

    def commit(self, episode: Episode, cond: Condition) -> Episode:
        p = episode.person
        p.busy.append((episode.start, episode.end or episode.start + _FAR))
        if cond.obstetric:
            p.obstetric = True
        return episode

    # Diagnoses and outcomes

    def diagnoses(self, cond: Condition, person: Person) -> tuple[str, list[str]]:
        rng = self.rng
        main = rng.choice(cond.main)
        n = rng.choices((0, 1, 2), weights=(50, 35, 15))[0]
        pool = [c for c in cond.secondary if c != main]
        rng.shuffle(pool)
        secondary = pool[:n]
        if person.age >= 50 and len(secondary) < 2:
            for code, chance in (("I10", 0.3), ("E11.9", 0.1), ("E78.5", 0.1)):
                usable = code in self.codes and code != main and code not in secondary
                if usable and len(secondary) < 2 and rng.random() < chance:
                    secondary.append(code)
        return main, secondary

    # Episodes

    def outpatient(self, cond: Condition) -> Episode | None:
        start = self.local(self.history_day(1, True), self.clinic_hour())
        end = start + self.minutes(15, 90)
        if end > self.now:
            return None
        p = self.pick_person(cond, start, end)
        if p is None:
            return None
        main, secondary = self.diagnoses(cond, p)
        outcome = self.rng.choices(("1", "2", "3"), weights=(15, 70, 15))[0]
        visit = VisitPlan(
            EncounterKind.OUTPATIENT, [("KKB", start)], self.rng.choice(cond.reasons),
            main, secondary, end, outcome, DischargeType.DISCHARGED,
            self.rng.choice(_OP_NOTES),
        )  # fmt: skip
        return self.commit(Episode(p, [visit]), cond)

    def emergency(self, cond: Condition) -> Episode | None:
        start = self.local(self.history_day(1, False), self.any_hour())
        end = start + self.minutes(40, 300)
        if end > self.now:
            return None
        p = self.pick_person(cond, start, end)
        if p is None:
            return None
        main, secondary = self.diagnoses(cond, p)
        if self.rng.random() < cond.referral:
            outcome, dtype, note = (
                DischargeOutcome.UNCHANGED,
                DischargeType.REFERRED,
                _REFERRAL_NOTE,
            )
        else:
            outcome = self.rng.choices(("1", "2"), weights=(30, 70))[0]
            dtype, note = DischargeType.DISCHARGED, "Xử trí cấp cứu, cho về theo dõi tại nhà."
        visit = VisitPlan(
            EncounterKind.EMERGENCY, [("HSCC", start)], self.rng.choice(cond.reasons),
            main, secondary, end, outcome, dtype, note,
        )  # fmt: skip
        return self.commit(Episode(p, [visit]), cond)

    def admission(self, cond: Condition, *, current: bool, max_visits: int) -> Episode | None:
        rng = self.rng
        lo, hi = cond.los
        los = rng.randint(lo, hi)
        via = cond.via
        if via and max_visits < 2:
            return None
        if current:
            # In hospital now: admitted within the stay's length, up to 10 days ago.
            max_hours = max(6.0, min(hi - 0.5, 10) * 24)
            admitted = self.now - timedelta(hours=rng.uniform(2, max_hours))
            visit_start = admitted - self.minutes(30, 150)
            hour = timezone.localtime(visit_start).hour
            if via == "KKB" and not 7 <= hour < 17:
                via = "HSCC"  # Khoa Khám bệnh is closed: they came through the emergency room
            if not via:
                visit_start = admitted
        else:
            outpatient = via == "KKB"
            day = self.history_day(max(los, 0) + 1, outpatient)
            hour = self.clinic_hour() if outpatient else self.any_hour()
            visit_start = self.local(day, hour)
            admitted = visit_start + self.minutes(30, 150) if via else visit_start
        # Stays, transfers and discharge.
        stays = [(cond.path[0], admitted)]
        ended_at = None
        if not current:
            if los == 0:
                ended_at = admitted + timedelta(hours=rng.uniform(3, 10))
            else:
                ended_at = self.local(
                    timezone.localtime(admitted).date() + timedelta(days=los),
                    rng.uniform(8, 11),
                )
            if ended_at >= self.now - timedelta(minutes=10):
                return None
        if len(cond.path) > 1:
            limit = (ended_at or self.now) - admitted - timedelta(hours=2)
            if limit > timedelta(hours=6):
                hours = rng.uniform(6, min(48, limit.total_seconds() / 3600))
                stays.append((cond.path[1], admitted + timedelta(hours=hours)))
        p = self.pick_person(cond, visit_start, ended_at)
        if p is None:
            return None
        main, secondary = self.diagnoses(cond, p)
        reason = rng.choice(cond.reasons)
        visits = []
        if via:
            visits.append(
                VisitPlan(
                    EncounterKind.OUTPATIENT if via == "KKB" else EncounterKind.EMERGENCY,
                    [(via, visit_start)],
                    reason,
                    main,
                    [],
                    admitted,
                    DischargeOutcome.UNKNOWN,
                    DischargeType.OTHER,
                    f"Vào điều trị nội trú tại {_DEPT_NAMES[cond.path[0]]}.",
                )
            )
        adm = VisitPlan(EncounterKind.INPATIENT, stays, reason, main, secondary)
        if current:
            if rng.random() < 0.15:  # just admitted, no diagnosis coded yet
                adm.main, adm.secondary = None, []
        else:
            adm.ended_at = ended_at
            adm.outcome, adm.discharge_type, adm.note = self._inpatient_outcome(cond, p)
        visits.append(adm)
        return self.commit(Episode(p, visits), cond)

    def _inpatient_outcome(self, cond: Condition, p: Person) -> tuple[str, str, str]:
        rng = self.rng
        if cond.obstetric and cond.main[0].startswith(("O80", "O82")):
            return DischargeOutcome.CURED, DischargeType.DISCHARGED, "Mẹ và con ổn định, ra viện."
        if cond.severe:
            r = rng.random()
            if r < cond.referral:
                return DischargeOutcome.WORSE, DischargeType.REFERRED, _REFERRAL_NOTE
            if p.age >= 70 and r < cond.referral + 0.03:
                return DischargeOutcome.DIED, DischargeType.OTHER, "Tử vong tại khoa."
            if p.age >= 70 and r < cond.referral + 0.07:
                return (
                    DischargeOutcome.GRAVE,
                    DischargeType.ON_REQUEST,
                    "Tiên lượng nặng, gia đình xin đưa về.",
                )
        if rng.random() < 0.04:
            return DischargeOutcome.IMPROVED, DischargeType.ON_REQUEST, "Bệnh nhân xin ra viện."
        outcome = rng.choices(("1", "2", "3"), weights=(35, 60, 5))[0]
        return outcome, DischargeType.DISCHARGED, rng.choice(_IP_NOTES)

    def today_visit(self) -> Episode | None:
        """A visit started today before now: some finished, most still waiting or in progress."""
        rng = self.rng
        midnight = self.local(self.today, 0)
        opening = midnight + timedelta(hours=7)
        window_start = opening if self.now - opening > timedelta(minutes=30) else midnight
        emergency = rng.random() < 0.15 or window_start == midnight
        start = window_start + (self.now - window_start) * rng.random()
        start = start.replace(microsecond=0)
        elapsed = self.now - start
        setting = ER if emergency else OP
        cond = self.pick_condition(setting)
        finished = elapsed > timedelta(minutes=30) and rng.random() < 0.45
        end = (
            start + min(self.minutes(15, 90), elapsed - timedelta(minutes=1)) if finished else None
        )
        p = self.pick_person(cond, start, end)
        if p is None:
            return None
        main, secondary = self.diagnoses(cond, p)
        kind, dept = (
            (EncounterKind.EMERGENCY, "HSCC") if emergency else (EncounterKind.OUTPATIENT, "KKB")
        )
        visit = VisitPlan(kind, [(dept, start)], rng.choice(cond.reasons))
        if finished or rng.random() < 0.3:
            visit.main, visit.secondary = main, secondary
        if finished:
            visit.ended_at = end
            visit.outcome = rng.choices(("1", "2", "3"), weights=(15, 70, 15))[0]
            visit.discharge_type = DischargeType.DISCHARGED
            visit.note = rng.choice(_OP_NOTES)
        return self.commit(Episode(p, [visit]), cond)

    def pick_condition(self, setting: str, *, long_stay: bool = False) -> Condition:
        pool = [c for c in self.conditions if c.setting == setting]
        if long_stay:
            pool = [c for c in pool if c.los[1] >= 3]
        return self.rng.choices(pool, weights=[c.weight for c in pool])[0]

    def plan(self, total: int) -> list[Episode]:
        """About `total` encounters (exactly, unless the patients run out of free time)."""
        rng = self.rng
        episodes: list[Episode] = []
        count = 0
        n_current = round(total * 0.032)
        n_today = round(total * 0.03)
        attempts = 0
        while count < total and attempts < total * 30:
            attempts += 1
            left = total - count
            if n_current > 0:
                cond = self.pick_condition(ADM, long_stay=True)
                ep = self.admission(cond, current=True, max_visits=left)
                if ep is not None:
                    n_current -= 1
                elif attempts > total * 5:
                    n_current = 0
            elif n_today > 0:
                ep = self.today_visit()
                if ep is not None:
                    n_today -= 1
                elif attempts > total * 10:
                    n_today = 0
            else:
                setting = rng.choices((OP, ER, ADM), weights=(78, 8, 14))[0]
                cond = self.pick_condition(setting)
                if setting == OP:
                    ep = self.outpatient(cond)
                elif setting == ER:
                    ep = self.emergency(cond)
                else:
                    ep = self.admission(cond, current=False, max_visits=left)
            if ep is not None:
                episodes.append(ep)
                count += len(ep.visits)
        episodes.sort(key=lambda e: e.start)
        return episodes


# --- Seeding ---------------------------------------------------------------------------


@dataclass
class SeedResult:
    facility: Facility
    created: bool  # False: the demo clinic was already there
    patients: int = 0
    encounters: int = 0
    records: dict[str, int] = field(default_factory=dict)  # state -> how many


class DemoError(Exception):
    """The database is not a place for the demo clinic."""


def demo_facility() -> Facility | None:
    return Facility.objects.filter(code=FACILITY_CODE).first()


def is_seeded() -> bool:
    f = demo_facility()
    return f is not None and Patient.objects.filter(facility=f).exists()


def _check_database() -> None:
    """Refuse to mix the demo clinic into a database that holds a real one."""
    others = Facility.objects.exclude(code=FACILITY_CODE)
    if others.exists():
        raise DemoError(
            f"This database already holds another facility ({others.first()}). "
            "Seed the demo clinic into its own database (set BENHAN_DATA_DIR)."
        )
    usernames = [s.username for s in STAFF]
    taken = User.objects.filter(username__in=usernames).exclude(facility__code=FACILITY_CODE)
    if taken.exists():
        names = ", ".join(sorted(taken.values_list("username", flat=True)))
        raise DemoError(f"These usernames already belong to other accounts: {names}.")


def _setup_clinic() -> tuple[Facility, dict[str, Department], dict[str, User]]:
    facility, _ = Facility.objects.get_or_create(
        code=FACILITY_CODE,
        defaults={
            "name": FACILITY_NAME,
            "address": FACILITY_ADDRESS,
            "province_code": PROVINCE,
            "phone": FACILITY_PHONE,
        },
    )
    departments = {}
    for spec in DEPARTMENTS:
        departments[spec.code], _ = Department.objects.get_or_create(
            facility=facility,
            code=spec.code,
            defaults={"name": spec.name, "kind": spec.kind, "has_beds": spec.has_beds},
        )
    # One hash for the shared password: hashing is deliberately slow.
    encoded = make_password(PASSWORD)
    staff = {}
    for spec in STAFF:
        user, created = User.objects.get_or_create(
            username=spec.username,
            defaults={
                "full_name": spec.full_name,
                "facility": facility,
                "role": spec.role,
                "title": spec.title,
                "practising_certificate": spec.certificate,
                "is_staff": spec.role == Role.ADMIN,
                "is_superuser": False,
                "password": encoded,
            },
        )
        if created:
            user.departments.set([departments[c] for c in spec.departments])
        staff[spec.username] = user
    return facility, departments, staff


def seed(
    patients: int = DEFAULT_PATIENTS,
    encounters: int = DEFAULT_ENCOUNTERS,
    seed: int = DEFAULT_SEED,
    progress: Progress | None = None,
    records: int = DEFAULT_RECORDS,
) -> SeedResult:
    """Create the demo clinic, unless it exists already with patients.

    Then signing certificates for the doctors and nurses (PIN `SIGNING_PIN`) and about
    `records` medical records in every state (see benhan.core.demo_records).

    One transaction: a failure leaves nothing half-made, so running it again is safe.
    """
    progress = progress or (lambda label, done, total: None)
    if encounters and not patients:
        raise DemoError("Encounters need patients: give --patients more than 0.")
    with transaction.atomic():
        _check_database()
        facility = demo_facility()
        if facility is not None and Patient.objects.filter(facility=facility).exists():
            return SeedResult(facility, created=False)
        facility, departments, staff = _setup_clinic()
        append(
            action="demo.seed",
            facility_id=facility.pk,
            object_type="facility",
            object_id=facility.pk,
            detail={
                "patients": patients,
                "encounters": encounters,
                "records": records,
                "seed": seed,
            },
        )
        progress("staff", len(staff), len(STAFF))

        rng = random.Random(seed)
        now = timezone.now().replace(microsecond=0)
        today = timezone.localtime(now).date()
        gen = PeopleGenerator(rng, today)
        people = [gen.person() for _ in range(patients)]
        for i, person in enumerate(people, 1):
            actor = Actor(staff[_RECEPTIONISTS[i % 2]])
            person.patient = do_register_patient(actor, person.fields)
            progress("patients", i, patients)

        codes = set(Icd10Code.objects.values_list("code", flat=True))
        planner = EncounterPlanner(rng, people, now, codes)
        episodes = planner.plan(encounters)
        icd = Icd10Code.objects.in_bulk(planner.codes)
        total = sum(len(e.visits) for e in episodes)
        done = 0
        for episode in episodes:
            previous = None
            for visit in episode.visits:
                previous = _create(visit, episode.person, previous, rng, departments, staff, icd)
                done += 1
                progress("encounters", done, total)

        demo_records.issue_credentials(facility, staff, progress)
        members: dict[str, list[str]] = {}
        for spec in STAFF:
            for code in spec.departments:
                members.setdefault(code, []).append(spec.username)
        clinic = demo_records.Clinic(staff, HEADS, members)
        # A generator of its own: the records do not shift the rest of the clinic.
        counts = demo_records.seed_records(
            facility, clinic, random.Random(f"{seed}-records"), records, progress
        )
        from benhan.lab.demo import seed_lab

        seed_lab(facility, staff, random.Random(f"{seed}-lab"), progress, demo_records.SIGNING_PIN)
        return SeedResult(
            facility,
            created=True,
            patients=patients,
            encounters=total,
            records=dict(counts),
        )


def _minute(when: datetime) -> datetime:
    """Times as staff enter them. Flooring keeps their order and keeps them in the past."""
    return when.replace(second=0, microsecond=0)


def _create(
    visit: VisitPlan,
    person: Person,
    source: Encounter | None,
    rng: random.Random,
    departments: dict[str, Department],
    staff: dict[str, User],
    icd: dict[str, Icd10Code],
) -> Encounter:
    first_dept, started_at = visit.stays[0][0], _minute(visit.stays[0][1])

    def doctor(code: str) -> User:
        return staff[rng.choice(_DOCTORS[code])]

    attending = doctor(first_dept)
    if visit.kind == EncounterKind.OUTPATIENT:
        opener = staff[rng.choice(_RECEPTIONISTS)]
    elif visit.kind == EncounterKind.EMERGENCY:
        opener = staff["dd.cc"]
    elif source is not None:
        opener = source.attending or attending  # the doctor who decided to admit
    else:
        opener = staff["hs.san"] if first_dept == "SAN" else attending
    encounter = enc_actions.do_open_encounter(
        Actor(opener),
        person.patient,
        kind=str(visit.kind),
        department=departments[first_dept],
        attending=attending,
        reason=visit.reason,
        started_at=started_at,
        source=source,
    )
    for code, at in visit.stays[1:]:
        new_attending = doctor(code)
        enc_actions.do_transfer(
            Actor(attending),
            encounter,
            department=departments[code],
            attending=new_attending,
            at=_minute(at),
            note=f"Chuyển {_DEPT_NAMES[code]} điều trị tiếp.",
        )
        attending = new_attending
    if visit.main:
        enc_actions.do_set_diagnoses(
            Actor(attending),
            encounter,
            main=icd[visit.main],
            secondary=[icd[c] for c in visit.secondary],
        )
    if visit.ended_at:
        encounter = enc_actions.do_discharge(
            Actor(attending),
            encounter,
            ended_at=_minute(visit.ended_at),
            outcome=visit.outcome,
            discharge_type=visit.discharge_type,
            note=visit.note,
        )
    return encounter


def logins(facility: Facility | None = None) -> list[dict[str, str]]:
    """The demo accounts, for the table printed after seeding."""
    facility = facility or demo_facility()
    if facility is None:
        return []
    order = {s.username: i for i, s in enumerate(STAFF)}
    users = User.objects.filter(facility=facility, username__in=order).prefetch_related(
        "departments"
    )
    rows = []
    for u in sorted(users, key=lambda u: order[u.username]):
        rows.append(
            {
                "username": u.username,
                "password": PASSWORD,
                "role": u.role,
                "name": f"{u.title} {u.full_name}".strip(),
                "departments": ", ".join(d.code for d in u.departments.all()) or "—",
            }
        )
    return rows
