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
    kind: str = "text"  # text | textarea | date | datetime | number | choice | lines
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    # Filled from the patient/encounter when the document is created (see prefill.py).
    prefill: str = ""
    help: str = ""
    max_length: int = 2000


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


def get(code: str) -> FormType:
    return REGISTRY[code]


def choices_for(kind: str) -> list[tuple[str, str]]:
    return [(ft.code, ft.title) for ft in REGISTRY.values() if kind in ft.kinds]
