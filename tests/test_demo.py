"""`benhan demo`: the seeded clinic is valid by the product's own rules, and seeding twice
changes nothing."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import date
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.utils import timezone

from benhan.accounts.models import Department, Facility, Role, User
from benhan.audit import chain
from benhan.audit.models import AuditEvent
from benhan.core import demo
from benhan.encounters.models import Encounter, EncounterKind, EncounterStatus
from benhan.lib import ids
from benhan.patients.models import Patient
from benhan.records import stats
from benhan.records.models import Document, DocumentStatus, DocumentVersion, Record
from benhan.records.storage import default_store
from benhan.signing import pki
from benhan.signing.verify import verify_pdf

pytestmark = pytest.mark.django_db

PATIENTS, ENCOUNTERS, RECORDS = 30, 60, 12


@pytest.fixture(autouse=True)
def _codes(icd10):
    """The ICD-10 list the demo draws diagnoses from (reloaded by the fixture if a
    transactional test emptied the tables before on this worker)."""


@pytest.fixture(autouse=True)
def _signing_settings(settings, tmp_path):
    settings.SIGNING_PIN_KDF_COST = 10  # the real cost (15) takes ~80 ms per PIN
    settings.TSA_URL = ""
    settings.DOCUMENTS_DIR = tmp_path / "documents"


def run_demo(**options) -> str:
    out, err = StringIO(), StringIO()
    options = {"patients": PATIENTS, "encounters": ENCOUNTERS, "records": RECORDS, **options}
    call_command("demo", stdout=out, stderr=err, **options)
    assert "patients" in err.getvalue() or "already seeded" in out.getvalue()
    return out.getvalue()


def test_seeds_a_valid_clinic():
    output = run_demo(records=0)  # records: see the next test

    facility = Facility.objects.get(code=demo.FACILITY_CODE)
    assert Department.objects.filter(facility=facility).count() >= 7
    staff = User.objects.filter(facility=facility)
    assert {u.role for u in staff} == set(Role.values)
    admin = staff.get(username="admin")
    assert admin.is_staff and not admin.is_superuser
    assert admin.check_password(demo.PASSWORD)
    for user in staff:
        assert user.username in output

    patients = Patient.objects.filter(facility=facility)
    assert patients.count() == PATIENTS
    for p in patients:
        if p.cccd:
            ids.check_cccd_matches(ids.parse_cccd(p.cccd), p.birth_year, p.sex)
        if p.insurance_number:
            assert ids.parse_insurance_card(p.insurance_number).number == p.insurance_number
            assert p.insurance_valid_from <= p.insurance_valid_to
            ids.parse_facility_code(p.insurance_facility_code)
        for phone in (p.phone, p.emergency_phone):
            if phone:
                assert ids.parse_phone(phone) == phone
        assert p.birth_date is None or p.birth_date.year == p.birth_year

    encounters = Encounter.objects.filter(facility=facility).prefetch_related("diagnoses")
    assert encounters.count() == ENCOUNTERS
    now = timezone.now()
    for e in encounters:
        assert e.started_at <= now
        if e.kind == EncounterKind.INPATIENT:
            assert e.department.has_beds
        if e.status == EncounterStatus.FINISHED:
            assert e.main_diagnosis is not None
            assert e.started_at <= e.ended_at <= now
            assert e.discharge_outcome and e.discharge_type
            last_stay = e.stays.order_by("started_at").last()
            assert last_stay.started_at <= e.ended_at
        if e.patient.birth_date:
            assert e.started_at.date() >= e.patient.birth_date
    # Never two open admissions for one patient.
    open_admissions = (
        encounters.filter(kind=EncounterKind.INPATIENT, status=EncounterStatus.OPEN)
        .values("patient")
        .annotate(n=Count("id"))
    )
    assert open_admissions.exists()
    assert all(row["n"] == 1 for row in open_admissions)
    # Each stay ends where the next begins; only the last one of an open encounter is open.
    for e in encounters:
        stays = list(e.stays.order_by("started_at", "id"))
        for a, b in itertools.pairwise(stays):
            assert a.ended_at == b.started_at
        assert (stays[-1].ended_at is None) == (e.status == EncounterStatus.OPEN)

    checked, problems = chain.verify()
    assert checked > PATIENTS + ENCOUNTERS
    assert problems == []


def record_state(rec: Record) -> str:
    """The demo's state of one record, from its main document (not the consent form)."""
    if rec.status == "closed":
        return "stored"
    doc = next(d for d in rec.documents.all() if d.form_type != "surgical_consent")
    if doc.status == DocumentStatus.COMPLETED and doc.current_version().signatures.exists():
        return "partially signed"
    return str(doc.status)


def test_seeds_records_in_every_state_through_the_signing_path():
    output = run_demo()
    assert demo.SIGNING_PIN in output

    facility = Facility.objects.get(code=demo.FACILITY_CODE)
    records = list(Record.objects.filter(facility=facility).prefetch_related("documents"))
    assert len(records) == RECORDS
    states = Counter(record_state(r) for r in records)
    assert set(states) == {"draft", "completed", "partially signed", "signed", "sealed", "stored"}
    assert f"{states['stored']} stored" in output
    # Every doctor and nurse can sign with the demo PIN.
    for u in User.objects.filter(facility=facility, role__in=[Role.DOCTOR, Role.NURSE]):
        assert pki.active_credential(u) is not None

    # The dashboard counts what is there, spread over more than one month.
    s = stats.compute(facility.pk)
    assert s.total["created"] == RECORDS
    assert s.total["stored"] == states["stored"]
    assert s.total["sealed"] == states["stored"] + states["sealed"]
    assert s.total["signed"] == s.total["sealed"] + states["signed"]
    assert (
        s.total["completed"] == s.total["signed"] + states["partially signed"] + states["completed"]
    )
    assert len(s.by_month) > 1
    assert len(s.by_department) > 1
    for r in records:
        assert r.created_at >= r.encounter.started_at

    # Sealed documents verify; an amendment made version 2, signed and sealed again.
    sealed = Document.objects.filter(facility=facility, status=DocumentStatus.SEALED)
    assert sealed.exists()
    report = verify_pdf(default_store().get(sealed.first().current_version().current_sha256))
    assert report.ok, report.as_dict()
    amended = DocumentVersion.objects.filter(document__facility=facility, version=2)
    assert amended.exists()
    assert all(v.amendment_reason and v.sealed_at for v in amended)

    assert chain.verify()[1] == []


def test_second_run_changes_nothing():
    run_demo()
    before = (
        Patient.objects.count(),
        Encounter.objects.count(),
        User.objects.count(),
        Department.objects.count(),
        AuditEvent.objects.count(),
        Record.objects.count(),
        DocumentVersion.objects.count(),
    )
    output = run_demo(patients=50, encounters=100, records=20)
    assert "already seeded" in output
    assert "bs.noi" in output
    after = (
        Patient.objects.count(),
        Encounter.objects.count(),
        User.objects.count(),
        Department.objects.count(),
        AuditEvent.objects.count(),
        Record.objects.count(),
        DocumentVersion.objects.count(),
    )
    assert after == before
    assert chain.verify()[1] == []


def test_refuses_a_database_with_another_facility():
    Facility.objects.create(code="79001", name="Trung tâm Y tế huyện Củ Chi", province_code="79")
    with pytest.raises(CommandError, match="another facility"):
        run_demo()
    assert not Patient.objects.exists()


def test_same_seed_same_people():
    def people(seed: int) -> list[dict]:
        gen = demo.PeopleGenerator(random.Random(seed), date(2026, 3, 15))
        return [gen.person().fields for _ in range(40)]

    assert people(7) == people(7)
    assert people(7) != people(8)
