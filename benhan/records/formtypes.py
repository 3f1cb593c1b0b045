"""Form types: declarative definitions of the documents a record holds.

A clinic adds a form by adding a FormType here (or in a module it registers) and a
Typst template in benhan/records/typst/; the workflow code does not change.

Each form type says which fields it has, which staff roles sign and in which order,
whether the patient (or a representative) signs, its retention class, and its
template.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.translation import gettext_lazy as _

from benhan.accounts.models import Role


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    # text | textarea | date | datetime | number | choice
    # lines: one item per line -> a list of strings
    # table: one row per line, columns separated by "|" -> a list of dicts (see columns)
    kind: str = "text"
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    # Filled from the patient/encounter when the document is created (see prefill.py).
    prefill: str = ""
    help: str = ""
    max_length: int = 2000
    columns: tuple[str, ...] = ()  # for kind="table"
    numeric: tuple[str, ...] = ()  # table columns that are numbers


@dataclass(frozen=True)
class SignatureSlot:
    slot: str  # the box in the template
    title: str  # printed above the box
    roles: frozenset[str]  # who may sign it
    # The attending doctor must sign personally; other slots accept any member of the role
    # in the encounter's department.
    attending_only: bool = False


@dataclass(frozen=True)
class FormType:
    code: str
    title: str
    form_number: str  # as printed, e.g. "MS: 01/BV-01"
    template: str  # file name in benhan/records/typst/
    fields: tuple[Field, ...]
    signers: tuple[SignatureSlot, ...]  # in signing order
    patient_signs: bool = False
    # False: written by the system (lab and imaging reports), not added by hand.
    manual: bool = True
    retention_class: str = "ordinary"
    kinds: frozenset[str] = field(
        default_factory=lambda: frozenset({"outpatient", "inpatient", "emergency"})
    )

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


DOCTOR = frozenset({Role.DOCTOR})
NURSE = frozenset({Role.NURSE})

_DIAG = Field("diagnosis", _("Diagnosis"), "textarea", required=True, prefill="diagnoses")

REGISTRY: dict[str, FormType] = {}


def register(form_type: FormType) -> FormType:
    REGISTRY[form_type.code] = form_type
    return form_type


register(
    FormType(
        code="discharge_paper",
        title="GIẤY RA VIỆN",
        form_number="MS: 01/BV-01",
        template="discharge_paper.typ",
        kinds=frozenset({"inpatient", "emergency"}),
        fields=(
            Field("admitted_at", _("Admitted"), "datetime", required=True, prefill="started_at"),
            Field("discharged_at", _("Discharged"), "datetime", required=True, prefill="ended_at"),
            _DIAG,
            Field("treatment", _("Treatment given"), "textarea", required=True),
            Field("notes", _("Advice and follow-up"), "textarea"),
        ),
        signers=(
            SignatureSlot("doctor", "BÁC SĨ ĐIỀU TRỊ", DOCTOR, attending_only=True),
            SignatureSlot("head", "TRƯỞNG KHOA", DOCTOR),
        ),
    )
)

register(
    FormType(
        code="outpatient_record",
        title="BỆNH ÁN NGOẠI TRÚ",
        form_number="MS: 15/BV-01",
        template="outpatient_record.typ",
        kinds=frozenset({"outpatient"}),
        fields=(
            Field("reason", _("Reason for visit"), "textarea", required=True, prefill="reason"),
            Field("history", _("History of present illness"), "textarea", required=True),
            Field("examination", _("Examination"), "textarea", required=True),
            _DIAG,
            Field("treatment", _("Treatment"), "textarea", required=True),
            Field("follow_up", _("Follow-up"), "text"),
        ),
        signers=(SignatureSlot("doctor", "BÁC SĨ KHÁM BỆNH", DOCTOR, attending_only=True),),
    )
)

register(
    FormType(
        code="surgical_consent",
        title="GIẤY CAM ĐOAN CHẤP NHẬN PHẪU THUẬT, THỦ THUẬT VÀ GÂY MÊ HỒI SỨC",
        form_number="MS: 03/BV-01",
        template="surgical_consent.typ",
        patient_signs=True,
        fields=(
            Field("procedure", _("Procedure"), "text", required=True),
            Field("risks", _("Risks explained"), "textarea", required=True),
            Field("representative_name", _("Representative (if not the patient)"), "text"),
            Field("representative_relation", _("Relationship to the patient"), "text"),
        ),
        signers=(SignatureSlot("doctor", "BÁC SĨ GIẢI THÍCH", DOCTOR),),
    )
)


NURSE_OR_DOCTOR = frozenset({Role.DOCTOR, Role.NURSE})

register(
    FormType(
        code="inpatient_record",
        title="BỆNH ÁN NỘI KHOA",
        form_number="MS: 01/BV-01",
        template="inpatient_record.typ",
        kinds=frozenset({"inpatient"}),
        fields=(
            Field("reason", _("Reason for admission"), "textarea", required=True, prefill="reason"),
            Field("history", _("History of present illness"), "textarea", required=True),
            Field("personal_history", _("Personal history"), "textarea"),
            Field("family_history", _("Family history"), "textarea"),
            Field("general_exam", _("General examination"), "textarea", required=True),
            Field("tests", _("Tests and results"), "textarea"),
            Field("summary", _("Summary"), "textarea", required=True),
            _DIAG,
            Field("prognosis", _("Prognosis"), "text"),
            Field("treatment_plan", _("Treatment plan"), "textarea", required=True),
        ),
        signers=(
            SignatureSlot("doctor", "BÁC SĨ LÀM BỆNH ÁN", DOCTOR, attending_only=True),
            SignatureSlot("head", "TRƯỞNG KHOA", DOCTOR),
        ),
    )
)

register(
    FormType(
        code="treatment_sheet",
        title="PHIẾU ĐIỀU TRỊ",
        form_number="MS: 39/BV-01",
        template="treatment_sheet.typ",
        kinds=frozenset({"inpatient", "emergency"}),
        fields=(
            _DIAG,
            Field("room", _("Room"), "text"),
            Field("bed", _("Bed"), "text"),
            Field(
                "entries",
                _("Entries"),
                "table",
                required=True,
                max_length=20000,
                columns=("datetime", "progress", "orders"),
                help=_("One line per entry: date and time | progress | orders"),
            ),
        ),
        signers=(SignatureSlot("doctor", "BÁC SĨ ĐIỀU TRỊ", DOCTOR),),
    )
)

register(
    FormType(
        code="prescription",
        title="ĐƠN THUỐC",
        form_number="MS: 17/BV-01",
        template="prescription.typ",
        fields=(
            _DIAG,
            Field(
                "drugs",
                _("Drugs"),
                "table",
                required=True,
                max_length=10000,
                columns=("name", "strength", "quantity", "unit", "usage"),
                numeric=("quantity",),
                help=_("One drug per line: name | strength | quantity | unit | how to take it"),
            ),
            Field("days", _("Days"), "number"),
            Field("advice", _("Advice"), "textarea"),
            Field("follow_up", _("Follow-up"), "text"),
        ),
        signers=(SignatureSlot("doctor", "BÁC SĨ KÊ ĐƠN", DOCTOR),),
    )
)

register(
    FormType(
        code="commitment",
        title="GIẤY CAM KẾT",
        form_number="MS: 04/BV-01",
        template="commitment.typ",
        patient_signs=True,
        fields=(
            Field("subject", _("Subject"), "text", required=True),
            Field("content", _("What the patient was told"), "textarea", required=True),
            Field("commitments", _("Undertakings"), "lines", help=_("One per line")),
            Field("representative_name", _("Representative (if not the patient)"), "text"),
            Field("representative_relation", _("Relationship to the patient"), "text"),
            Field("representative_id", _("Representative's citizen ID"), "text"),
        ),
        signers=(SignatureSlot("doctor", "BÁC SĨ ĐIỀU TRỊ", DOCTOR),),
    )
)

register(
    FormType(
        code="payment_statement",
        title="BẢNG KÊ CHI PHÍ KHÁM BỆNH, CHỮA BỆNH",
        form_number="Mẫu số 01/KBCB",
        template="payment_statement.typ",
        patient_signs=True,
        fields=(
            Field("coverage_percent", _("Insurance benefit (%)"), "number", prefill="coverage"),
            Field("route", _("Route"), "text", prefill="route"),
            Field("days", _("Days of treatment"), "number", prefill="days"),
            Field(
                "lines",
                _("Services and drugs"),
                "table",
                required=True,
                max_length=20000,
                prefill="charges",
                columns=("group", "name", "unit", "quantity", "price", "insurance_price"),
                numeric=("quantity", "price", "insurance_price"),
                help=_(
                    "One line per item: group | name | unit | quantity | hospital price | "
                    "insurance price"
                ),
            ),
        ),
        signers=(SignatureSlot("preparer", "NGƯỜI LẬP BẢNG KÊ", NURSE_OR_DOCTOR),),
    )
)


LAB = frozenset({Role.LAB_TECH})
LAB_OR_DOCTOR = frozenset({Role.LAB_TECH, Role.DOCTOR})
_LAB_FIELDS = (
    Field("accession", _("Accession number"), "text", required=True),
    Field("specimen", _("Specimen"), "text"),
    Field("collected_at", _("Collected"), "datetime"),
    Field("ordered", _("Ordered by"), "text"),
    Field(
        "results", _("Results"), "table", required=True, max_length=50000,
        columns=("code", "name", "value", "unit", "range", "flag", "method"),
        help=_("Written by the laboratory: code | test | result | unit | range | flag | source"),
    ),
    Field("note", _("Comment"), "textarea"),
)  # fmt: skip

# Lab and imaging reports are written by benhan.lab from the results, signed by the
# technician (and a second verifier when a test requires one), then sealed at once.
register(
    FormType(
        code="lab_report",
        manual=False,
        title="PHIẾU KẾT QUẢ XÉT NGHIỆM",
        form_number="Mẫu XN-01",
        template="lab_report.typ",
        fields=_LAB_FIELDS,
        signers=(SignatureSlot("technician", "KỸ THUẬT VIÊN XÉT NGHIỆM", LAB),),
    )
)
register(
    FormType(
        code="lab_report_verified",
        manual=False,
        title="PHIẾU KẾT QUẢ XÉT NGHIỆM",
        form_number="Mẫu XN-01",
        template="lab_report.typ",
        fields=_LAB_FIELDS,
        signers=(
            SignatureSlot("technician", "KỸ THUẬT VIÊN XÉT NGHIỆM", LAB),
            SignatureSlot("verifier", "NGƯỜI DUYỆT KẾT QUẢ", LAB_OR_DOCTOR),
        ),
    )
)
register(
    FormType(
        code="imaging_report",
        manual=False,
        title="PHIẾU KẾT QUẢ CHẨN ĐOÁN HÌNH ẢNH - THĂM DÒ CHỨC NĂNG",
        form_number="Mẫu CĐHA-01",
        template="imaging_report.typ",
        fields=(
            Field("accession", _("Accession number"), "text", required=True),
            Field("exam", _("Examination"), "text", required=True),
            Field("ordered", _("Ordered by"), "text"),
            Field("findings", _("Findings"), "textarea", required=True, max_length=10000),
            Field("conclusion", _("Conclusion"), "textarea", required=True),
            Field("images", _("Images"), "lines", max_length=5_000_000),
        ),
        signers=(SignatureSlot("examiner", "NGƯỜI THỰC HIỆN", LAB_OR_DOCTOR),),
    )
)


def get(code: str) -> FormType:
    return REGISTRY[code]


def choices_for(kind: str) -> list[tuple[str, str]]:
    return [(ft.code, ft.title) for ft in REGISTRY.values() if kind in ft.kinds and ft.manual]
