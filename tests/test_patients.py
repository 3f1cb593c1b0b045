"""Registering and editing patients through the registration desk's forms."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from benhan.audit.models import AuditEvent
from benhan.core.models import Submission
from benhan.patients.models import Patient

REGISTER = reverse("patients:register")

# Born 1985, male, CCCD issued in Hồ Chí Minh City (079), 4th digit 0 = male, 1900s.
VALID = {
    "full_name": "Trần Văn Bình",
    "birth": "12/03/1985",
    "sex": "M",
    "cccd": "079085123456",
    "insurance_number": "HC4790987654321",
    "insurance_valid_from": "01/01/2025",
    "insurance_valid_to": "31/12/2025",
    "insurance_facility_code": "79001",
    "phone": "0903123456",
    "address": "45 đường Tỉnh lộ 8, ấp 3",
    "province_code": "79",
    "commune_code": "27001",
    "ethnicity": "01",
    "occupation": "Nông dân",
    "emergency_name": "Trần Thị Cúc",
    "emergency_relation": "Vợ",
    "emergency_phone": "0903999888",
    "token": "",
}
NO_CARD = {
    "insurance_number": "",
    "insurance_valid_from": "",
    "insurance_valid_to": "",
    "insurance_facility_code": "",
}


@pytest.fixture
def desk(receptionist, client_for):
    """The receptionist's client, with English messages so the tests can read them."""
    client = client_for(receptionist)
    client.cookies["django_language"] = "en"
    return client


def post(client, **changes):
    data = {**VALID, **changes}
    return client.post(REGISTER, {k: v for k, v in data.items() if v is not None})


def assert_refused(response, field: str, message: str = "") -> None:
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert field in errors, errors
    if message:
        assert message in " ".join(errors[field]), errors[field]
    assert not Patient.objects.filter(full_name=VALID["full_name"]).exists()


# --- Happy path ---------------------------------------------------------------------------


def test_it_registers_a_patient(desk, receptionist):
    """A valid form creates the patient with an MRN of YY + 6 digits, and redirects to
    the patient's page; the audit log has the registration."""
    r = post(desk)

    patient = Patient.objects.get()
    assert r.status_code == 302
    assert r["Location"] == reverse("patients:detail", args=[patient.pk])
    yy = f"{timezone.localdate().year % 100:02d}"
    assert re.fullmatch(r"\d{8}", patient.mrn)
    assert patient.mrn == f"{yy}000001"
    assert patient.full_name == "Trần Văn Bình"
    assert (patient.birth_year, patient.birth_date, patient.sex) == (1985, date(1985, 3, 12), "M")
    assert patient.cccd == "079085123456"
    assert patient.insurance_number == "HC4790987654321"
    assert patient.insurance_key == "0987654321"
    assert patient.insurance_valid_to == date(2025, 12, 31)
    assert patient.phone == "0903123456"
    assert patient.name_key == " tran van binh"
    assert patient.created_by == receptionist
    event = AuditEvent.objects.get(action="patient.register")
    assert (event.actor, event.patient, event.ip) == (receptionist, patient, "127.0.0.1")
    assert event.detail == {"mrn": patient.mrn}

    r = desk.get(r["Location"])
    assert r.status_code == 200
    assert patient.mrn in r.content.decode()


def test_it_numbers_patients_in_sequence(desk):
    """MRNs count up per facility and year."""
    post(desk)
    post(desk, **NO_CARD, full_name="Lê Thị Hoa", birth="1990", sex="F", cccd="")
    mrns = sorted(Patient.objects.values_list("mrn", flat=True))
    assert int(mrns[1]) == int(mrns[0]) + 1


def test_it_registers_with_only_the_required_fields(desk):
    """Name, birth and sex are enough; everything else may be empty."""
    r = desk.post(REGISTER, {"full_name": "Lò Văn Páo", "birth": "1962", "sex": "M"})
    assert r.status_code == 302
    p = Patient.objects.get()
    assert (p.birth_year, p.birth_date, p.cccd, p.insurance_number) == (1962, None, None, "")


@pytest.mark.parametrize(
    ("field", "raw", "stored"),
    [
        ("cccd", "079 085 123 456", "079085123456"),
        ("cccd", "079.085.123.456", "079085123456"),
        ("cccd", "0790-8512-3456", "079085123456"),
        ("insurance_number", "hc4 79 0987654321", "HC4790987654321"),
        ("insurance_number", "7901234567", "7901234567"),  # cards since 2021: 10 digits
        ("phone", "+84 903 123 456", "0903123456"),
        ("phone", "090-312-3456", "0903123456"),
        ("full_name", "  trần   văn  bình ", "trần văn bình"),
    ],
)
def test_it_normalises_identifiers(field, raw, stored, desk):
    """Spaces, dots and case do not matter; the stored form is canonical."""
    r = post(desk, **{field: raw})
    assert r.status_code == 302, r.context and r.context["form"].errors
    assert getattr(Patient.objects.get(), field) == stored


def test_it_accepts_a_10_digit_card_for_search(desk):
    """A 10-digit card is stored as typed; its social-insurance key is itself."""
    post(desk, **{**NO_CARD, "insurance_number": "7901234567"})
    p = Patient.objects.get()
    assert (p.insurance_number, p.insurance_key) == ("7901234567", "7901234567")


# --- Citizen ID ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cccd", "message"),
    [
        ("07908512345", "exactly 12 digits"),
        ("0790851234567", "exactly 12 digits"),
        ("07908512345a", "exactly 12 digits"),
        ("003085123456", "not a province code"),  # 003 was never a province
        ("099085123456", "not a province code"),
        ("079185123456", "4th digit"),  # 1 = female born in the 1900s
        ("079285123456", "birth year 2085"),  # 2 = male born in the 2000s
        ("079090123456", "birth year 1990"),
    ],
)
def test_it_refuses_an_invalid_cccd(cccd, message, desk):
    """Length, province, century/sex digit and year digits are all checked."""
    assert_refused(post(desk, cccd=cccd), "cccd", message)


def test_it_checks_cccd_sex_for_women(desk):
    """A woman born in 2005 has 4th digit 3; 2 (a man) is refused."""
    ok = post(desk, full_name="Mai Thị Lan", birth="2005", sex="F", cccd="001305000123")
    assert ok.status_code == 302
    assert_refused(
        post(desk, full_name=VALID["full_name"], birth="2005", sex="F", cccd="001205000124"),
        "cccd",
        "4th digit",
    )


# --- Insurance card -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ("ZZ4790123456789", "not a health-insurance beneficiary category"),
        ("DN6790123456789", "benefit level"),
        ("DN0790123456789", "benefit level"),
        ("DN4990123456789", "not a social-insurance province code"),
        ("DN4000123456789", "not a social-insurance province code"),
        ("DN479012345678", "15 characters"),
        ("DN47901234567890", "15 characters"),
        ("790123456", "15 characters"),
        ("79012345678", "15 characters"),
        ("D14790123456789", "15 characters"),
    ],
)
def test_it_refuses_an_invalid_insurance_card(card, message, desk):
    """Category, benefit level 1–5, province and length are checked."""
    assert_refused(post(desk, insurance_number=card), "insurance_number", message)


def test_it_accepts_armed_forces_cards(desk):
    """97 (Defence) and 98 (Public Security) are insurance funds though not provinces."""
    assert post(desk, insurance_number="QN5970123456789").status_code == 302


def test_it_refuses_card_dates_without_a_card(desk):
    """Validity dates without the card number make no sense."""
    assert_refused(post(desk, insurance_number=""), "insurance_number", "card number")


def test_it_refuses_a_card_ending_before_it_starts(desk):
    r = post(desk, insurance_valid_from="01/06/2025", insurance_valid_to="31/05/2025")
    assert_refused(r, "insurance_valid_to", "expire before")


# --- Dates of birth ----------------------------------------------------------------------------


def _future() -> str:
    return (timezone.localdate() + timedelta(days=1)).strftime("%d/%m/%Y")


@pytest.mark.parametrize(
    ("birth", "message"),
    [
        ("31/02/2000", "does not exist"),
        ("29/02/2001", "does not exist"),
        ("00/01/2000", "does not exist"),
        ("15/13/2000", "does not exist"),
        ("01/01/1899", "between 1900 and today"),
        ("1899", "between 1900 and today"),
        ("2999", "between 1900 and today"),
        ("future", "between 1900 and today"),
        ("12-2000", "dd/mm/yyyy"),
        ("ngày 1", "dd/mm/yyyy"),
        ("85", "dd/mm/yyyy"),
    ],
)
def test_it_refuses_an_impossible_birth_date(birth, message, desk):
    """The date must exist and lie between 1900 and today."""
    birth = _future() if birth == "future" else birth
    assert_refused(post(desk, birth=birth, cccd=""), "birth", message)


@pytest.mark.parametrize(
    ("birth", "year", "day"),
    [
        ("1950", 1950, None),
        ("29/02/2000", 2000, date(2000, 2, 29)),
        ("5/6/1950", 1950, date(1950, 6, 5)),
        ("05.06.1950", 1950, date(1950, 6, 5)),
        ("05-06-1950", 1950, date(1950, 6, 5)),
    ],
)
def test_it_accepts_a_year_or_a_full_date(birth, year, day, desk):
    """Older patients often know only the year: it is kept without a day."""
    assert post(desk, birth=birth, cccd="").status_code == 302
    p = Patient.objects.get()
    assert (p.birth_year, p.birth_date) == (year, day)
    assert p.birth_display == (day.strftime("%d/%m/%Y") if day else str(year))


# --- Names and lengths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "<script>alert(1)</script>",
        "Nguyễn <b>Văn</b> An",
        'Trần Văn Bình"><img src=x onerror=alert(1)>',
        "Robert'); DROP TABLE patients_patient;--",
        "Nguyễn Văn 3",
        "Lê_Văn_Tám",
        "...",
    ],
)
def test_it_refuses_markup_and_symbols_in_names(name, desk):
    """Names hold letters, spaces, hyphens, apostrophes and dots only; what was typed
    comes back escaped, never as markup."""
    r = post(desk, full_name=name)
    assert_refused(r, "full_name", "only letters")
    html = r.content.decode()
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    assert "<b>Văn</b>" not in html


def test_it_refuses_markup_in_the_emergency_contact(desk):
    assert_refused(post(desk, emergency_name="<svg onload=alert(1)>"), "emergency_name")


@pytest.mark.parametrize(
    "name", ["Hồ Thị Hương", "H'Hen Niê", "Nguyễn Thị Kim-Chi", "Ka Rô", "Lương Xuân Trường"]
)
def test_it_accepts_real_names(name, desk):
    """Vietnamese and ethnic-minority names with apostrophes, hyphens, initials."""
    assert post(desk, full_name=name, cccd="").status_code == 302


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("full_name", "A" * 101),
        ("address", "x" * 201),
        ("occupation", "y" * 101),
        ("emergency_relation", "z" * 41),
        ("phone", "0" * 17),
        ("commune_code", "270011"),
        ("commune_code", "27a01"),
        ("insurance_facility_code", "79-01"),
        ("province_code", "63"),
        ("ethnicity", "99"),
        ("sex", "X"),
        ("phone", "123456"),
    ],
)
def test_it_refuses_over_long_and_malformed_fields(field, value, desk):
    """Every field has a maximum length and a shape; nothing is truncated silently."""
    assert_refused(post(desk, **{field: value}), field)


# --- Duplicates --------------------------------------------------------------------------------


def test_it_refuses_a_duplicate_cccd_with_a_link(patient, desk):
    """A citizen ID already registered is refused, linking to that patient."""
    r = post(desk, cccd=patient.cccd, full_name="Ngô Văn Khác")
    assert r.status_code == 422
    assert "cccd" in r.context["form"].errors
    assert r.context["duplicate"] == patient
    assert reverse("patients:detail", args=[patient.pk]) in r.content.decode()
    assert Patient.objects.count() == 1


def test_it_warns_about_a_similar_patient(patient, desk):
    """Same name (accents ignored) and birth year: a warning with the candidates, and
    registration only once the user ticks "this is a different person"."""
    data = {**NO_CARD, "full_name": "Nguyen Van An", "birth": "1985", "cccd": ""}
    r = post(desk, **data)
    assert r.status_code == 422
    assert r.context["similar"] == [patient]
    html = r.content.decode()
    assert reverse("patients:detail", args=[patient.pk]) in html
    assert 'name="confirm_new"' in html
    assert Patient.objects.count() == 1

    r = post(desk, **data, confirm_new="on", token=r.context["token"])
    assert r.status_code == 302
    assert Patient.objects.count() == 2


def test_it_does_not_warn_for_another_birth_year(patient, desk):
    """The same name born in another year registers without a warning."""
    r = post(desk, **NO_CARD, full_name=patient.full_name, birth="1986", cccd="")
    assert r.status_code == 302
    assert Patient.objects.filter(birth_year=1986).count() == 1


def test_it_creates_one_patient_from_a_double_submitted_form(desk):
    """The second request with the same form token shows the first one's result."""
    token = desk.get(REGISTER).context["token"]
    first = post(desk, token=token)
    second = post(desk, token=token)
    assert first.status_code == 302
    assert second.status_code == 302
    assert second["Location"] == first["Location"]
    assert Patient.objects.count() == 1
    assert Submission.objects.filter(token=token).count() == 1
    assert AuditEvent.objects.filter(action="patient.register").count() == 1


def test_it_survives_a_forged_token(desk):
    """A token longer than any we issue (Submission.token is 64 characters) must not
    crash the page on PostgreSQL; the registration goes ahead once."""
    r = post(desk, token="x" * 300)
    assert r.status_code == 302
    assert post(desk, token="x" * 300)["Location"] == r["Location"]
    assert Patient.objects.count() == 1


def test_it_keeps_the_form_on_error(desk):
    """On an error nothing is saved and every typed value comes back, with the token."""
    r = post(desk, cccd="079085123457", birth="1986", token="tok-123")
    assert r.status_code == 422
    html = r.content.decode()
    for value in ("Trần Văn Bình", "079085123457", "HC4790987654321", "0903123456", "Nông dân"):
        assert value in html
    assert 'value="tok-123"' in html
    assert 'value="M" checked' in html or "checked" in html
    assert not Patient.objects.exists()


# --- Editing ------------------------------------------------------------------------------------


def edit_data(patient, **changes):
    data = {
        "full_name": patient.full_name,
        "birth": patient.birth_display,
        "sex": patient.sex,
        "cccd": patient.cccd or "",
        "insurance_number": patient.insurance_number,
        "phone": patient.phone,
        "address": patient.address,
        "province_code": patient.province_code,
    }
    return {**data, **changes}


def test_it_shows_the_current_values_for_editing(patient, receptionist, client_for):
    r = client_for(receptionist).get(reverse("patients:edit", args=[patient.pk]))
    assert r.status_code == 200
    html = r.content.decode()
    for value in (patient.full_name, patient.cccd, patient.phone, "1985"):
        assert value in html


def test_it_audits_an_edit_with_old_and_new_values(patient, receptionist, client_for):
    """Only changed fields are saved and logged, each with its old and new value."""
    url = reverse("patients:edit", args=[patient.pk])
    r = client_for(receptionist).post(
        url, edit_data(patient, phone="0977000111", full_name="Nguyễn Văn Ấn", birth="02/01/1985")
    )
    assert r.status_code == 302
    assert r["Location"] == reverse("patients:detail", args=[patient.pk])
    patient.refresh_from_db()
    assert patient.phone == "0977000111"
    assert patient.name_key == " nguyen van an"
    assert patient.birth_date == date(1985, 1, 2)
    event = AuditEvent.objects.get(action="patient.update")
    assert event.actor == receptionist
    assert event.patient == patient
    assert event.ip == "127.0.0.1"
    assert event.detail == {
        "old": {"full_name": "Nguyễn Văn Ân", "birth_date": None, "phone": "0912345678"},
        "new": {"full_name": "Nguyễn Văn Ấn", "birth_date": "1985-01-02", "phone": "0977000111"},
    }


def test_it_writes_no_update_event_without_changes(patient, receptionist, client_for):
    r = client_for(receptionist).post(
        reverse("patients:edit", args=[patient.pk]), edit_data(patient)
    )
    assert r.status_code == 302
    assert not AuditEvent.objects.filter(action="patient.update").exists()


def test_it_refuses_an_edit_to_another_patients_cccd(
    patient, register_patient, receptionist, client_for
):
    """Editing cannot create a duplicate citizen ID either."""
    other = register_patient(full_name="Lê Thị Hoa", birth_year=1990, sex="F", cccd="001190000001")
    r = client_for(receptionist).post(
        reverse("patients:edit", args=[other.pk]),
        edit_data(other, cccd=patient.cccd, birth="1985", sex="M"),
    )
    assert r.status_code == 422
    assert r.context["duplicate"] == patient
    other.refresh_from_db()
    assert other.cccd == "001190000001"


def test_it_validates_edits_like_registration(patient, receptionist, client_for):
    r = client_for(receptionist).post(
        reverse("patients:edit", args=[patient.pk]),
        edit_data(patient, full_name="<i>x</i>", birth="31/02/2000"),
    )
    assert r.status_code == 422
    assert {"full_name", "birth"} <= set(r.context["form"].errors)
    patient.refresh_from_db()
    assert patient.full_name == "Nguyễn Văn Ân"
