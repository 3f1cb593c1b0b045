"""Clinical writes on encounters. Each runs in a transaction with its audit event."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from benhan.audit.chain import Actor, record
from benhan.encounters.models import (
    Diagnosis,
    Encounter,
    EncounterKind,
    EncounterStatus,
    Icd10Code,
    Stay,
)

# Clocks on clinic PCs drift; allow entries this far in the future.
_CLOCK_SLACK = timedelta(minutes=5)


def _not_future(when: datetime) -> None:
    if when > timezone.now() + _CLOCK_SLACK:
        raise ValidationError(_("The time cannot be in the future."))


@transaction.atomic
def do_open_encounter(
    actor: Actor,
    patient,
    *,
    kind: str,
    department,
    attending,
    reason: str,
    started_at: datetime,
    source: Encounter | None = None,
) -> Encounter:
    _not_future(started_at)
    if kind == EncounterKind.INPATIENT:
        if not department.has_beds:
            raise ValidationError(_("%(dept)s does not admit inpatients.") % {"dept": department})
        # Lock the patient's row so two admissions cannot both pass this check.
        type(patient).objects.select_for_update().filter(pk=patient.pk).first()
        if Encounter.objects.filter(
            patient=patient, kind=EncounterKind.INPATIENT, status=EncounterStatus.OPEN
        ).exists():
            raise ValidationError(_("This patient is already admitted."))
    if source is not None and started_at < source.started_at:
        raise ValidationError(_("The admission cannot start before the visit it comes from."))
    encounter = Encounter.objects.create(
        facility_id=patient.facility_id,
        patient=patient,
        kind=kind,
        department=department,
        attending=attending,
        started_at=started_at,
        reason=reason,
        source=source,
        created_by=actor.user,
    )
    Stay.objects.create(
        encounter=encounter, department=department, started_at=started_at, attending=attending
    )
    record(
        actor,
        f"encounter.open.{kind}",
        obj=encounter,
        patient=patient,
        detail={"department": department.code, "started_at": started_at},
    )
    return encounter


@transaction.atomic
def do_transfer(
    actor: Actor, encounter: Encounter, *, department, attending, at: datetime, note: str = ""
) -> Stay:
    encounter = Encounter.objects.select_for_update().get(pk=encounter.pk)
    if not encounter.is_open:
        raise ValidationError(_("A finished encounter cannot be transferred."))
    if department.pk == encounter.department_id:
        raise ValidationError(_("The patient is already in this department."))
    if encounter.kind == EncounterKind.INPATIENT and not department.has_beds:
        raise ValidationError(_("%(dept)s does not admit inpatients.") % {"dept": department})
    _not_future(at)
    current = encounter.stays.filter(ended_at__isnull=True).get()
    if at < current.started_at:
        raise ValidationError(
            _("The transfer cannot be before the patient arrived in %(dept)s.")
            % {"dept": current.department}
        )
    current.ended_at = at
    current.save(update_fields=["ended_at"])
    stay = Stay.objects.create(
        encounter=encounter, department=department, started_at=at, attending=attending, note=note
    )
    old = {"department": encounter.department.code, "attending": encounter.attending_id}
    encounter.department = department
    encounter.attending = attending
    encounter.save(update_fields=["department", "attending"])
    record(
        actor,
        "encounter.transfer",
        obj=encounter,
        patient=encounter.patient,
        detail={
            "old": old,
            "new": {"department": department.code, "attending": getattr(attending, "pk", None)},
            "at": at,
            "note": note,
        },
    )
    return stay


@transaction.atomic
def do_discharge(
    actor: Actor,
    encounter: Encounter,
    *,
    ended_at: datetime,
    outcome: str,
    discharge_type: str,
    note: str = "",
) -> Encounter:
    encounter = Encounter.objects.select_for_update().get(pk=encounter.pk)
    if not encounter.is_open:
        raise ValidationError(_("This encounter has already ended."))
    _not_future(ended_at)
    current = encounter.stays.filter(ended_at__isnull=True).get()
    if ended_at < encounter.started_at or ended_at < current.started_at:
        raise ValidationError(
            _("The discharge cannot be before the admission or the last transfer.")
        )
    if encounter.main_diagnosis is None:
        raise ValidationError(_("Record the main diagnosis before discharge."))
    current.ended_at = ended_at
    current.save(update_fields=["ended_at"])
    encounter.status = EncounterStatus.FINISHED
    encounter.ended_at = ended_at
    encounter.discharge_outcome = outcome
    encounter.discharge_type = discharge_type
    encounter.discharge_note = note
    encounter.save(
        update_fields=[
            "status",
            "ended_at",
            "discharge_outcome",
            "discharge_type",
            "discharge_note",
        ]
    )
    record(
        actor,
        "encounter.discharge",
        obj=encounter,
        patient=encounter.patient,
        detail={"ended_at": ended_at, "outcome": outcome, "type": discharge_type},
    )
    return encounter


@transaction.atomic
def do_set_diagnoses(
    actor: Actor, encounter: Encounter, *, main: Icd10Code, secondary: list[Icd10Code]
) -> bool:
    """Make the active diagnoses equal to (main, secondary). Replaced ones are retired."""
    encounter = Encounter.objects.select_for_update().get(pk=encounter.pk)
    now = timezone.now()
    wanted = {(main.code, True)} | {(c.code, False) for c in secondary if c.code != main.code}
    active = {
        (d.code_id, d.is_main): d for d in encounter.diagnoses.filter(retired_at__isnull=True)
    }
    retire = [d for key, d in active.items() if key not in wanted]
    add = [key for key in wanted if key not in active]
    if not retire and not add:
        return False
    for d in retire:
        d.retired_at, d.retired_by = now, actor.user
        d.save(update_fields=["retired_at", "retired_by"])
    for code, is_main in sorted(add, key=lambda k: (not k[1], k[0])):
        Diagnosis.objects.create(
            encounter=encounter,
            code_id=code,
            is_main=is_main,
            recorded_at=now,
            recorded_by=actor.user,
        )
    record(
        actor,
        "encounter.diagnose",
        obj=encounter,
        patient=encounter.patient,
        detail={
            "old": sorted(f"{c}{'*' if m else ''}" for c, m in active),
            "new": sorted(f"{c}{'*' if m else ''}" for c, m in wanted),
        },
    )
    return True
