"""The one door to patient data.

Every view that reads or writes patient data fetches it through a function here.
Each function decides whether the user's role and departments allow the action,
writes the audit event, and returns the object, or raises PermissionDenied.

The rules (see docs/access.md):

* Staff see only their own facility's patients.
* Receptionists search, register and edit identity data and open visits; they do
  not read clinical content (reasons, diagnoses).
* Doctors, nurses and laboratory technicians read the clinical content of patients
  with an encounter that passed through one of their departments, and write to
  encounters currently in one of their departments. Anyone else's patient needs
  "break the glass": a typed reason, audited, valid for BREAK_GLASS_HOURS.
* Records officers read every patient of the facility; they write nothing clinical.
* Administrators configure the system; they do not read patient data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from benhan.accounts.models import CLINICAL_ROLES, Role, User
from benhan.audit import chain
from benhan.audit.models import BreakGlassGrant
from benhan.encounters.models import Encounter, Stay
from benhan.patients.models import Patient

D, N, L, RO, RC = Role.DOCTOR, Role.NURSE, Role.LAB_TECH, Role.RECORDS_OFFICER, Role.RECEPTIONIST

# Which roles may attempt each action at all. Department rules come on top.
ACTION_ROLES: dict[str, frozenset[str]] = {
    "patient.search": frozenset({D, N, L, RO, RC}),
    "patient.register": frozenset({D, N, RC}),
    "patient.view": frozenset({D, N, L, RO, RC}),  # identity for RC, clinical for the others
    "patient.edit": frozenset({D, N, RC}),
    "encounter.open": frozenset({D, N, RC}),  # outpatient and emergency visits
    "encounter.admit": frozenset({D, N}),
    "encounter.view": frozenset({D, N, L, RO}),
    "encounter.transfer": frozenset({D, N}),
    "encounter.discharge": frozenset({D}),
    "encounter.diagnose": frozenset({D}),
    "worklist.view": frozenset({D, N, L, RO, RC}),
    "breakglass": frozenset(CLINICAL_ROLES),
    "record.view": frozenset({D, N, L, RO}),
    "document.edit": frozenset({D, N}),  # create, fill in, complete, amend
    "document.sign": frozenset({D, N}),
    "document.seal": frozenset({RO}),
    "record.close": frozenset({RO}),
    "records.dashboard": frozenset({D, RO}),
    "scan.upload": frozenset({D, N, RO}),
    "lab.order": frozenset({D}),
    "lab.collect": frozenset({N, L}),
    "lab.work": frozenset({L}),  # review, correct, repeat, enter, sign, imaging, unmatched
    "lab.verify": frozenset({L, D}),  # the second verifier, for tests that need one
    "lab.results": frozenset({D, N, L, RO}),
    "lab.inbox": frozenset({D, N}),
}


BREAK_GLASS_REASON_MAX = 1000

# Documents the laboratory writes (benhan.lab): its technicians may read them.
LAB_FORMS = frozenset({"lab_report", "lab_report_verified", "imaging_report"})


class Refused(PermissionDenied):
    """Refused access to a known patient's data (the 403 handler audits it)."""

    def __init__(self, message: str, patient: Patient | None = None):
        super().__init__(message)
        self.patient = patient


class NeedsBreakGlass(Refused):
    """Refused, but the user may break the glass for this patient."""

    def __init__(self, patient: Patient):
        super().__init__(_("This patient is not under the care of your departments."), patient)


def audit(
    request: HttpRequest,
    action: str,
    *,
    obj: Any = None,
    patient: Patient | None = None,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Write an audit event for the request's user."""
    chain.record(
        chain.Actor.from_request(request),
        action,
        obj=obj,
        patient=patient,
        reason=reason,
        detail=detail,
    )


def require_role(user: User, action: str) -> None:
    if not user.is_authenticated or user.facility_id is None:
        raise PermissionDenied(_("You are not signed in to a facility."))
    if user.role not in ACTION_ROLES[action]:
        raise PermissionDenied(_("Your role does not allow this."))


def allowed(user: User, action: str) -> bool:
    return (
        user.is_authenticated and user.facility_id is not None and user.role in ACTION_ROLES[action]
    )


# --- Decisions ---------------------------------------------------------------------


@dataclass(frozen=True)
class PatientAccess:
    identity: bool = False  # name, IDs, contact, list of encounters
    clinical: bool = False  # reasons, diagnoses, records
    break_glass: bool = False  # clinical access only through a break-the-glass grant


def _in_departments(user: User, patient: Patient) -> bool:
    return Stay.objects.filter(
        encounter__patient=patient, department_id__in=user.department_ids()
    ).exists()


def _active_grant(user: User, patient: Patient) -> bool:
    return BreakGlassGrant.objects.filter(
        user=user, patient=patient, expires_at__gt=timezone.now()
    ).exists()


def patient_access(user: User, patient: Patient) -> PatientAccess:
    if not user.is_authenticated or user.facility_id != patient.facility_id:
        return PatientAccess()
    if user.role == Role.RECEPTIONIST:
        return PatientAccess(identity=True)
    if user.role == Role.RECORDS_OFFICER:
        return PatientAccess(identity=True, clinical=True)
    if user.role in CLINICAL_ROLES:
        if _in_departments(user, patient):
            return PatientAccess(identity=True, clinical=True)
        if _active_grant(user, patient):
            return PatientAccess(identity=True, clinical=True, break_glass=True)
    return PatientAccess()


def _encounter_in_departments(user: User, encounter: Encounter) -> bool:
    return encounter.department_id in user.department_ids()


# --- Fetching ---------------------------------------------------------------------


def _patient_or_404(user: User, pk: int) -> Patient:
    from django.shortcuts import get_object_or_404

    # Another facility's patient is indistinguishable from a missing one.
    return get_object_or_404(Patient, pk=pk, facility_id=user.facility_id)


def get_patient(request: HttpRequest, pk: int, action: str = "patient.view") -> Patient:
    """A patient the user may see (action 'patient.view') or edit ('patient.edit')."""
    user = request.user
    require_role(user, action)
    patient = _patient_or_404(user, pk)
    access = patient_access(user, patient)
    if not access.identity:
        if allowed(user, "breakglass"):
            raise NeedsBreakGlass(patient)
        raise Refused(_("You may not see this patient."), patient)
    audit(
        request,
        action,
        obj=patient,
        patient=patient,
        detail={"break_glass": True} if access.break_glass else None,
    )
    patient.access = access
    return patient


def get_encounter(request: HttpRequest, pk: int, action: str = "encounter.view") -> Encounter:
    """An encounter for viewing, or for a write action on it.

    Writes need the encounter to be open and currently in one of the user's
    departments (or a break-the-glass grant for the patient).
    """
    from django.shortcuts import get_object_or_404

    user = request.user
    require_role(user, action)
    encounter = get_object_or_404(
        Encounter.objects.select_related("patient", "department", "attending"),
        pk=pk,
        facility_id=user.facility_id,
    )
    patient = encounter.patient
    access = patient_access(user, patient)
    if not access.clinical:
        if allowed(user, "breakglass"):
            raise NeedsBreakGlass(patient)
        raise Refused(_("You may not see this patient's clinical record."), patient)
    if action != "encounter.view":
        if user.role == Role.RECORDS_OFFICER:
            raise Refused(_("Your role does not allow this."), patient)
        if not (_encounter_in_departments(user, encounter) or access.break_glass):
            raise Refused(
                _("The patient is in %(dept)s now; only its staff may change this encounter.")
                % {"dept": encounter.department.name},
                patient,
            )
        if not encounter.is_open:
            raise Refused(_("This encounter has ended and can no longer be changed."), patient)
    # A write form shown by GET displays the record too: audit it as a view. The write
    # itself is audited by its do_* action.
    if action == "encounter.view" or request.method == "GET":
        detail: dict[str, Any] = {"break_glass": True} if access.break_glass else {}
        if action != "encounter.view":
            detail["form"] = action
        audit(request, "encounter.view", obj=encounter, patient=patient, detail=detail or None)
    encounter.access = access
    return encounter


def patient_for_new_encounter(request: HttpRequest, pk: int, action: str) -> Patient:
    """The patient for opening a visit or an admission.

    Opening a visit is how a patient comes under a department's care, so it needs
    identity access only; the department chosen must be one the user works in,
    except for receptionists, who open visits for every department.
    """
    user = request.user
    require_role(user, action)
    patient = _patient_or_404(user, pk)
    if user.role != Role.RECEPTIONIST and not user.department_ids():
        raise PermissionDenied(_("You are not a member of any department."))
    if request.method == "GET":
        # The form shows the patient's identity: audit the view.
        audit(request, "patient.view", obj=patient, patient=patient, detail={"form": action})
    return patient


def check_department_for_new_encounter(user: User, department_id: int) -> None:
    if user.role == Role.RECEPTIONIST:
        return
    if department_id not in user.department_ids():
        raise PermissionDenied(_("You may only open encounters in your own departments."))


@transaction.atomic
def break_glass(request: HttpRequest, patient: Patient, reason: str) -> BreakGlassGrant:
    """Grant the user temporary access to a patient, with the reason audited."""
    user = request.user
    require_role(user, "breakglass")
    if patient.facility_id != user.facility_id:
        raise PermissionDenied
    reason = reason.strip()
    if len(reason) < 10:
        raise ValueError(_("Give the reason in at least 10 characters."))
    if len(reason) > BREAK_GLASS_REASON_MAX:
        raise ValueError(
            _("Keep the reason under %(n)s characters.") % {"n": BREAK_GLASS_REASON_MAX}
        )
    now = timezone.now()
    grant = BreakGlassGrant.objects.create(
        facility_id=user.facility_id,
        user=user,
        patient=patient,
        reason=reason,
        created_at=now,
        expires_at=now + timedelta(hours=settings.BREAK_GLASS_HOURS),
    )
    audit(
        request,
        "breakglass",
        obj=grant,
        patient=patient,
        reason=reason,
        detail={"expires_at": grant.expires_at},
    )
    return grant


# --- Records ------------------------------------------------------------------------


def _encounter_passed_through(user: User, encounter: Encounter) -> bool:
    """Documents are written during and after the stay (a discharge paper), so the
    test is whether the encounter passed through one of the user's departments."""
    return encounter.stays.filter(department_id__in=user.department_ids()).exists()


def get_document(request: HttpRequest, pk: int, action: str = "record.view"):
    """A record document for viewing, or for a write action on it."""
    from django.shortcuts import get_object_or_404

    from benhan.records.models import Document

    user = request.user
    require_role(user, action)
    doc = get_object_or_404(
        Document.objects.select_related(
            "record__encounter__patient", "record__encounter__department", "facility"
        ),
        pk=pk,
        facility_id=user.facility_id,
    )
    encounter = doc.record.encounter
    patient = encounter.patient
    access = patient_access(user, patient)
    if user.role == Role.LAB_TECH and doc.form_type in LAB_FORMS and action == "record.view":
        # The laboratory reads the reports it writes, for every department (as it
        # reads their orders and results), not the rest of the record.
        access = PatientAccess(identity=True, clinical=True)
    if not access.clinical:
        if allowed(user, "breakglass"):
            raise NeedsBreakGlass(patient)
        raise Refused(_("You may not see this patient's clinical record."), patient)
    if (
        action in ("document.edit", "document.sign")
        and not access.break_glass
        and not _encounter_passed_through(user, encounter)
    ):
        raise Refused(
            _("Only staff of the departments that treated the patient may do this."), patient
        )
    if request.method == "GET":
        audit(
            request,
            "document.view",
            obj=doc,
            patient=patient,
            detail={"break_glass": True} if access.break_glass else None,
        )
    doc.access = access
    return doc


def get_record_for_encounter(request: HttpRequest, encounter_pk: int, action: str = "record.view"):
    """The encounter whose record is shown or added to (the record may not exist yet)."""
    encounter = get_encounter(request, encounter_pk, "encounter.view")
    user = request.user
    require_role(user, action)
    if (
        action == "document.edit"
        and not encounter.access.break_glass
        and not _encounter_passed_through(user, encounter)
    ):
        raise Refused(
            _("Only staff of the departments that treated the patient may do this."),
            encounter.patient,
        )
    return encounter


# --- Links printed as QR codes (benhan.records.paper) --------------------------------


class LinkError(Exception):
    """A paper or patient-copy link that cannot be used: forged, expired, out of date."""

    def __init__(self, message: str, status: int = 400, document=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.document = document


def get_document_for_paper(request: HttpRequest, token: str, action: str = "scan.upload"):
    """The document (and printed version) a paper QR code names, for filing its paper.

    The token is checked first (forged → refused, expired → refused with a way on);
    then the usual door: same facility, role, the patient's department or a
    break-the-glass grant. Every refusal is audited.
    """
    from benhan.records.models import Document
    from benhan.records.paper import ExpiredTokenError, InvalidTokenError, read_paper_token

    user = request.user
    require_role(user, action)
    try:
        ref = read_paper_token(token)
    except ExpiredTokenError:
        ref = read_paper_token(token, max_age_days=0)
        doc = Document.objects.filter(pk=ref.document_id, facility_id=user.facility_id).first()
        if doc is not None and not patient_access(user, doc.record.encounter.patient).clinical:
            doc = None  # the way on is offered only to those who may open it
        audit(request, "paper.link_refused", detail={"why": "expired", "document": ref.document_id})
        raise LinkError(
            _("This QR code has expired. Open the document from the patient's record, print "
              "it again and have the new copy signed; or file this paper from the document "
              "page."), status=410, document=doc,
        ) from None  # fmt: skip
    except InvalidTokenError:
        audit(request, "paper.link_refused", detail={"why": "invalid", "token": token[:80]})
        raise LinkError(
            _("This QR code was not made by this system, or it is damaged. Open the "
              "document from the patient's record instead.")
        ) from None  # fmt: skip
    found = Document.objects.filter(pk=ref.document_id).only("facility_id").first()
    if found is None:
        raise LinkError(_("This document does not exist."), status=404)
    if found.facility_id != user.facility_id:
        audit(request, "paper.link_refused", detail={"why": "facility", "document": found.pk})
        raise Refused(_("This QR code belongs to a document of another facility."))
    return get_document(request, ref.document_id, action), ref.version


def get_document_for_patient_copy(request: HttpRequest, token: str):
    """The signed version a patient's copy link names; no account needed, audited."""
    from benhan.records.models import Document
    from benhan.records.paper import ExpiredTokenError, InvalidTokenError, read_copy_token

    try:
        pk, version_no = read_copy_token(token)
    except ExpiredTokenError:
        raise LinkError(
            _("This download link has expired. Ask the clinic for a new copy."), status=410
        ) from None
    except InvalidTokenError:
        raise LinkError(_("This download link is not valid."), status=404) from None
    doc = Document.objects.select_related("record__encounter__patient").filter(pk=pk).first()
    version = doc.versions.filter(version=version_no).first() if doc else None
    if version is None:
        raise LinkError(_("This download link is not valid."), status=404)
    audit(request, "document.patient_copy", obj=doc, patient=doc.record.encounter.patient,
          detail={"version": version_no, "sha256": version.current_sha256})  # fmt: skip
    return doc, version


# --- The laboratory ----------------------------------------------------------------
#
# The laboratory works for every department of its facility: its technicians see the
# orders, specimens and results of any patient of the facility (identity, the tests,
# the clinical note of the order), each view audited, but not the rest of the record.
# Doctors and nurses see them under the usual rules (the patient's departments, or
# break the glass).


def _lab_door(request: HttpRequest, obj: Any, patient: Patient, action: str) -> None:
    user = request.user
    require_role(user, action)
    if user.role not in (Role.LAB_TECH, Role.RECORDS_OFFICER):
        access = patient_access(user, patient)
        if not access.clinical:
            if allowed(user, "breakglass"):
                raise NeedsBreakGlass(patient)
            raise Refused(_("You may not see this patient's clinical record."), patient)
    if request.method == "GET":
        audit(request, "lab.view", obj=obj, patient=patient)


def get_specimen(request: HttpRequest, pk: int, action: str = "lab.results"):
    from django.shortcuts import get_object_or_404

    from benhan.lab.models import Specimen

    require_role(request.user, action)
    specimen = get_object_or_404(
        Specimen.objects.select_related("order__encounter__patient", "order__department",
                                        "order__ordered_by", "report"),
        pk=pk, facility_id=request.user.facility_id,
    )  # fmt: skip
    _lab_door(request, specimen, specimen.order.encounter.patient, action)
    return specimen


def get_order(request: HttpRequest, pk: int, action: str = "lab.results"):
    from django.shortcuts import get_object_or_404

    from benhan.lab.models import LabOrder

    require_role(request.user, action)
    order = get_object_or_404(
        LabOrder.objects.select_related("encounter__patient", "department", "ordered_by"),
        pk=pk, facility_id=request.user.facility_id,
    )  # fmt: skip
    _lab_door(request, order, order.encounter.patient, action)
    return order


def lab_worklist(request: HttpRequest, name: str, action: str = "lab.work") -> None:
    """The laboratory's lists (to collect, to review, unmatched): audited as a view."""
    require_role(request.user, action)
    audit(request, "worklist.view", detail={"list": f"lab.{name}"})
