"""Writes to the patient registry. Each runs in a transaction with its audit event."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from benhan.accounts.models import Counter
from benhan.audit.chain import Actor, record
from benhan.patients.models import Patient

EDITABLE_FIELDS = (
    "full_name", "birth_year", "birth_date", "sex", "cccd", "insurance_number",
    "insurance_valid_from", "insurance_valid_to", "insurance_facility_code", "phone",
    "address", "province_code", "commune_code", "ethnicity", "occupation",
    "emergency_name", "emergency_relation", "emergency_phone",
)  # fmt: skip


def next_mrn(facility) -> str:
    """Two digits of the registration year, then a per-facility, per-year sequence."""
    year = timezone.localdate().year % 100
    return f"{year:02d}{Counter.next_value(facility, f'mrn-{year:02d}'):06d}"


@transaction.atomic
def do_register_patient(actor: Actor, fields: dict[str, Any]) -> Patient:
    user = actor.user
    patient = Patient(facility_id=user.facility_id, created_by=user)
    for name in EDITABLE_FIELDS:
        setattr(patient, name, fields.get(name, getattr(patient, name)))
    patient.mrn = next_mrn(user.facility)
    patient.save(force_insert=True)
    record(actor, "patient.register", obj=patient, patient=patient, detail={"mrn": patient.mrn})
    return patient


@transaction.atomic
def do_update_patient(actor: Actor, patient: Patient, fields: dict[str, Any]) -> list[str]:
    """Change identity data; the audit event keeps old and new values."""
    changed, old, new = [], {}, {}
    for name in EDITABLE_FIELDS:
        if name in fields and fields[name] != getattr(patient, name):
            old[name] = getattr(patient, name)
            new[name] = fields[name]
            setattr(patient, name, fields[name])
            changed.append(name)
    if changed:
        patient.save(update_fields=[*changed, "updated_at"])
        record(
            actor, "patient.update", obj=patient, patient=patient, detail={"old": old, "new": new}
        )
    return changed
