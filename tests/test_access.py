"""Who may open which patient page: every role against every view, through HTTP.

The rules are in benhan/audit/access.py. `patient` is admitted to Khoa Nội, so
`doctor` and `nurse` care for them; `outsider_doctor` (Khoa Ngoại) and `lab_tech`
(Khoa Xét nghiệm) must break the glass; `other_facility_doctor` must not learn the
patient exists.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from benhan.audit.models import AuditEvent, BreakGlassGrant
from benhan.encounters.models import Diagnosis, Encounter, EncounterStatus
from benhan.patients.models import Patient

IP = "127.0.0.1"  # the test client's REMOTE_ADDR

OK, DENIED, GLASS, MISSING = 200, 403, "break-glass", 404

PERSONAS = (
    "doctor",
    "nurse",
    "lab_tech",
    "records_officer",
    "receptionist",
    "admin",
    "outsider_doctor",
    "other_facility_doctor",
)

URLS = {
    "patient_detail": lambda p, e: reverse("patients:detail", args=[p.pk]),
    "patient_edit": lambda p, e: reverse("patients:edit", args=[p.pk]),
    "encounter_detail": lambda p, e: reverse("encounters:detail", args=[e.pk]),
    "transfer": lambda p, e: reverse("encounters:transfer", args=[e.pk]),
    "discharge": lambda p, e: reverse("encounters:discharge", args=[e.pk]),
    "diagnoses": lambda p, e: reverse("encounters:diagnoses", args=[e.pk]),
    "open_encounter": lambda p, e: reverse("encounters:open", args=[p.pk]),
    "search": lambda p, e: reverse("patients:search") + "?q=nguyen",
    "register": lambda p, e: reverse("patients:register"),
    "audit": lambda p, e: reverse("audit:events"),
    "home": lambda p, e: reverse("core:home"),
}


def _row(*expected) -> dict:
    """The expected answers, in the order of PERSONAS."""
    return dict(zip(PERSONAS, expected, strict=True))


# fmt: off
EXPECTED = {
    #                          doctor nurse  lab    records receptn admin   outsider other
    "patient_detail":   _row(OK,    OK,    GLASS, OK,     OK,     DENIED, GLASS,   MISSING),
    "patient_edit":     _row(OK,    OK,    DENIED, DENIED, OK,    DENIED, GLASS,   MISSING),
    "encounter_detail": _row(OK,    OK,    GLASS, OK,     DENIED, DENIED, GLASS,   MISSING),
    "transfer":         _row(OK,    OK,    DENIED, DENIED, DENIED, DENIED, GLASS,  MISSING),
    "discharge":        _row(OK,    DENIED, DENIED, DENIED, DENIED, DENIED, GLASS, MISSING),
    "diagnoses":        _row(OK,    DENIED, DENIED, DENIED, DENIED, DENIED, GLASS, MISSING),
    # Opening a visit is how a patient comes under a department's care: identity only.
    "open_encounter":   _row(OK,    OK,    DENIED, DENIED, OK,     DENIED, OK,     MISSING),
    "search":           _row(OK,    OK,    OK,    OK,     OK,     DENIED, OK,      OK),
    "register":         _row(OK,    OK,    DENIED, DENIED, OK,    DENIED, OK,      OK),
    "audit":            _row(DENIED, DENIED, DENIED, DENIED, DENIED, OK,  DENIED,  DENIED),
    "home":             _row(OK,    OK,    OK,    OK,     OK,     OK,     OK,      OK),
}
# fmt: on

# The audit event each successful GET must write, for the patient.
AUDITED = {
    "patient_detail": "patient.view",
    "patient_edit": "patient.edit",
    "encounter_detail": "encounter.view",
    "transfer": "encounter.view",
    "discharge": "encounter.view",
    "diagnoses": "encounter.view",
    "open_encounter": "patient.view",
}

CASES = [(view, persona, row[persona]) for view, row in EXPECTED.items() for persona in PERSONAS]


def template_names(response) -> list[str]:
    return [t.name for t in response.templates]


def assert_break_glass(response, patient) -> None:
    assert response.status_code == 403
    assert "403_break_glass.html" in template_names(response)
    assert reverse("patients:break_glass", args=[patient.pk]) in response.content.decode()


@pytest.mark.parametrize(("view", "persona", "expected"), CASES)
def test_it_allows_and_refuses_each_role(
    view, persona, expected, request, patient, encounter, client_for
):
    """Each role gets the status in EXPECTED; every allowed patient page is audited
    with the actor, the action, the patient and the address."""
    user = request.getfixturevalue(persona)
    last_seq = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0

    r = client_for(user).get(URLS[view](patient, encounter))

    if expected == GLASS:
        assert_break_glass(r, patient)
    else:
        assert r.status_code == expected, r.content[:500]
        if expected == DENIED:
            assert "403_break_glass.html" not in template_names(r)
    new_events = AuditEvent.objects.filter(seq__gt=last_seq)
    if expected == OK and view in AUDITED:
        event = new_events.get(action=AUDITED[view])
        assert event.actor == user
        assert event.patient == patient
        assert event.ip == IP
        assert event.facility_id == user.facility_id
    if expected != OK:
        # A refusal reads nothing, but it is audited as such.
        assert not new_events.filter(patient=patient).exclude(action="access.denied").exists()
        if r.status_code == 403:
            assert new_events.filter(action="access.denied", actor=user).exists()


def test_it_redirects_anonymous_users_to_login(client_for, patient, encounter):
    """Every page needs a signed-in user; the login link brings them back."""
    client = client_for(None)
    for make_url in URLS.values():
        url = make_url(patient, encounter)
        r = client.get(url)
        assert r.status_code == 302, url
        assert r["Location"].startswith(reverse("accounts:login") + "?next="), url
    r = client.post(reverse("patients:break_glass", args=[patient.pk]), {"reason": "x" * 20})
    assert r.status_code == 302
    assert not BreakGlassGrant.objects.exists()
    assert not AuditEvent.objects.filter(action="patient.view").exists()


@pytest.mark.parametrize(
    ("view", "method"),
    [
        ("patient_detail", "POST"),
        ("patient_detail", "PUT"),
        ("patient_edit", "DELETE"),
        ("encounter_detail", "POST"),
        ("transfer", "PUT"),
        ("discharge", "DELETE"),
        ("diagnoses", "PATCH"),
        ("open_encounter", "PUT"),
        ("search", "POST"),
        ("register", "DELETE"),
        ("audit", "POST"),
        ("home", "POST"),
        ("break_glass", "GET"),
    ],
)
def test_it_refuses_wrong_methods(view, method, patient, encounter, doctor, client_for):
    """Pages answer only the methods they are for: 405 otherwise, with no side effect."""
    if view == "break_glass":
        url = reverse("patients:break_glass", args=[patient.pk])
    else:
        url = URLS[view](patient, encounter)
    r = client_for(doctor).generic(method, url)
    assert r.status_code == 405


# --- Writes refused ------------------------------------------------------------------


def _now_local() -> str:
    return timezone.localtime().strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def post_data(patient, khoa_noi, khoa_ngoai):
    return {
        "patient_edit": {
            "full_name": patient.full_name,
            "birth": "1985",
            "sex": "M",
            "cccd": patient.cccd,
            "phone": "0987000111",
        },
        "transfer": {"department": khoa_ngoai.pk, "at": _now_local()},
        "discharge": {"ended_at": _now_local(), "outcome": "1", "discharge_type": "1"},
        "diagnoses": {"main": "J18.9"},
        "open_encounter": {
            "kind": "outpatient",
            "department": khoa_noi.pk,
            "reason": "Khám lại",
            "started_at": _now_local(),
        },
        "register": {"full_name": "Lý Thị Mơ", "birth": "1990", "sex": "F"},
    }


WRITE_REFUSALS = [
    (view, persona, expected)
    for view in ("patient_edit", "transfer", "discharge", "diagnoses", "open_encounter", "register")
    for persona, expected in EXPECTED[view].items()
    if expected != OK
]


@pytest.mark.parametrize(("view", "persona", "expected"), WRITE_REFUSALS)
def test_it_refuses_writes(
    view, persona, expected, request, patient, encounter, post_data, client_for, icd10
):
    """A refused POST changes nothing: same patient, same encounter, no diagnosis."""
    user = request.getfixturevalue(persona)
    before = (Patient.objects.count(), Encounter.objects.count())

    r = client_for(user).post(URLS[view](patient, encounter), post_data[view])

    assert r.status_code == (403 if expected == GLASS else expected)
    patient.refresh_from_db()
    encounter.refresh_from_db()
    assert patient.phone == "0912345678"
    assert encounter.department.code == "NOI"
    assert encounter.status == EncounterStatus.OPEN
    assert not Diagnosis.objects.exists()
    assert (Patient.objects.count(), Encounter.objects.count()) == before


# --- Identity only, read only -----------------------------------------------------------


def test_it_shows_receptionist_identity_only(patient, diagnosis, receptionist, doctor, client_for):
    """The receptionist sees name and IDs but no diagnosis; the doctor sees the codes."""
    r = client_for(receptionist).get(reverse("patients:detail", args=[patient.pk]))
    assert r.status_code == 200
    html = r.content.decode()
    assert patient.full_name in html
    assert patient.mrn in html
    assert r.context["clinical"] is False
    assert "J18.9" not in html
    assert "E11.9" not in html
    assert "Sốt cao" not in html
    assert reverse("encounters:detail", args=[diagnosis.encounter_id]) not in html

    r = client_for(doctor).get(reverse("patients:detail", args=[patient.pk]))
    assert r.context["clinical"] is True
    assert "J18.9" in r.content.decode()


def test_it_refuses_receptionist_the_encounter_page(encounter, receptionist, client_for):
    """Reasons and diagnoses live on the encounter page: 403, no break-the-glass offer."""
    r = client_for(receptionist).get(reverse("encounters:detail", args=[encounter.pk]))
    assert r.status_code == 403
    assert "403_break_glass.html" not in template_names(r)
    assert "Sốt cao" not in r.content.decode()


def test_it_lets_records_officer_read_but_not_write(
    patient, encounter, diagnosis, records_officer, client_for
):
    """The records officer reads everything and is offered no write action."""
    client = client_for(records_officer)
    r = client.get(reverse("patients:detail", args=[patient.pk]))
    assert r.status_code == 200
    assert "J18.9" in r.content.decode()
    assert r.context["can_edit"] is False
    r = client.get(reverse("encounters:detail", args=[encounter.pk]))
    assert r.status_code == 200
    assert "Sốt cao ba ngày" in r.content.decode()
    for flag in ("can_diagnose", "can_transfer", "can_discharge", "can_admit"):
        assert r.context[flag] is False, flag


def test_it_refuses_admin_patient_data(patient, encounter, admin, client_for):
    """The administrator configures the system and reads no patient data."""
    client = client_for(admin)
    for view in ("patient_detail", "encounter_detail", "search", "patient_edit"):
        r = client.get(URLS[view](patient, encounter))
        assert r.status_code == 403, view
        assert patient.full_name not in r.content.decode()
    r = client.get(reverse("core:home"))
    assert r.status_code == 200
    assert patient.full_name not in r.content.decode()


def test_it_keeps_read_access_after_transfer_but_not_write(
    patient, encounter, doctor, outsider_doctor, khoa_ngoai, client_for
):
    """After a transfer to Ngoại, Nội's doctor still reads the record (it passed
    through Nội) but may no longer change it; Ngoại's doctor now may, without
    breaking the glass."""
    from benhan.audit.chain import Actor
    from benhan.encounters.actions import do_transfer

    do_transfer(
        Actor(doctor, IP), encounter, department=khoa_ngoai, attending=None, at=timezone.now()
    )
    client = client_for(doctor)
    assert client.get(reverse("encounters:detail", args=[encounter.pk])).status_code == 200
    r = client.get(reverse("encounters:diagnoses", args=[encounter.pk]))
    assert r.status_code == 403
    assert "403_break_glass.html" not in template_names(r)

    outsider = client_for(outsider_doctor)
    assert outsider.get(reverse("encounters:diagnoses", args=[encounter.pk])).status_code == 200


# --- Break the glass ----------------------------------------------------------------------

REASON = "Hội chẩn cấp cứu: bệnh nhân suy hô hấp"


def test_it_grants_access_after_break_glass(patient, encounter, outsider_doctor, client_for):
    """A reason of 10+ characters opens the record for BREAK_GLASS_HOURS; the grant,
    the reason and every page seen through it are in the audit log."""
    client = client_for(outsider_doctor)
    url = reverse("encounters:detail", args=[encounter.pk])
    assert_break_glass(client.get(url), patient)

    r = client.post(
        reverse("patients:break_glass", args=[patient.pk]), {"reason": REASON, "next": url}
    )

    assert r.status_code == 302
    assert r["Location"] == url
    grant = BreakGlassGrant.objects.get(user=outsider_doctor, patient=patient)
    assert grant.reason == REASON
    assert grant.expires_at > timezone.now() + timedelta(hours=7)
    event = AuditEvent.objects.get(action="breakglass")
    assert (event.actor, event.patient, event.reason, event.ip) == (
        outsider_doctor,
        patient,
        REASON,
        IP,
    )

    r = client.get(url)
    assert r.status_code == 200
    assert "Sốt cao ba ngày" in r.content.decode()
    view = AuditEvent.objects.filter(action="encounter.view").latest("seq")
    assert view.actor == outsider_doctor
    assert view.detail == {"break_glass": True}
    r = client.get(reverse("patients:detail", args=[patient.pk]))
    assert r.status_code == 200
    assert AuditEvent.objects.filter(action="patient.view").latest("seq").detail == {
        "break_glass": True
    }


@pytest.mark.parametrize("reason", ["", "cấp cứu", "   ngắn    ", "\n\n\n\n\n\n\n\n\n\n\n"])
def test_it_refuses_a_too_short_reason(reason, patient, outsider_doctor, client_for):
    """Under 10 characters (after trimming): refused, the form shown again, nothing granted."""
    client = client_for(outsider_doctor)
    r = client.post(reverse("patients:break_glass", args=[patient.pk]), {"reason": reason})
    assert r.status_code == 403
    assert "403_break_glass.html" in template_names(r)
    assert not BreakGlassGrant.objects.exists()
    assert not AuditEvent.objects.filter(action="breakglass").exists()
    assert client.get(reverse("patients:detail", args=[patient.pk])).status_code == 403


def test_it_expires_break_glass(patient, outsider_doctor, client_for):
    """An expired grant gives no access."""
    client = client_for(outsider_doctor)
    client.post(reverse("patients:break_glass", args=[patient.pk]), {"reason": REASON})
    BreakGlassGrant.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert_break_glass(client.get(reverse("patients:detail", args=[patient.pk])), patient)


@pytest.mark.parametrize("persona", ["records_officer", "receptionist", "admin"])
def test_it_refuses_break_glass_to_non_clinical_roles(persona, request, patient, client_for):
    """Only doctors, nurses and laboratory technicians may break the glass."""
    user = request.getfixturevalue(persona)
    r = client_for(user).post(
        reverse("patients:break_glass", args=[patient.pk]), {"reason": REASON}
    )
    assert r.status_code == 403
    assert not BreakGlassGrant.objects.exists()


def test_it_lets_lab_tech_break_the_glass(patient, lab_tech, client_for):
    """The laboratory is a clinical role and may break the glass like a doctor."""
    client = client_for(lab_tech)
    client.post(reverse("patients:break_glass", args=[patient.pk]), {"reason": REASON})
    assert client.get(reverse("patients:detail", args=[patient.pk])).status_code == 200


def test_it_hides_other_facility_patient_from_break_glass(
    other_patient, outsider_doctor, client_for
):
    """Another facility's patient is not found, even to break the glass."""
    r = client_for(outsider_doctor).post(
        reverse("patients:break_glass", args=[other_patient.pk]), {"reason": REASON}
    )
    assert r.status_code == 404
    assert not BreakGlassGrant.objects.exists()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:x"])
def test_it_ignores_an_offsite_next(target, patient, outsider_doctor, client_for):
    """The redirect after breaking the glass stays on this site."""
    r = client_for(outsider_doctor).post(
        reverse("patients:break_glass", args=[patient.pk]), {"reason": REASON, "next": target}
    )
    assert r.status_code == 302
    assert r["Location"] == reverse("patients:detail", args=[patient.pk])


def test_it_returns_404_for_other_facility_pages(other_patient, doctor, client_for):
    """Another facility's patient and encounter look exactly like missing ones."""
    client = client_for(doctor)
    enc = other_patient.encounters.get()
    for url in (
        reverse("patients:detail", args=[other_patient.pk]),
        reverse("patients:edit", args=[other_patient.pk]),
        reverse("encounters:detail", args=[enc.pk]),
        reverse("encounters:open", args=[other_patient.pk]),
        reverse("patients:detail", args=[other_patient.pk + 1000]),
    ):
        assert client.get(url).status_code == 404, url
