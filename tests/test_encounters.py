"""Visits, admissions, transfers, discharge and ICD-10 diagnoses."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from benhan.audit.chain import Actor
from benhan.audit.models import AuditEvent
from benhan.encounters import actions
from benhan.encounters.forms import normalise_code
from benhan.encounters.icd10 import search_codes
from benhan.encounters.models import (
    Diagnosis,
    Encounter,
    EncounterStatus,
    Icd10Code,
    Stay,
)

IP = "127.0.0.1"


def local(dt: datetime) -> str:
    """The datetime-local value the browser sends, in the clinic's time zone."""
    return timezone.localtime(dt).strftime("%Y-%m-%dT%H:%M")


def minute(dt: datetime) -> datetime:
    return dt.replace(second=0, microsecond=0)


@pytest.fixture
def doc(doctor, client_for):
    """The Nội doctor's client, with English messages."""
    client = client_for(doctor)
    client.cookies["django_language"] = "en"
    return client


def form_errors(response) -> str:
    form = response.context["form"]
    return " ".join(str(e) for errs in form.errors.values() for e in errs)


# --- Opening encounters -------------------------------------------------------------------


@pytest.fixture
def walk_in(register_patient):
    """A registered patient with no encounter yet."""
    return register_patient(full_name="Lê Thị Hoa", birth_year=1990, sex="F")


@pytest.mark.parametrize("kind", ["outpatient", "emergency", "inpatient"])
def test_it_opens_each_kind_of_encounter(kind, walk_in, doctor, khoa_noi, doc):
    """The doctor opens a visit, an emergency or an admission in their department: one
    encounter, one open stay, an audit event, and the encounter page next."""
    started = minute(timezone.now() - timedelta(minutes=30))
    r = doc.post(
        reverse("encounters:open", args=[walk_in.pk]),
        {
            "kind": kind,
            "department": khoa_noi.pk,
            "attending": doctor.pk,
            "reason": "Đau bụng, sốt",
            "started_at": local(started),
        },
    )
    enc = Encounter.objects.get(patient=walk_in)
    assert r.status_code == 302
    assert r["Location"] == reverse("encounters:detail", args=[enc.pk])
    assert (enc.kind, enc.status, enc.department, enc.attending) == (
        kind,
        EncounterStatus.OPEN,
        khoa_noi,
        doctor,
    )
    assert enc.started_at == started
    assert enc.created_by == doctor
    stay = Stay.objects.get(encounter=enc)
    assert (stay.department, stay.started_at, stay.ended_at) == (khoa_noi, started, None)
    event = AuditEvent.objects.get(action=f"encounter.open.{kind}")
    assert (event.actor, event.patient, event.ip) == (doctor, walk_in, IP)
    assert event.detail["department"] == "NOI"


def test_it_lets_the_receptionist_open_a_visit_anywhere(
    walk_in, receptionist, khoa_ngoai, client_for
):
    """Reception opens outpatient visits for any department and returns to the patient."""
    r = client_for(receptionist).post(
        reverse("encounters:open", args=[walk_in.pk]),
        {
            "kind": "outpatient",
            "department": khoa_ngoai.pk,
            "reason": "Khám vết thương",
            "started_at": local(timezone.now()),
        },
    )
    assert r.status_code == 302
    assert r["Location"] == reverse("patients:detail", args=[walk_in.pk])
    assert Encounter.objects.get(patient=walk_in).department == khoa_ngoai


def test_it_refuses_an_admission_by_the_receptionist(walk_in, receptionist, khoa_noi, client_for):
    """Admission is a clinical decision: the receptionist is not offered the choice."""
    r = client_for(receptionist).post(
        reverse("encounters:open", args=[walk_in.pk]),
        {
            "kind": "inpatient",
            "department": khoa_noi.pk,
            "reason": "Nhập viện",
            "started_at": local(timezone.now()),
        },
    )
    assert r.status_code == 422
    assert "kind" in r.context["form"].errors
    assert not Encounter.objects.exists()


def test_it_refuses_another_department_for_a_doctor(walk_in, khoa_ngoai, doc):
    """Clinical staff open encounters in their own departments only."""
    r = doc.post(
        reverse("encounters:open", args=[walk_in.pk]),
        {
            "kind": "outpatient",
            "department": khoa_ngoai.pk,
            "reason": "Khám",
            "started_at": local(timezone.now()),
        },
    )
    assert r.status_code == 422
    assert "department" in r.context["form"].errors
    assert not Encounter.objects.exists()


def test_it_refuses_an_admission_without_beds(walk_in, doctor, khoa_kham, doc):
    """Khoa Khám bệnh has no beds: no inpatient admission there."""
    doctor.departments.add(khoa_kham)
    r = doc.post(
        reverse("encounters:open", args=[walk_in.pk]),
        {
            "kind": "inpatient",
            "department": khoa_kham.pk,
            "reason": "Nhập viện",
            "started_at": local(timezone.now()),
        },
    )
    assert r.status_code == 422
    assert "does not admit inpatients" in form_errors(r)
    with pytest.raises(ValidationError):
        actions.do_open_encounter(
            Actor(doctor, IP),
            walk_in,
            kind="inpatient",
            department=khoa_kham,
            attending=None,
            reason="x",
            started_at=timezone.now(),
        )
    assert not Encounter.objects.exists()


def test_it_refuses_to_admit_twice(patient, khoa_noi, doc):
    """A patient already admitted cannot be admitted again until discharged."""
    r = doc.post(
        reverse("encounters:open", args=[patient.pk]),
        {
            "kind": "inpatient",
            "department": khoa_noi.pk,
            "reason": "Nhập viện lần hai",
            "started_at": local(timezone.now()),
        },
    )
    assert r.status_code == 422
    assert "already admitted" in form_errors(r)
    assert Encounter.objects.filter(patient=patient).count() == 1


def test_it_admits_again_after_discharge(patient, encounter, diagnosis, doctor, khoa_noi, admit):
    actions.do_discharge(
        Actor(doctor, IP),
        encounter,
        ended_at=timezone.now() - timedelta(hours=1),
        outcome="1",
        discharge_type="1",
    )
    again = admit(doctor, patient, khoa_noi, started_at=timezone.now())
    assert again.is_open


def test_it_refuses_a_future_start(walk_in, khoa_noi, doc):
    """Clock slack is five minutes; an hour ahead is a typing error."""
    r = doc.post(
        reverse("encounters:open", args=[walk_in.pk]),
        {
            "kind": "outpatient",
            "department": khoa_noi.pk,
            "reason": "Khám",
            "started_at": local(timezone.now() + timedelta(hours=1)),
        },
    )
    assert r.status_code == 422
    assert "future" in form_errors(r)


def test_it_opens_once_for_a_double_submitted_form(walk_in, khoa_noi, doc):
    """The same form token twice makes one encounter; the second answer repeats the first."""
    token = doc.get(reverse("encounters:open", args=[walk_in.pk])).context["token"]
    data = {
        "kind": "outpatient",
        "department": khoa_noi.pk,
        "reason": "Khám",
        "started_at": local(timezone.now()),
        "token": token,
    }
    first = doc.post(reverse("encounters:open", args=[walk_in.pk]), data)
    second = doc.post(reverse("encounters:open", args=[walk_in.pk]), data)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Encounter.objects.filter(patient=walk_in).count() == 1


def test_it_survives_a_forged_token(walk_in, khoa_noi, doc):
    data = {
        "kind": "outpatient",
        "department": khoa_noi.pk,
        "reason": "Khám",
        "started_at": local(timezone.now()),
        "token": "t" * 500,
    }
    assert doc.post(reverse("encounters:open", args=[walk_in.pk]), data).status_code == 302
    assert Encounter.objects.filter(patient=walk_in).count() == 1


def test_it_redirects_admit_from_a_visit(walk_in, doctor, khoa_noi, admit, doc):
    """ "Admit" on a visit leads to the admission form for that patient."""
    visit = admit(doctor, walk_in, khoa_noi, kind="outpatient")
    r = doc.get(reverse("encounters:admit_from", args=[visit.pk]))
    assert r.status_code == 302
    assert r["Location"] == reverse("encounters:open", args=[walk_in.pk]) + "?kind=inpatient"


def test_it_has_no_admit_from_an_admission(encounter, doc):
    assert doc.get(reverse("encounters:admit_from", args=[encounter.pk])).status_code == 404


# --- Transfer -----------------------------------------------------------------------------


def test_it_transfers_an_inpatient(encounter, doctor, khoa_noi, khoa_ngoai, outsider_doctor, doc):
    """The Nội stay closes at the transfer time and a Ngoại stay opens; the encounter's
    department follows; the audit event keeps old and new."""
    at = minute(timezone.now() - timedelta(hours=1))
    r = doc.post(
        reverse("encounters:transfer", args=[encounter.pk]),
        {
            "department": khoa_ngoai.pk,
            "attending": outsider_doctor.pk,
            "at": local(at),
            "note": "Nghi viêm ruột thừa",
        },
    )
    assert r.status_code == 302
    assert r["Location"] == reverse("encounters:detail", args=[encounter.pk])
    encounter.refresh_from_db()
    assert (encounter.department, encounter.attending) == (khoa_ngoai, outsider_doctor)
    old, new = encounter.stays.order_by("started_at")
    assert (old.department, old.ended_at) == (khoa_noi, at)
    assert (new.department, new.started_at, new.ended_at) == (khoa_ngoai, at, None)
    assert new.note == "Nghi viêm ruột thừa"
    event = AuditEvent.objects.get(action="encounter.transfer")
    assert (event.actor, event.patient, event.ip) == (doctor, encounter.patient, IP)
    assert event.detail["old"] == {"department": "NOI", "attending": doctor.pk}
    assert event.detail["new"] == {"department": "NGOAI", "attending": outsider_doctor.pk}


def test_it_refuses_a_transfer_to_a_department_without_beds(encounter, khoa_kham, doc):
    """An inpatient goes only to a department with beds: not even offered."""
    r = doc.post(
        reverse("encounters:transfer", args=[encounter.pk]),
        {"department": khoa_kham.pk, "at": local(timezone.now())},
    )
    assert r.status_code == 422
    assert "department" in r.context["form"].errors
    encounter.refresh_from_db()
    assert encounter.department.code == "NOI"


def test_it_refuses_a_transfer_before_arrival(encounter, khoa_ngoai, doc):
    at = encounter.started_at - timedelta(hours=1)
    r = doc.post(
        reverse("encounters:transfer", args=[encounter.pk]),
        {"department": khoa_ngoai.pk, "at": local(at)},
    )
    assert r.status_code == 422
    assert "before the patient arrived" in form_errors(r)
    assert encounter.stays.count() == 1


def test_it_refuses_to_transfer_a_discharged_patient(encounter, diagnosis, doctor, khoa_ngoai, doc):
    """A finished encounter cannot be transferred, through the page or the action."""
    actions.do_discharge(
        Actor(doctor, IP), encounter, ended_at=timezone.now(), outcome="2", discharge_type="1"
    )
    r = doc.post(
        reverse("encounters:transfer", args=[encounter.pk]),
        {"department": khoa_ngoai.pk, "at": local(timezone.now())},
    )
    assert r.status_code == 403
    with pytest.raises(ValidationError, match="finished encounter"):
        actions.do_transfer(
            Actor(doctor, IP),
            encounter,
            department=khoa_ngoai,
            attending=None,
            at=timezone.now(),
        )
    assert encounter.stays.count() == 1
    assert not AuditEvent.objects.filter(action="encounter.transfer").exists()


# --- Discharge -------------------------------------------------------------------------------


def discharge_data(ended_at, **changes):
    return {
        "ended_at": local(ended_at),
        "outcome": "1",
        "discharge_type": "1",
        "note": "Ra viện, tái khám sau 1 tuần",
        **changes,
    }


def test_it_discharges(encounter, diagnosis, doctor, doc):
    """Discharge finishes the encounter and its stay, with the outcome and type."""
    ended = minute(timezone.now())
    r = doc.post(
        reverse("encounters:discharge", args=[encounter.pk]),
        discharge_data(ended, outcome="2", discharge_type="4"),
    )
    assert r.status_code == 302
    encounter.refresh_from_db()
    assert encounter.status == EncounterStatus.FINISHED
    assert encounter.ended_at == ended
    assert (encounter.discharge_outcome, encounter.discharge_type) == ("2", "4")
    assert encounter.discharge_note == "Ra viện, tái khám sau 1 tuần"
    assert encounter.stays.get().ended_at == ended
    event = AuditEvent.objects.get(action="encounter.discharge")
    assert (event.actor, event.patient) == (doctor, encounter.patient)
    assert event.detail["outcome"] == "2"
    # A finished encounter is read-only: the page offers nothing and the forms refuse.
    r = doc.get(reverse("encounters:detail", args=[encounter.pk]))
    assert r.context["can_discharge"] is r.context["can_diagnose"] is False
    r = doc.post(reverse("encounters:discharge", args=[encounter.pk]), discharge_data(ended))
    assert r.status_code == 403


def test_it_refuses_discharge_before_admission(encounter, diagnosis, doc):
    r = doc.post(
        reverse("encounters:discharge", args=[encounter.pk]),
        discharge_data(encounter.started_at - timedelta(days=1)),
    )
    assert r.status_code == 422
    assert "cannot be before the admission" in form_errors(r)
    encounter.refresh_from_db()
    assert encounter.is_open


def test_it_refuses_discharge_without_a_main_diagnosis(encounter, doc):
    r = doc.post(
        reverse("encounters:discharge", args=[encounter.pk]), discharge_data(timezone.now())
    )
    assert r.status_code == 422
    assert "main diagnosis" in form_errors(r)
    encounter.refresh_from_db()
    assert encounter.is_open
    assert encounter.stays.get().ended_at is None


def test_it_refuses_an_unknown_outcome(encounter, diagnosis, doc):
    r = doc.post(
        reverse("encounters:discharge", args=[encounter.pk]),
        discharge_data(timezone.now(), outcome="9"),
    )
    assert r.status_code == 422
    assert "outcome" in r.context["form"].errors


# --- Diagnoses -------------------------------------------------------------------------------


def test_it_records_diagnoses(encounter, doctor, doc, icd10):
    """Codes are normalised (e119 → E11.9); the main one is marked; the event lists them."""
    r = doc.post(
        reverse("encounters:diagnoses", args=[encounter.pk]),
        {"main": "j189", "secondary": "e119, I10;k35.8"},
    )
    assert r.status_code == 302
    active = {(d.code_id, d.is_main) for d in encounter.diagnoses.all()}
    assert active == {("J18.9", True), ("E11.9", False), ("I10", False), ("K35.8", False)}
    assert encounter.main_diagnosis.code_id == "J18.9"
    event = AuditEvent.objects.get(action="encounter.diagnose")
    assert event.actor == doctor
    assert event.detail == {"old": [], "new": ["E11.9", "I10", "J18.9*", "K35.8"]}
    r = doc.get(reverse("encounters:detail", args=[encounter.pk]))
    html = r.content.decode()
    assert "J18.9" in html
    assert "Pneumonia, unspecified" in html


@pytest.mark.parametrize(
    ("main", "secondary", "bad"),
    [
        ("A00.5", "", "A00.5"),  # well formed, not in the list
        ("Z99.99", "", "Z99.99"),
        ("E1", "", "E1"),
        ("11.9", "", "11.9"),
        ("J18.9", "E11.9, X00.00, Q", "Q, X00.00"),  # malformed first
    ],
)
def test_it_refuses_unknown_icd10_codes(main, secondary, bad, encounter, doc, icd10):
    """Unknown or malformed codes are named in the message; nothing is recorded."""
    r = doc.post(
        reverse("encounters:diagnoses", args=[encounter.pk]),
        {"main": main, "secondary": secondary},
    )
    assert r.status_code == 422
    assert f"Not in the ICD-10 list: {bad}" in form_errors(r)
    assert not Diagnosis.objects.exists()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("e119", "E11.9"),
        ("E11.9", "E11.9"),
        (" e11,9 ", "E11.9"),
        ("i10", "I10"),
        ("K358", "K35.8"),
        ("S7200", "S72.00"),
    ],
)
def test_it_normalises_codes(raw, code):
    assert normalise_code(raw) == code


def test_it_retires_replaced_diagnoses(encounter, diagnosis, doctor, doc, icd10):
    """Changing the diagnoses retires the replaced rows (who, when); nothing is deleted,
    and an unchanged list writes nothing."""
    before = set(Diagnosis.objects.values_list("pk", flat=True))
    r = doc.post(
        reverse("encounters:diagnoses", args=[encounter.pk]),
        {"main": "E11.9", "secondary": "I10"},
    )
    assert r.status_code == 302
    assert before <= set(Diagnosis.objects.values_list("pk", flat=True))
    retired = Diagnosis.objects.filter(retired_at__isnull=False)
    assert {(d.code_id, d.is_main) for d in retired} == {("J18.9", True), ("E11.9", False)}
    assert all(d.retired_by == doctor for d in retired)
    active = Diagnosis.objects.filter(retired_at__isnull=True)
    assert {(d.code_id, d.is_main) for d in active} == {("E11.9", True), ("I10", False)}
    event = AuditEvent.objects.filter(action="encounter.diagnose").latest("seq")
    assert event.detail == {"old": ["E11.9", "J18.9*"], "new": ["E11.9*", "I10"]}

    count = AuditEvent.objects.filter(action="encounter.diagnose").count()
    doc.post(
        reverse("encounters:diagnoses", args=[encounter.pk]),
        {"main": "E11.9", "secondary": "I10"},
    )
    assert AuditEvent.objects.filter(action="encounter.diagnose").count() == count
    assert Diagnosis.objects.count() == 4


def test_it_drops_a_secondary_equal_to_the_main(encounter, doc, icd10):
    doc.post(
        reverse("encounters:diagnoses", args=[encounter.pk]),
        {"main": "J18.9", "secondary": "J18.9, J18.9"},
    )
    assert list(encounter.diagnoses.values_list("code_id", "is_main")) == [("J18.9", True)]


# --- ICD-10 list ------------------------------------------------------------------------------


def test_it_ships_the_who_list(icd10):
    """The migration loads the WHO list: thousands of codes, English titles."""
    assert Icd10Code.objects.count() > 10000
    assert icd10("E11.9").title_en == "Type 2 diabetes mellitus: Without complications"


@pytest.mark.parametrize(
    ("q", "first"), [("e11", "E11"), ("E11.9", "E11.9"), ("e119", "E11.9"), ("j18", "J18")]
)
def test_it_searches_codes_by_prefix(q, first, icd10):
    found = search_codes(q)
    assert found[0].code == first
    assert all(c.code.startswith(first) for c in found)


def test_it_searches_codes_by_title_words(icd10):
    """Words of the title, in any order and case, each a word prefix."""
    codes = {c.code for c in search_codes("cholera", limit=50)}
    assert {"A00", "A00.0", "A00.9"} <= codes
    codes = {c.code for c in search_codes("DIABETES type 2", limit=50)}
    assert "E11.9" in codes
    assert all(c.startswith("E11") for c in codes)
    assert search_codes("holera") == []


def test_it_serves_code_search_to_htmx(doc, icd10):
    """The datalist fragment for the diagnosis form."""
    r = doc.get(reverse("encounters:icd10"), {"q": "e11.9"}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "base.html" not in [t.name for t in r.templates]
    assert "E11.9" in r.content.decode()
    r = doc.get(reverse("encounters:icd10"), {"q": "e"})
    assert r.status_code == 200
    assert list(r.context["codes"]) == []


@pytest.fixture
def vietnamese_csv(tmp_path):
    path = tmp_path / "icd10_vi.csv"
    path.write_text(
        "STT,Mã bệnh,Tên bệnh\n"
        "1,E11.9,Bệnh đái tháo đường type 2 không có biến chứng\n"
        '2,J189,"Viêm phổi, không đặc hiệu"\n'
        "3,I10,Bệnh lý tăng huyết áp vô căn (nguyên phát)\n"
        "4,X99.99,Mã không có trong danh mục\n",
        encoding="utf-8-sig",
    )
    return path


def test_it_imports_vietnamese_titles(vietnamese_csv, icd10, capsys):
    """`benhan icd10 import-vi FILE` sets Vietnamese titles, found without accents;
    codes not in the list are reported, not invented."""
    call_command("icd10", "import-vi", str(vietnamese_csv))
    out = capsys.readouterr().out
    assert "Vietnamese titles set for 3 codes" in out
    assert "X99.99" in out
    assert icd10("E11.9").title_vi == "Bệnh đái tháo đường type 2 không có biến chứng"
    assert icd10("J18.9").title_vi == "Viêm phổi, không đặc hiệu"
    assert not Icd10Code.objects.filter(code="X99.99").exists()
    assert [c.code for c in search_codes("dai thao duong khong co bien")] == ["E11.9"]
    assert [c.code for c in search_codes("Tăng huyết áp")] == ["I10"]
    # The English words still work, and the title follows the language.
    assert "E11.9" in {c.code for c in search_codes("diabetes without", limit=50)}
    from django.utils import translation

    with translation.override("vi"):
        assert icd10("J18.9").title == "Viêm phổi, không đặc hiệu"
    with translation.override("en"):
        assert icd10("J18.9").title == "Pneumonia, unspecified"


def test_it_keeps_vietnamese_titles_when_reloading_the_list(vietnamese_csv, icd10):
    from benhan.encounters.icd10 import load_shipped

    call_command("icd10", "import-vi", str(vietnamese_csv))
    load_shipped()
    assert icd10("E11.9").title_vi.startswith("Bệnh đái tháo đường")


def test_it_reports_an_unreadable_file(tmp_path, icd10):
    missing = tmp_path / "none.csv"
    with pytest.raises(CommandError, match="does not exist"):
        call_command("icd10", "import-vi", str(missing))
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("icd10", "import-vi", str(wrong))


# --- Worklist ------------------------------------------------------------------------------------


def test_it_shows_the_worklist_of_my_departments(
    patient,
    encounter,
    register_patient,
    admit,
    doctor,
    outsider_doctor,
    khoa_noi,
    khoa_ngoai,
    doc,
    client_for,
):
    """Nội's doctor sees today's Nội visits and Nội's current inpatients only: not
    yesterday's visits, other departments, or discharged patients."""
    today = register_patient(full_name="Hà Văn Hôm Nay", birth_year=1970)
    yesterday = register_patient(full_name="Hà Văn Hôm Qua", birth_year=1971)
    ngoai_visit = register_patient(full_name="Hà Thị Ngoại Khoa", birth_year=1972, sex="F")
    ngoai_inpatient = register_patient(full_name="Hà Văn Nằm Ngoại", birth_year=1973)
    visit = admit(doctor, today, khoa_noi, kind="outpatient", started_at=timezone.now())
    start_of_today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    before_today = start_of_today - timedelta(hours=1)
    admit(doctor, yesterday, khoa_noi, kind="emergency", started_at=before_today)
    admit(outsider_doctor, ngoai_visit, khoa_ngoai, kind="outpatient", started_at=timezone.now())
    admit(outsider_doctor, ngoai_inpatient, khoa_ngoai)

    r = doc.get(reverse("core:home"))

    assert r.status_code == 200
    assert list(r.context["visits"]) == [visit]
    assert list(r.context["inpatients"]) == [encounter]
    html = r.content.decode()
    assert "Hà Văn Hôm Nay" in html
    assert patient.full_name in html
    for name in ("Hà Văn Hôm Qua", "Hà Thị Ngoại Khoa", "Hà Văn Nằm Ngoại"):
        assert name not in html
    assert AuditEvent.objects.filter(action="worklist.view", actor=doctor).exists()

    r = client_for(outsider_doctor).get(reverse("core:home"))
    assert {e.patient for e in r.context["visits"]} == {ngoai_visit}
    assert {e.patient for e in r.context["inpatients"]} == {ngoai_inpatient}


def test_it_drops_discharged_patients_from_the_worklist(encounter, diagnosis, doctor, doc):
    actions.do_discharge(
        Actor(doctor, IP), encounter, ended_at=timezone.now(), outcome="1", discharge_type="1"
    )
    assert list(doc.get(reverse("core:home")).context["inpatients"]) == []


def test_it_shows_reception_the_whole_facility_without_reasons(
    encounter, receptionist, other_patient, client_for
):
    """Reception works for every department: all inpatients, no clinical column."""
    r = client_for(receptionist).get(reverse("core:home"))
    assert list(r.context["inpatients"]) == [encounter]
    assert r.context["show_clinical"] is False
    assert "Sốt cao" not in r.content.decode()
